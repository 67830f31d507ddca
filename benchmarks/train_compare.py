"""Model-parallel training with the all-to-all uncompressed, TorchRec-style int8 and our codec, side by side.

Same seed, data and iterations for every row; each row is one ``dlrmcomp train --nproc N`` run.
On one GPU, ``--backend gloo --device cuda`` puts every rank on the GPU with CUDA tensors while
the all-to-all goes through host memory and TCP (an Ethernet-class link). Prints a table of
seconds per iteration, test AUC, bytes per iteration and the codec/exchange seconds per
iteration, and writes it as JSON. Usage::

    python benchmarks/train_compare.py --out DIR [--nproc 2 --backend gloo --device cuda
        --preset kaggle --scale 0.1 --batch-size 16384 --iters 60 --codecs fp32,int8,gpu:quant+ans@dedup]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd


def run(args, spec: str, out: Path) -> dict:
    codec, _, option = spec.partition("@")
    cmd = [sys.executable, "-m", "dlrmcomp.cli", "train", "--nproc", str(args.nproc), "--backend", args.backend,
           "--device", args.device, "--profile", "demo", "--preset", args.preset, "--scale", str(args.scale),
           "--batch-size", str(args.batch_size), "--iters", str(args.iters), "--eval-every", str(args.iters),
           "--log-every", str(max(1, args.iters // 4)), "--test-size", str(args.test_size), "--seed", "0",
           "--fwd-comm", codec, "--bwd-comm", codec, "--out", str(out)]
    if option == "dedup":
        cmd.append("--dedup")
    subprocess.run(cmd, check=True)
    summary = json.loads((out / "summary.json").read_text())
    comm = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"comm"' in line]
    iters = summary["iterations"]
    per_it = lambda key: sum(r[d][key] for r in comm for d in ("forward", "backward")) / iters  # noqa: E731
    return {"codec": spec, "iterations": iters, "s_per_iter": summary["seconds"] / iters,
            "test_auc": summary["test_auc"], "MB_per_iter": (summary["bytes_compressed"] + summary["grad_bytes_compressed"]) / iters / 1e6,
            "raw_MB_per_iter": (summary["bytes_raw"] + summary["grad_bytes_raw"]) / iters / 1e6,
            "codec_s_per_iter": per_it("encode_s") + per_it("decode_s"), "exchange_s_per_iter": per_it("exchange_s")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--backend", default="gloo")
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="kaggle")
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=16384)
    p.add_argument("--iters", type=int, default=60)
    p.add_argument("--test-size", type=int, default=65536)
    p.add_argument("--codecs", default="fp32,int8,gpu:quant+ans,gpu:quant+ans@dedup",
                   help="forward and backward codec per row; CODEC@dedup adds index-aware dedup of the forward payload")
    args = p.parse_args(argv)
    rows = []
    for codec in args.codecs.split(","):
        rows.append(run(args, codec, args.out / codec.replace(":", "_").replace("+", "_").replace("@", "_")))
        print(json.dumps(rows[-1]), flush=True)
    df = pd.DataFrame(rows)
    base = df.loc[df.codec == "fp32", "s_per_iter"]
    if len(base):
        df["speedup_vs_fp32"] = float(base.iloc[0]) / df["s_per_iter"]
        df["auc_minus_fp32"] = df["test_auc"] - float(df.loc[df.codec == "fp32", "test_auc"].iloc[0])
    print(df.to_markdown(index=False, floatfmt=".4f"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_compare.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                              "rows": df.to_dict("records")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
