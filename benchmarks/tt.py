"""TT embedding tables (seed 003): naive TT vs EcoRec's prefix reuse vs a dense ``nn.EmbeddingBag``.

- speed: forward + backward of one table, Zipf(1.05) lookups, popularity hashed over the rows
  (hot rows rarely share a prefix) and frequency-ordered (row id = popularity rank);
- memory: EcoRec's table (N = 1e8, D = 32, ranks 32, 32) over the batch: naive, one chunk, and
  chunks of 20,000 unique indices (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the analytic
  count of :func:`dlrmcomp.bench.tt.intermediate_bytes`);
- quality (``--quality``): AUC vs dense tables at ranks 8, 16, 32 on the synthetic default and
  a real Criteo sample, and the parameter compression at full Kaggle cardinalities;
- pipeline (``--pipeline``): 2 gloo CPU ranks training TT tables, one all-to-all vs the
  table-wise pipeline without and with overlap.

Usage::

    python benchmarks/tt.py [--device cpu|cuda] [--profile smoke|demo|full] [--json OUT.json]
                            [--quality] [--pipeline] [--criteo TRAIN,TEST] [--threads N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from dlrmcomp.bench import tt as bench
from dlrmcomp.bench.benchmark import device_name, markdown_section
from dlrmcomp.io import write_json

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--profile", default="demo", choices=tuple(bench.PROFILES), help="sweep sizes (default demo)")
    p.add_argument("--json", type=Path, help="write every table to this JSON file")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-speed", dest="speed", action="store_false")
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument("--speed", dest="configs", help="speed configs B:N:D:R,... (default: the profile's)")
    p.add_argument("--repeat", type=int, help="timed runs a speed config (default: the profile's)")
    p.add_argument("--quality", action="store_true", help="train dense vs TT (CPU, minutes)")
    p.add_argument("--quality-iters", type=int, help="training iterations of the quality runs (default: the profile's)")
    p.add_argument("--criteo-iters", type=int, default=30, help="iterations on the Criteo sample (default 30)")
    p.add_argument("--optimizer", choices=("sgd", "adagrad"), help="of the quality runs (default adagrad)")
    p.add_argument("--lr", type=float, help="of the quality runs (default 0.05)")
    p.add_argument("--pipeline", action="store_true", help="2 gloo ranks: the table-wise pipeline's overlap")
    p.add_argument("--criteo", default="sample",
                   help="TRAIN[,TEST] of the real-data quality run (default: the sample in ../shared/data/real; '' to skip)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = dict(bench.PROFILES[args.profile])
    if args.configs:
        size["speed"] = [tuple(int(float(v)) for v in c.split(":")) for c in args.configs.split(",")]
    if args.repeat:
        size["repeat"] = args.repeat
    overrides = {"iters": args.quality_iters, "optimizer": args.optimizer, "lr": args.lr}
    size["quality"] = {**size["quality"], **{k: v for k, v in overrides.items() if v is not None}}
    results = {"command": " ".join(["python", "benchmarks/tt.py", *(sys.argv[1:] if argv is None else argv)]),
               "machine": device_name(args.device), "date": time.strftime("%Y-%m-%d"), "profile": args.profile}
    print(f"# TT embeddings on {results['machine']} ({args.profile})", flush=True)
    tables: dict[str, pd.DataFrame] = {}
    t0 = time.perf_counter()
    if args.speed:
        tables["speed"] = bench.lookup_speed(size["speed"], args.device, repeat=size["repeat"])
        print(markdown_section(tables["speed"], "forward + backward ms (speed-up over naive TT)"), flush=True)
        results["speedup_at_16k"] = bench.speed_target(tables["speed"])
    if args.memory:
        tables["memory"] = bench.memory_peak(size["memory_rows"], 32, (32, 32), size["memory_batches"], args.device)
        print(markdown_section(tables["memory"], f"peak memory, N = {size['memory_rows']:.0e}, D = 32, ranks 32, 32"), flush=True)
    if args.quality:
        tables["compression"] = bench.compression_table([8, 16, 32])
        print(markdown_section(tables["compression"], "embedding parameters, full Kaggle cardinalities (dim 16, TT from 1,000 "
                                           "rows)"))
        tables["quality"] = bench.quality_table(size["quality_ranks"], args.criteo or None, args.criteo_iters,
                                                **size["quality"])
        print(markdown_section(tables["quality"], "test AUC, dense vs TT"), flush=True)
    if args.pipeline:
        tables["pipeline"] = bench.pipeline_overlap(**size["pipeline"], scale=1e-2, tt_ranks="32,32", tt_min_rows=1000)
        print(markdown_section(tables["pipeline"], "2 gloo CPU ranks, TT tables: step time"), flush=True)
    results["seconds"] = time.perf_counter() - t0
    print(f"done in {results['seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results.update({name: df.to_dict(orient="records") for name, df in tables.items()})
        write_json(args.json, results)
        print("wrote", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
