"""Hot/cold training (issue 15): FAE's hot fraction per memory budget, baseline vs FAE vs
Slipstream (AUC, time per epoch, T, skipped fraction, overheads), the skipped fraction against the
target D, and the all-to-all payload's compression ratio for hot and cold batches.

Data: the synthetic stream (the budget table at the full Criteo Kaggle cardinalities at demo/full
size) and the Criteo and Avazu samples in ../shared/data/real (skipped when absent). See
:mod:`dlrmcomp.bench.hotcold` for what each number is. Usage::

    python benchmarks/hotcold.py [--profile smoke|demo|full] [--device cpu|cuda] [--json OUT.json]
        [--datasets synthetic,criteo,avazu] [--repeat N] [--codec quant+dedup+ans --eb 0.01]
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from dlrmcomp.bench import hotcold as hc
from dlrmcomp.hotcold import EpochInputs
from dlrmcomp.io import write_json
from dlrmcomp.train import make_data


def budget_table(profile: str, datasets) -> pd.DataFrame:
    """Hot fraction per budget: synthetic at ``profile_scale`` and the real samples' training epochs."""
    size = hc.PROFILES[profile]
    parts = []
    ids, sizes = hc.synthetic_ids(size["profile_scale"], size["profile_batches"])
    parts.append(hc.hot_fractions(ids, sizes, size["budgets"]).assign(data=f"synthetic scale {size['profile_scale']:g}",
                                                                       inputs=len(ids)))
    for name in datasets:
        cfg = hc.run_config(profile, name) if name != "synthetic" else None
        if cfg is None:
            continue
        data = make_data(cfg)
        epoch = EpochInputs(data, 128, len(data.train) // 128)
        table = hc.hot_fractions(epoch.ids, epoch.table_sizes, size["budgets"])
        parts.append(table.assign(data=name, inputs=len(epoch)))
    df = pd.concat(parts, ignore_index=True)
    return df[["data", "inputs", "budget", "hot_rows", "lambda", "hot_fraction", "hot_rows_all_counted",
               "lambda_all_counted", "hot_fraction_all_counted", "profile_s"]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=sorted(hc.PROFILES), default="demo")
    p.add_argument("--device", default="cpu", help="cpu | cuda (hot table on the GPU, the other rows in host memory)")
    p.add_argument("--datasets", help="comma-separated: synthetic,criteo,avazu (default: the profile's)")
    p.add_argument("--codec", default="quant+dedup+ans", help="codec of the payload ratios")
    p.add_argument("--eb", type=float, default=0.01, help="its relative error bound")
    p.add_argument("--repeat", type=int, default=1, help="rounds of the training runs; each mode keeps its fastest")
    p.add_argument("--runs", type=Path, help="keep the training runs here (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="write every table here")
    args = p.parse_args(argv)
    size = hc.PROFILES[args.profile]
    datasets = args.datasets.split(",") if args.datasets else size["datasets"]
    runs = args.runs or Path(tempfile.mkdtemp(prefix="hotcold_bench_"))
    fmt = dict(index=False, floatfmt=".4g")
    t0 = time.perf_counter()
    budgets = budget_table(args.profile, datasets)
    print("## Hot fraction of the inputs per hot-memory budget (dim 16; 5% of the inputs counted, and all)\n")
    print(budgets.to_markdown(**fmt), "\n", flush=True)
    results = {"profile": args.profile, "device": args.device, "torch": torch.__version__,
               "machine": platform.machine(), "budgets": budgets.to_dict("records"), "datasets": {}}
    for name in datasets:
        cfg = hc.run_config(args.profile, name)
        if cfg is None:
            print(f"## {name}: sample files absent, skipped\n")
            continue
        table, trainers = hc.compare(cfg, args.device, runs / name, repeat=args.repeat)
        sweep = hc.drop_sweep(trainers["slipstream"], size["drops"])
        ratios = hc.payload_ratios(trainers["fae"], args.codec, args.eb)
        print(f"## {name}: {cfg.iters} baseline iterations of {cfg.batch_size}, budget {cfg.hot_budget}, "
              f"D {cfg.target_drop}, device {args.device}\n")
        print(table.to_markdown(**fmt), "\n")
        print(f"Skipped fraction of the remaining hot inputs vs D ({name}):\n")
        print(sweep.to_markdown(**fmt), "\n")
        print(f"Payload compression, hot vs cold batches ({name}, eb {args.eb}):\n")
        print(ratios.to_markdown(**fmt), "\n", flush=True)
        keys = ("data", "iters", "batch_size", "hot_budget", "target_drop", "scale", "ip_sampling_rate")
        results["datasets"][name] = {"config": {k: getattr(cfg, k) for k in keys},
                                     "compare": table.to_dict("records"), "drop_sweep": sweep.to_dict("records"),
                                     "payload": ratios.to_dict("records")}
    results["seconds"] = time.perf_counter() - t0
    print(f"total {results['seconds']:.0f} s", file=sys.stderr)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
