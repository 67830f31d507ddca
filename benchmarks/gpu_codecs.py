"""Our GPU codecs (quantization included) vs nvcomp on pre-quantized codes, on one GPU.

Payloads: DESIGN.md's (26 tables x batch x dim fp32, Zipf popularity) and one without repeated
rows. Throughput is over the fp32 bytes in; times are medians of --repeat runs after a warm-up,
CUDA-synchronised; compressed sizes are whole frames (ours) or nvcomp's output buffers. Usage::

    python benchmarks/gpu_codecs.py [--batch 65536 --dim 64 --tables 26 --repeat 10 --out DIR]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from dlrmcomp.bench.payload import embedding_payload, unique_payload
from dlrmcomp.codecs.gpu.codec import GpuPipeline, _cp, decode_plan, run_decode

ALGOS = ("ANS", "LZ4", "Zstd", "Bitcomp", "Cascaded", "GDeflate")


def timed(fn, repeat: int):
    """(last result, median seconds): CUDA events on the current stream around each call, after one
    warm-up call; the end event is waited on, so host syncs inside ``fn`` are counted too."""
    cp = _cp()
    out = fn()
    cp.cuda.runtime.deviceSynchronize()
    times = []
    for _ in range(repeat):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return out, float(np.median(times))


def order0_bytes(codes) -> float:
    cp = _cp()
    total = 0.0
    for c in codes:
        u = c.reshape(-1).view(cp.uint8 if c.dtype.itemsize == 1 else cp.uint16)
        counts = cp.asnumpy(cp.bincount(u.astype(cp.int32), minlength=256 ** c.dtype.itemsize)).astype(np.float64)
        counts = counts[counts > 0]
        total += float(-(counts * np.log2(counts / counts.sum())).sum()) / 8
    return total


def copy_gbps(nbytes: int, repeat: int) -> float:
    cp = _cp()
    a = cp.empty(nbytes, cp.uint8)
    b = cp.empty_like(a)
    _, t = timed(lambda: b.__setitem__(slice(None), a), repeat)
    return 2 * nbytes / t / 1e9


# (recipe, lanes, chunk, fused, states): round 2's path ("unfused S1": host grid parameters, separate
# histogram pass) is the "before" of each layout; "fused" is this round's (device grid parameters, histogram
# inside quantize); S = interleaved rANS states per thread (encode and decode). Every frame must equal the
# before's. L32/C256K is the CPU-identical layout.
OURS = [("quant+dedup+ans", 32, 1 << 18, False, 1), ("quant+dedup+ans", 32, 1 << 18, True, 1),
        ("quant+dedup+ans", 128, 1 << 16, False, 1), ("quant+dedup+ans", 128, 1 << 16, True, 1),
        ("quant+ans", 32, 1 << 18, False, 1), ("quant+ans", 32, 1 << 18, True, 1),
        ("quant+ans", 128, 1 << 17, False, 1), ("quant+ans", 128, 1 << 17, True, 1),
        ("quant+ans", 128, 1 << 17, True, 2),
        ("quant+ans", 256, 1 << 16, False, 1), ("quant+ans", 256, 1 << 16, True, 1),
        ("quant+ans", 256, 1 << 16, True, 4)]


def run_payload(label, tables, eb, cdt, repeat, nvcomp_ok, configs=OURS):
    cp = _cp()
    xs = [cp.asarray(t) for t in tables]
    raw = sum(t.nbytes for t in tables)
    rows = []
    codes = None
    reference = {}
    for recipe, lanes, chunk, fused, states in configs:
        codec = GpuPipeline(recipe, eb=eb, mode="rel", dtype=cdt, lanes=lanes, chunk=chunk, fused=fused, states=states)
        name = f"ours gpu:{recipe} L{lanes} C{chunk >> 10}K {'fused' if fused else 'unfused'} S{states}"
        try:
            batch, te = timed(lambda: codec.encode_device(xs), repeat)
            frames = batch.frames()
            if recipe == "quant+ans" and codes is None:
                codes = [c.copy() for c in batch.codes]
            same = ""
            key = (recipe, lanes, chunk)
            if key in reference:
                same = "frames == unfused S1 frames" if frames == reference[key] else "FRAMES DIFFER from unfused S1"
            else:
                reference[key] = frames
            codec._profile = {}
            codec.encode_device(xs)
            print(f"profile {label} eb={eb} {name}: " +
                  ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in codec._profile.items()), flush=True)
            del codec._profile
            plan = decode_plan(frames)
            ys, td = timed(lambda: run_decode(plan, states), repeat)
            worst = 0.0
            for x, y, f in zip(xs, ys, frames):
                from dlrmcomp.codecs import read_header
                e = read_header(f).eb_abs
                worst = max(worst, float(cp.abs(y.astype(cp.float64) - x).max()) / e if e else 0.0)
            size = sum(len(f) for f in frames)
            rows.append({"payload": label, "eb": eb, "codec": name, "ratio": raw / size,
                         "compress_GBps": raw / te / 1e9, "decompress_GBps": raw / td / 1e9, "max_err/eb": worst,
                         "note": same})
        except Exception as exc:  # one configuration failing must not lose the table
            import traceback
            traceback.print_exc()
            rows.append({"payload": label, "eb": eb, "codec": f"{name} FAILED: {exc!r:.120}"})
    if codes is None:
        return rows
    ent = order0_bytes(codes)
    rows.append({"payload": label, "eb": eb, "codec": "order-0 entropy of the codes", "ratio": raw / ent})
    if nvcomp_ok:
        from dlrmcomp.codecs.gpu.nvcomp import ALGORITHMS, as_batch, batch_to_cupy, make_codec, nbytes
        stream = cp.cuda.get_current_stream()
        for algo in ALGORITHMS:
            try:
                codec = make_codec(algo, stream.ptr)
                batch_in = as_batch(codes, stream.ptr)
                comp, te = timed(lambda: codec.encode(batch_in), repeat)
                size = nbytes(comp)
                dec, td = timed(lambda: codec.decode(comp, data_type="|u1"), repeat)
                got = batch_to_cupy(dec)
                ok = len(got) == len(codes) and all(
                    g.size == c.nbytes and bool((g == c.reshape(-1).view(cp.uint8)).all()) for g, c in zip(got, codes))
                rows.append({"payload": label, "eb": eb, "codec": f"nvcomp {algo} (int8 codes, batch of {len(codes)})",
                             "ratio": raw / size, "compress_GBps": raw / te / 1e9, "decompress_GBps": raw / td / 1e9,
                             "note": "round trip exact" if ok else "ROUND TRIP MISMATCH"})
            except Exception as exc:  # one algorithm failing must not lose the table
                rows.append({"payload": label, "eb": eb, "codec": f"nvcomp {algo} FAILED: {exc!r:.120}"})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--tables", type=int, default=26)
    p.add_argument("--zipf", type=float, default=1.05)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--bounds", default="0.03:int8,0.01:int8,0.05:int8,0.001:int16")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    cp = _cp()
    try:
        import nvidia.nvcomp  # noqa: F401
        nvcomp_ok = True
    except Exception:
        nvcomp_ok = False
    zipf = embedding_payload(args.batch, args.dim, args.tables, exponent=args.zipf)
    raw = sum(t.nbytes for t in zipf)
    rows = []
    for k, spec in enumerate(args.bounds.split(",")):
        eb, cdt = spec.split(":")
        configs = OURS if k == 0 else [c for c in OURS if c[1] <= 128 and c[3] and c[4] == 1]
        rows += run_payload("zipf", zipf, float(eb), cdt, args.repeat, nvcomp_ok and k == 0, configs)
        print(pd.DataFrame(rows).tail(16).to_markdown(index=False, floatfmt=".2f"), flush=True)
    uniq = unique_payload(args.batch, args.dim, args.tables)
    rows += run_payload("no-repeat", uniq, 0.03, "int8", args.repeat, nvcomp_ok,
                        [c for c in OURS if c[0] == "quant+ans"])
    copy = copy_gbps(raw, args.repeat)
    rows.append({"payload": "-", "codec": "device-to-device copy (read + write)", "compress_GBps": copy})
    df = pd.DataFrame(rows)
    df["% of copy (c/d)"] = [f"{100 * c / copy:.0f}/{100 * d / copy:.0f}" if c == c and d == d else ""
                             for c, d in zip(df.get("compress_GBps", np.nan), df.get("decompress_GBps", np.nan))]
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"\ndevice: {dev}; payload {args.tables} x {args.batch} x {args.dim} fp32 = {raw / 1e6:.0f} MB, "
          f"Zipf {args.zipf}; nvcomp {'yes' if nvcomp_ok else 'not installed'}")
    print(df.to_markdown(index=False, floatfmt=".2f"))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out / "gpu_codecs.csv", index=False)
        (args.out / "gpu_codecs.json").write_text(json.dumps({"device": dev, "rows": rows}, default=str))


if __name__ == "__main__":
    main()
