"""Our CPU recipes vs zstd / lz4 / zlib / constriction ANS / SZ3 on the DESIGN.md payload.

Every contestant gets the same per-table bound (rel, resolved per table) and includes its
quantization; throughput is over the fp32 bytes in, single-threaded, median of --repeat runs
after a warm-up. Usage::

    python benchmarks/cpu_codecs.py [--batch 65536 --dim 64 --tables 26 --eb 0.03 --repeat 3]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd

import dlrmcomp
from dlrmcomp import codecs
from dlrmcomp.bench.payload import embedding_payload
from dlrmcomp.codecs.entropy import entropy_bits
from dlrmcomp.codecs.quantize import LinearQuantizer, Quantized

OURS = ["quant+dedup+ans", "quant+dedup+huffman", "quant+ans", "quant+huffman"]
LIBRARY_RECIPES = [("quant+zstd", 1), ("quant+zstd", 3), ("quant+lz4", None), ("quant+zlib", 1)]


def recipe(name: str, eb: float, level: int | None):
    codec = codecs.get(name, eb=eb, mode="abs", dtype="int8", **({} if level is None else {"level": level}))
    return codec.encode, dlrmcomp.decompress


def constriction_ans(eb: float):
    """Our quantizer + constriction's stack ANS with the codes' own categorical model."""
    import constriction

    quantizer = LinearQuantizer("int8")

    def encode(x):
        q = quantizer.quantize(x, eb)
        sym = q.codes.reshape(-1).astype(np.int32) + 128
        counts = np.bincount(sym, minlength=256).astype(np.float64)
        model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(sym, model)
        return (coder.get_compressed(), counts, q, x.shape)

    def decode(blob):
        words, counts, q, shape = blob
        model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
        sym = constriction.stream.stack.AnsCoder(words).decode(model, int(np.prod(shape)))
        codes = (sym - 128).astype(np.int8).reshape(shape)
        return LinearQuantizer.dequantize(Quantized(codes, q.escapes, q.grid), np.float32)

    return encode, decode


def sz3(eb: float):
    """SZ3 through pysz on the raw floats, absolute bound (no verification pass: the library alone)."""
    from pysz import sz, szConfig, szErrorBoundMode

    def encode(x):
        cfg = szConfig(*x.shape)
        cfg.errorBoundMode = szErrorBoundMode.ABS
        cfg.absErrorBound = eb
        return (sz.compress(x, cfg)[0], x.shape)

    def decode(blob):
        return sz.decompress(blob[0], np.float32, blob[1])[0]

    return encode, decode


def nbytes(blob) -> int:
    if isinstance(blob, (bytes, bytearray)):
        return len(blob)
    if isinstance(blob, tuple) and isinstance(blob[0], np.ndarray):  # constriction / sz3
        extra = 256 * 4 if len(blob) == 4 else 0  # the model travels with the data
        return blob[0].nbytes + extra
    raise TypeError(type(blob))


def median_seconds(fn, arg, repeat: int) -> tuple[object, float]:
    out = fn(arg)  # warm-up (JIT, caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(arg)
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def run(tables: list[np.ndarray], eb_rel: float, repeat: int) -> pd.DataFrame:
    bounds = [dlrmcomp.ErrorBound(eb_rel).resolve(t) for t in tables]
    raw = sum(t.nbytes for t in tables)
    contestants = {name: [recipe(name, eb, None) for eb in bounds] for name in OURS}
    for name, level in LIBRARY_RECIPES:
        label = f"{name.split('+')[1]}-{level}" if level else name.split("+")[1]
        contestants[f"quant+{label}"] = [recipe(name, eb, level) for eb in bounds]
    contestants["constriction ANS"] = [constriction_ans(eb) for eb in bounds]
    contestants["SZ3 (pysz)"] = [sz3(eb) for eb in bounds]
    rows = []
    for label, fns in contestants.items():
        size = t_enc = t_dec = 0.0
        worst = 0.0
        for x, eb, (enc, dec) in zip(tables, bounds, fns):
            blob, te = median_seconds(enc, x, repeat)
            y, td = median_seconds(dec, blob, repeat)
            size, t_enc, t_dec = size + nbytes(blob), t_enc + te, t_dec + td
            worst = max(worst, float(np.abs(y.astype(np.float64) - x).max()) / eb)
        rows.append({"codec": label, "ratio": raw / size, "compress_GBps": raw / t_enc / 1e9,
                     "decompress_GBps": raw / t_dec / 1e9, "max_err/eb": worst})
    codes = [LinearQuantizer("int8").quantize(x, eb).codes for x, eb in zip(tables, bounds)]
    entropy_bytes = sum(entropy_bits(c) for c in codes) / 8
    df = pd.DataFrame(rows)
    df["% of order-0 bound"] = 100 * df["ratio"] / (raw / entropy_bytes)
    df.attrs["order0_ratio"] = raw / entropy_bytes
    return df


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--tables", type=int, default=26)
    p.add_argument("--eb", type=float, default=0.03)
    p.add_argument("--zipf", type=float, default=1.05)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    tables = embedding_payload(args.batch, args.dim, args.tables, exponent=args.zipf)
    df = run(tables, args.eb, args.repeat)
    mb = sum(t.nbytes for t in tables) / 1e6
    print(f"payload: {args.tables} tables x {args.batch} x {args.dim} fp32 = {mb:.0f} MB, Zipf {args.zipf}, "
          f"eb {args.eb} rel per table, int8 codes; {platform.processor() or platform.machine()}, 1 thread")
    print(f"order-0 entropy bound of the codes: ratio {df.attrs['order0_ratio']:.2f}")
    print(df.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
