"""Our CPU recipes vs zstd / lz4 / zlib / constriction ANS / SZ3 on the DESIGN.md payload, at batch sizes.

For each batch (rows a table) the payload is ``--tables`` tables x batch x ``--dim`` fp32 (Zipf
lookups). Every contestant codes the whole batch of tables per call (ours: ``encode_batch`` /
``decode_batch``; the others loop over the tables), gets the same relative bound, resolved per
table inside its timed encode, and includes its quantization. Throughput is over the fp32 bytes
in; contestants are timed interleaved, ``--stat`` (min: best of, median) of ``--repeat`` rounds
(more until each has ``--min-seconds`` of timed rounds) after a warm-up round (:func:`dlrmcomp.bench.runner.run`). ``--threads N`` adds rows of ours coding
the tables on N threads. Usage::

    python benchmarks/cpu_codecs.py [--batch 128,1024,8192,65536 --dim 64 --tables 26 --eb 0.03 --repeat 3]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time

import pandas as pd

from dlrmcomp.bench.payload import embedding_payload
from dlrmcomp.bench.runner import ConstrictionAns, FrameCodec, Sz3, order0_bytes, run

OURS = ["quant+match+ans", "quant+match+huffman", "quant+dedup+ans", "quant+dedup+huffman", "quant+ans", "quant+huffman"]
LIBRARY_RECIPES = [("quant+zstd", 1), ("quant+zstd", 3), ("quant+lz4", None), ("quant+zlib", 1)]


def contestants(eb: float, threads: int = 1, ours=OURS) -> list:
    out = [FrameCodec(name, eb, dtype="int8") for name in ours]
    if threads > 1:
        out += [FrameCodec(name, eb, dtype="int8", threads=threads, label=f"{name} ({threads} threads)") for name in ours[:2]]
    for name, level in LIBRARY_RECIPES:
        label = f"{name}-{level}" if level else name
        out.append(FrameCodec(name, eb, dtype="int8", label=label, **({} if level is None else {"level": level})))
    return out + [ConstrictionAns(eb), Sz3(eb)]


def bench(batches, dim: int, n_tables: int, eb: float, zipf: float, repeat: int, stat: str, threads: int,
          min_seconds: float = 0.0, clock: str = "wall") -> pd.DataFrame:
    frames = []
    for batch in batches:
        tables = embedding_payload(batch, dim, n_tables, exponent=zipf)
        df = pd.DataFrame(run(contestants(eb, threads), tables, repeat, stat, eb, min_seconds, clock))
        df.insert(0, "batch", batch)
        df["% of order-0 bound"] = 100 * df["ratio"] / (df["raw_bytes"] / order0_bytes(tables, eb, dtype="int8"))
        frames.append(df)
        print(f"batch {batch}: done", file=sys.stderr, flush=True)
    return pd.concat(frames, ignore_index=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", default="65536", help="rows a table, comma list (default 65536)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--tables", type=int, default=26)
    p.add_argument("--eb", type=float, default=0.03)
    p.add_argument("--zipf", type=float, default=1.05)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--stat", choices=("min", "median"), default="min")
    p.add_argument("--min-seconds", type=float, default=0.5,
                   help="more rounds until each contestant has been timed this long (small batches)")
    p.add_argument("--threads", type=int, default=1, help="also time ours on this many threads (needs --clock wall)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: CPU time of the thread (a shared machine's load is not counted)")
    p.add_argument("--out", help="CSV of every row")
    args = p.parse_args(argv)
    if args.threads > 1 and args.clock == "cpu":
        p.error("--threads times wall clock: use --clock wall")
    batches = [int(b) for b in args.batch.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M")
    df = bench(batches, args.dim, args.tables, args.eb, args.zipf, args.repeat, args.stat, args.threads,
               args.min_seconds, args.clock)
    if args.out:
        df.to_csv(args.out, index=False)
    print(f"payload: {args.tables} tables x batch x {args.dim} fp32, Zipf {args.zipf}, eb {args.eb} rel per table, "
          f"int8 codes; {platform.processor() or platform.machine()}, 1 thread unless marked; {args.stat} of "
          f">= {args.repeat} interleaved rounds ({args.clock} clock); started {started}")
    cols = ["batch", "codec", "ratio", "compress_gbps", "decompress_gbps", "% of order-0 bound", "violations"]
    print(df[cols].rename(columns={"compress_gbps": "compress GB/s", "decompress_gbps": "decompress GB/s"})
          .to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
