"""Our GPU codecs (quantization included) vs nvcomp on pre-quantized codes, on one GPU.

Payloads: DESIGN.md's (26 tables x batch x dim fp32, Zipf 1.05), one built differently (16
tables, dim 128, Zipf 1.2, other cardinalities) and one without repeated rows. Throughput is over
the fp32 bytes in; times are medians of --repeat runs after a warm-up. Rows:

- ``wire ... end-to-end``: what the all-to-all calls (:class:`dlrmcomp.exchange.device.DeviceWire`):
  torch CUDA tensors in -> packed wire buffer on the device, and back into output tensors with the
  error check (one sync); wall clock around the call until its work is done;
- ``wire ... device``: the same calls timed with CUDA events only (the kernels' time);
- ``frames ... kernels only`` / ``frames ... bytes in and out``: the frame codec (``encode_device`` /
  ``run_decode`` vs ``encode_batch`` / ``decode_batch``: host bytes, what the old all-to-all used);
- nvcomp on the int8 codes (quantization not counted), and a device-to-device copy. Usage::

    python benchmarks/gpu_codecs.py [--batch 65536 --dim 64 --tables 26 --repeat 10 --out DIR]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from dlrmcomp.bench.payload import make_payload
from dlrmcomp.bench.runner import timed as run_timed
from dlrmcomp.codecs.entropy import entropy_bits
from dlrmcomp.codecs.gpu.codec import GpuPipeline
from dlrmcomp.codecs.gpu.decode import decode_plan, run_decode
from dlrmcomp.codecs.gpu.runtime import cp_module as _cp

ALGOS = ("ANS", "LZ4", "Zstd", "Bitcomp", "Cascaded", "GDeflate")


def timed(fn, repeat: int):
    """(last result, median seconds): CUDA events on the current stream around each call, after one
    warm-up call (the runner's ``cuda`` clock); host syncs inside ``fn`` are counted too."""
    return run_timed(fn, repeat=repeat, clock="cuda")


def wall(fn, repeat: int):
    """(last result, median seconds) of ``fn(); synchronize`` on the host clock, after a warm-up."""
    return run_timed(fn, repeat=repeat, sync=_cp().cuda.runtime.deviceSynchronize)


def order0_bytes(codes) -> float:
    """The order-0 bound of device codes (the runner's entropy function, on a host copy)."""
    return sum(entropy_bits(_cp().asnumpy(c)) for c in codes) / 8


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
OURS = [("quant+dedup+ans", 128, 1 << 16, True, 1), ("quant+ans", 128, 1 << 16, True, 1)]
#: the wire path's lane layouts (lanes, chunk)
WIRE = ((128, 1 << 16, 1), (128, 1 << 16, 2), (128, 1 << 16, 4), (256, 1 << 15, 1), (32, 1 << 18, 1))


def wire_rows(label, tables, eb, repeat):
    """End-to-end and device-time rows of the wire path (what the all-to-all calls)."""
    import torch

    from dlrmcomp.exchange import wire
    from dlrmcomp.exchange.device import DeviceWire, StageTimes

    xs = [torch.from_numpy(t).cuda() for t in tables]
    raw = sum(t.nbytes for t in tables)
    rows = []
    for lanes, chunk, states in WIRE:
        w = DeviceWire(lanes=lanes, chunk=chunk, states=states)
        bounds = [eb] * len(xs)
        enc, te = wall(lambda: w.encode(xs, bounds), repeat)
        _, te_dev = timed(lambda: w.encode(xs, bounds), repeat)
        lengths = enc.lengths.get()
        buf = enc.buffer
        outs = [torch.empty_like(x) for x in xs]
        shapes = [tuple(x.shape) for x in xs]
        _, td = wall(lambda: w.decode(buf, lengths, shapes, outs).check(), repeat)
        _, td_dev = timed(lambda: w.decode(buf, lengths, shapes, outs), repeat)
        se, sd = StageTimes(), StageTimes()
        w.encode(xs, bounds, stages=se)
        w.decode(buf, lengths, shapes, outs, stages=sd)
        print(f"stages {label} L{lanes} S{states}: encode " + ", ".join(f"{k} {1e3 * v:.3f} ms" for k, v in se.seconds().items())
              + "; decode " + ", ".join(f"{k} {1e3 * v:.3f} ms" for k, v in sd.seconds().items()), flush=True)
        views = wire.split(buf[:int(lengths.sum())].cpu().numpy(), lengths)
        worst = max(float((o.double() - x.double()).abs().max()) / wire.Descriptor.unpack(v).eb_abs
                    for o, x, v in zip(outs, xs, views))
        name = f"ours wire quant+ans L{lanes} C{chunk >> 10}K S{states}"
        ratio = raw / int(lengths.sum())
        rows.append({"payload": label, "eb": eb, "codec": f"{name} end-to-end", "ratio": ratio,
                     "compress_gbps": raw / te / 1e9, "decompress_gbps": raw / td / 1e9, "max_err/eb": worst,
                     "note": "tensors in, device buffer out, and back (incl. the error check's sync)"})
        rows.append({"payload": label, "eb": eb, "codec": f"{name} device", "ratio": ratio,
                     "compress_gbps": raw / te_dev / 1e9, "decompress_gbps": raw / td_dev / 1e9,
                     "note": "CUDA events around the same calls"})
    return rows


def frame_bytes_rows(label, tables, eb, repeat):
    """The frame codec through host bytes (encode_batch / decode_batch): the old all-to-all path."""
    cp = _cp()
    xs = [cp.asarray(t) for t in tables]
    raw = sum(t.nbytes for t in tables)
    codec = GpuPipeline("quant+ans", eb=eb, mode="rel", dtype="int8", lanes=128, chunk=1 << 16)
    frames, te = wall(lambda: codec.encode_batch(xs), repeat)
    _, td = wall(lambda: codec.decode_batch(frames), repeat)
    return [{"payload": label, "eb": eb, "codec": "frames gpu:quant+ans L128 bytes in and out (encode_batch/decode_batch)",
             "ratio": raw / sum(len(f) for f in frames), "compress_gbps": raw / te / 1e9,
             "decompress_gbps": raw / td / 1e9}]


def run_payload(label, tables, eb, cdt, repeat, nvcomp_ok, configs=OURS):
    cp = _cp()
    xs = [cp.asarray(t) for t in tables]
    raw = sum(t.nbytes for t in tables)
    rows = []
    codes = None
    reference = {}
    for recipe, lanes, chunk, fused, states in configs:
        codec = GpuPipeline(recipe, eb=eb, mode="rel", dtype=cdt, lanes=lanes, chunk=chunk, fused=fused, states=states)
        name = f"frames gpu:{recipe} L{lanes} C{chunk >> 10}K kernels only"
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
            codec.profile = {}
            codec.encode_device(xs)
            print(f"profile {label} eb={eb} {name}: " +
                  ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in codec.profile.items()), flush=True)
            codec.profile = None
            plan = decode_plan(frames)
            ys, td = timed(lambda: run_decode(plan, states), repeat)
            worst = 0.0
            for x, y, f in zip(xs, ys, frames):
                from dlrmcomp.codecs import read_header
                e = read_header(f).eb_abs
                worst = max(worst, float(cp.abs(y.astype(cp.float64) - x).max()) / e if e else 0.0)
            size = sum(len(f) for f in frames)
            rows.append({"payload": label, "eb": eb, "codec": name, "ratio": raw / size,
                         "compress_gbps": raw / te / 1e9, "decompress_gbps": raw / td / 1e9, "max_err/eb": worst,
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
                             "ratio": raw / size, "compress_gbps": raw / te / 1e9, "decompress_gbps": raw / td / 1e9,
                             "note": "round trip exact" if ok else "ROUND TRIP MISMATCH"})
            except Exception as exc:  # one algorithm failing must not lose the table
                rows.append({"payload": label, "eb": eb, "codec": f"nvcomp {algo} FAILED: {exc!r:.120}"})
    return rows


