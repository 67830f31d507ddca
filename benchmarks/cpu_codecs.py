"""Our CPU recipes vs zstd / lz4 / zlib / constriction ANS / SZ3, at batch sizes, on payloads.

For each payload (``--payload``: ``design`` = DESIGN.md's, ``--tables`` x batch x ``--dim`` fp32
with Zipf lookups; ``other`` = 16 tables x batch x 128, other cardinalities, Zipf 1.2;
``no-repeat`` = no row repeated) and batch (rows a table), every contestant codes the whole batch
of tables per call (ours: ``encode_batch`` / ``decode_batch``, the path users call, frames
included; the others loop over the tables), gets the same relative bound, resolved per table
inside its timed encode, and includes its quantization. Throughput is over the fp32 bytes in;
contestants are timed interleaved, ``--stat`` (min: best of, median) of ``--repeat`` rounds (more
until each has ``--min-seconds`` of timed rounds) after a warm-up round
(:func:`dlrmcomp.bench.runner.run`), on the ``--clock`` (wall, or the thread's CPU time on a
shared machine). ``--threads N`` adds rows of ours coding the tables on N threads (wall clock).
After each table a line per batch says whether our best recipe beats zstd-1 in ratio and both
speeds. ``--json OUT`` writes every row with the machine, versions and command. Usage::

    python benchmarks/cpu_codecs.py [--batch 128,1024,8192,65536 --payload design,other --dim 64 --tables 26
                                     --eb 0.03 --repeat 3 --threads 2 --json cpu_codecs.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import pandas as pd

from dlrmcomp.bench.benchmark import machine, versions
from dlrmcomp.bench.payload import PAYLOADS, make_payload
from dlrmcomp.bench.runner import ConstrictionAns, FrameCodec, Sz3, order0_bytes, run

OURS = ("quant+match+huffman", "quant+match+ans", "quant+dedup+ans", "quant+dedup+huffman", "quant+ans",
        "quant+huffman")
LIBRARY_RECIPES = (("quant+zstd", 1), ("quant+zstd", 3), ("quant+lz4", None), ("quant+zlib", 1))
REFERENCE = "quant+zstd-1"
THREADED = 2  # the first recipes of ``ours`` also timed on --threads threads


def contestants(eb: float, threads: int = 1, ours=OURS) -> list:
    out = [FrameCodec(name, eb, dtype="int8") for name in ours]
    if threads > 1:
        out += [FrameCodec(name, eb, dtype="int8", threads=threads, label=f"{name} ({threads} threads)")
                for name in ours[:THREADED]]
    for name, level in LIBRARY_RECIPES:
        label = f"{name}-{level}" if level else name
        out.append(FrameCodec(name, eb, dtype="int8", label=label, **({} if level is None else {"level": level})))
    for module, contestant in (("constriction", ConstrictionAns), ("pysz", Sz3)):
        if importlib.util.find_spec(module) is None:  # an optional library: its rows are left out
            print(f"{module} is not installed: no {contestant.name} rows", file=sys.stderr)
        else:
            out.append(contestant(eb))
    return out


def bench(payloads, batches, dim: int, n_tables: int, eb: float, zipf: float, repeat: int, stat: str, threads: int,
          min_seconds: float = 0.0, clock: str = "wall", ours=OURS) -> pd.DataFrame:
    frames = []
    for kind in payloads:
        for batch in batches:
            tables = make_payload(kind, batch, dim, n_tables, zipf)
            df = pd.DataFrame(run(contestants(eb, threads, ours), tables, repeat, stat, eb, min_seconds, clock))
            df.insert(0, "payload", kind)
            df.insert(1, "batch", batch)
            df.insert(2, "shape", f"{len(tables)} x {batch} x {tables[0].shape[1]}")
            df["% of order-0 bound"] = 100 * df["ratio"] / (df["raw_bytes"] / order0_bytes(tables, eb, dtype="int8"))
            frames.append(df)
            print(f"{kind} batch {batch}: done", file=sys.stderr, flush=True)
            del tables
    return pd.concat(frames, ignore_index=True)


def verdicts(df: pd.DataFrame, ours=OURS) -> pd.DataFrame:
    """Per (payload, batch): our one-thread recipes that beat zstd-1 in ratio and both speeds, and
    the best one's margins (the first of ``ours`` that wins all three, else the first of ``ours``)."""
    rows = []
    for (kind, batch), g in df.groupby(["payload", "batch"], sort=False):
        g = g.set_index("codec")
        ref = g.loc[REFERENCE]
        metrics = ("ratio", "compress_gbps", "decompress_gbps")
        winners = [n for n in ours if n in g.index and all(g.loc[n, m] > ref[m] for m in metrics)]
        best = winners[0] if winners else ours[0]
        rows.append({"payload": kind, "batch": batch, "ours beating zstd-1 on all three": ", ".join(winners) or "none",
                     "best": best, **{f"{m} x zstd-1": g.loc[best, m] / ref[m] for m in metrics}})
    return pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", default="65536", help="rows a table, comma list (default 65536)")
    p.add_argument("--payload", default="design", help=f"comma list of {', '.join(PAYLOADS)} (default design)")
    p.add_argument("--dim", type=int, default=64, help="the design payload's dim")
    p.add_argument("--tables", type=int, default=26, help="the design payload's tables")
    p.add_argument("--eb", type=float, default=0.03)
    p.add_argument("--zipf", type=float, default=1.05, help="the design payload's Zipf exponent")
    p.add_argument("--ours", default=",".join(OURS), help="our recipes, comma list (the first wins ties)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--stat", choices=("min", "median"), default="min")
    p.add_argument("--min-seconds", type=float, default=0.5,
                   help="more rounds until each contestant has been timed this long (small batches)")
    p.add_argument("--threads", type=int, default=1, help="also time ours on this many threads (needs --clock wall)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: CPU time of the thread (a shared machine's load is not counted)")
    p.add_argument("--out", type=Path, help="CSV of every row")
    p.add_argument("--json", type=Path, help="JSON: every row, the verdicts, machine, versions, command")
    args = p.parse_args(argv)
    if args.threads > 1 and args.clock == "cpu":
        p.error("--threads times wall clock: use --clock wall")
    payloads = args.payload.split(",")
    unknown = sorted(set(payloads) - set(PAYLOADS))
    if unknown:
        p.error(f"unknown payloads {unknown}; choose from {PAYLOADS}")
    ours = tuple(args.ours.split(","))
    batches = [int(b) for b in args.batch.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M")
    df = bench(payloads, batches, args.dim, args.tables, args.eb, args.zipf, args.repeat, args.stat, args.threads,
               args.min_seconds, args.clock, ours)
    wins = verdicts(df, ours)
    if args.out:
        df.to_csv(args.out, index=False)
    if args.json:
        args.json.write_text(json.dumps({
            "command": shlex.join(["benchmarks/cpu_codecs.py", *(argv if argv is not None else sys.argv[1:])]),
            "started": started, "machine": machine(), "versions": versions(), "args": vars(args) | {
                "out": str(args.out), "json": str(args.json)},
            "rows": df.to_dict("records"), "verdicts": wins.to_dict("records")}, indent=1, default=str))
    print(f"eb {args.eb} rel per table, int8 codes; {platform.processor() or platform.machine()}, "
          f"1 thread unless marked; {args.stat} of >= {args.repeat} interleaved rounds ({args.clock} clock); "
          f"started {started}")
    cols = ["shape", "codec", "ratio", "compress_gbps", "decompress_gbps", "% of order-0 bound", "violations"]
    names = {"compress_gbps": "compress GB/s", "decompress_gbps": "decompress GB/s"}
    for kind, g in df.groupby("payload", sort=False):
        print(f"\npayload {kind}")
        print(g[cols].rename(columns=names).to_markdown(index=False, floatfmt=".3g"))
    print("\nours vs quant+zstd-1 (one thread)")
    print(wins.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
