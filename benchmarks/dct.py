"""DCT+Chop (seed 002): throughput of both forms on a device, rate-distortion against the peers,
training on compressed inputs.

- throughput: ``DctChop`` grown-matrix (the seed's) and blockwise forms, fp32 and bf16 batches
  of 256x256 and 1024x1024 images, compress and decompress GB/s over the input bytes, with ZFP
  fixed-rate, the ``dct`` codec (frames) and our ``quant+ans`` in the same run (the host; plus
  ``gpu:quant+ans`` on CUDA); then the fp32 scaling over image sides, where the grown form's
  O(H) work per value shows;
- rate-distortion (by default only with ``--device cpu``: it runs on the host): ratio vs PSNR on
  the real fields and the package images (:mod:`dlrmcomp.bench.dct`), and every series' ratio at
  the PSNR of dct cf=4;
- training (:mod:`dlrmcomp.bench.dct_training`): denoising and digits, uncompressed and cf 2, 4, 6.

Usage::

    python benchmarks/dct.py [--device cpu|cuda] [--out DIR] [--rd-profile full] [--train-profile demo]
                             [--no-rd] [--no-training] [--batch-mb MB] [--repeat N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


from dlrmcomp.bench import dct as bench
from dlrmcomp.bench import dct_training
from dlrmcomp.bench.benchmark import device_name, markdown_section
from dlrmcomp.io import write_json


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", type=Path, help="folder for results.json and the CSV files")
    p.add_argument("--batch-mb", type=float, help="fp32 MB per batch (default 32 on cpu, 1024 on cuda)")
    p.add_argument("--repeat", type=int, help="timed runs per measurement (default 3 on cpu, 10 on cuda)")
    p.add_argument("--sides", default="256,1024")
    p.add_argument("--scaling-sides", help="fp32 sides of the scaling table (default 128..2048, ..4096 on cuda)")
    p.add_argument("--rd", dest="rd", action="store_true", default=None, help="rate-distortion (default: on cpu)")
    p.add_argument("--no-rd", dest="rd", action="store_false")
    p.add_argument("--rd-profile", default="full", choices=tuple(bench.PROFILES))
    p.add_argument("--no-training", dest="training", action="store_false")
    p.add_argument("--train-profile", default="demo", choices=tuple(dct_training.PROFILES))
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    batch_mb = args.batch_mb or (1024 if cuda else 32)
    repeat = args.repeat or (10 if cuda else 3)
    sides = [int(s) for s in args.sides.split(",")]
    scaling = [int(s) for s in (args.scaling_sides or ("128,256,512,1024,2048,4096" if cuda else "128,256,512,1024,2048")).split(",")]
    rd_on = (not cuda) if args.rd is None else args.rd
    results = {"command": " ".join(["python", "benchmarks/dct.py", *sys.argv[1:]] if argv is None else argv),
               "machine": device_name(args.device), "date": time.strftime("%Y-%m-%d"), "batch_mb": batch_mb, "repeat": repeat}
    print(f"# DCT+Chop on {results['machine']}, batches of {batch_mb:g} MB fp32, median of {repeat}")
    tables = {}
    t0 = time.perf_counter()
    tables["throughput"] = bench.throughput(args.device, sides, batch_mb=batch_mb, repeat=repeat)
    print(markdown_section(tables["throughput"], "throughput (GB/s over input bytes; cf 4)", ".3g"), flush=True)
    tables["scaling"] = bench.throughput(args.device, scaling, dtypes=("float32",), batch_mb=batch_mb, repeat=repeat,
                                         peers=False)
    print(markdown_section(tables["scaling"], "scaling over the image side (fp32, cf 4)", ".3g"), flush=True)
    if rd_on:
        rd = bench.rate_distortion(bench.rd_data(args.rd_profile), bench.PROFILES[args.rd_profile]["cfs"],
                                   bench.PROFILES[args.rd_profile]["bounds"], progress=lambda n: print("rd:", n, flush=True))
        tables["rate_distortion"] = rd
        tables["equal_psnr"] = bench.at_equal_psnr(rd)
        print(markdown_section(tables["equal_psnr"], "ratio of every series at the PSNR of dct cf=4", ".3g"))
        wide = rd.pivot_table(index=["data", "series"], columns="param", values="ratio").reset_index()
        print(markdown_section(wide, "ratio per (data, series) and param (cf, or relative bound)", ".3g"))
    if args.training:
        tables["training"] = dct_training.compare(args.train_profile, device=args.device)
        print(markdown_section(tables["training"], f"training on compressed inputs ({args.train_profile})", ".3g"))
    results["seconds"] = time.perf_counter() - t0
    print(f"done in {results['seconds']:.0f} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, df in tables.items():
            df.to_csv(args.out / f"{name}.csv", index=False)
        results.update({name: df.to_dict(orient="records") for name, df in tables.items()})
        write_json(args.out / "results.json", results)
        print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