def payloads(args):
    """(label, tables): DESIGN.md's payload and one built differently (as many bytes a table)."""
    yield "design", make_payload("design", args.batch, args.dim, args.tables, args.zipf)
    yield "other", make_payload("other", args.batch // 2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--tables", type=int, default=26)
    p.add_argument("--zipf", type=float, default=1.05)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--eb", type=float, default=0.03)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    cp = _cp()
    try:
        import nvidia.nvcomp  # noqa: F401
        nvcomp_ok = True
    except Exception:
        nvcomp_ok = False
    rows, sizes = [], {}
    for label, tables in payloads(args):
        sizes[label] = sum(t.nbytes for t in tables)
        rows += wire_rows(label, tables, args.eb, args.repeat)
        rows += frame_bytes_rows(label, tables, args.eb, args.repeat)
        rows += run_payload(label, tables, args.eb, "int8", args.repeat, nvcomp_ok)
        print(pd.DataFrame(rows).tail(16).to_markdown(index=False, floatfmt=".2f"), flush=True)
        del tables
    uniq = make_payload("no-repeat", args.batch, args.dim, args.tables)
    rows += wire_rows("no-repeat", uniq, args.eb, args.repeat)
    copy = copy_gbps(sizes["design"], args.repeat)
    rows.append({"payload": "-", "codec": "device-to-device copy (read + write)", "compress_gbps": copy})
    df = pd.DataFrame(rows)
    df["% of copy (c/d)"] = [f"{100 * c / copy:.0f}/{100 * d / copy:.0f}" if c == c and d == d else ""
                             for c, d in zip(df.get("compress_gbps", np.nan), df.get("decompress_gbps", np.nan))]
    dev = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"\ndevice: {dev}; payloads (MB): {', '.join(f'{k} {v / 1e6:.0f}' for k, v in sizes.items())}; "
          f"eb {args.eb} rel; nvcomp {'yes' if nvcomp_ok else 'not installed'}")
    print(df.to_markdown(index=False, floatfmt=".2f"))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out / "gpu_codecs.csv", index=False)
        (args.out / "gpu_codecs.json").write_text(json.dumps({"device": dev, "rows": rows}, default=str))


if __name__ == "__main__":
    main()
