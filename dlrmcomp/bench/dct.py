"""DCT+Chop against its peers: rate-distortion on real fields and package images, device throughput.

Rate-distortion (:func:`rate_distortion`): ratio over the input bytes vs PSNR (dB over the finite
range, :func:`dlrmcomp.verify`) for ``dct`` at cf 1..7 (fp32 coefficients, with and without the
fold, and bf16 as the seed stores them), ``dct+quant``, ``sz3`` and ``quant+ans`` at relative
bounds, and ZFP in fixed-rate mode (the seed's baseline) at the rates of dct's ratios
(``rate = bits per value / ratio``, 32/cr for fp32). :func:`at_equal_psnr` reads every curve at
the PSNR a reference point reaches.

Throughput (:func:`throughput`): GB/s over the input bytes of :class:`DctChop` in both forms on a
torch device, fp32 and bf16 batches of square images; the seed's fixed offset 128 and scale 1
(0-255 images), so no range pass is timed. Peers in the same run: ZFP fixed-rate at dct cf=4's
ratio and our ``quant+ans`` (on the host; ``gpu:quant+ans`` bytes in and out on CUDA).
"""
from __future__ import annotations

import math
import time
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import codecs
from ..api import decompress, verify
from .fields import sample_images, scifloat_fields

#: data and sweep sizes; "crop" cuts every array to at most crop x crop in its last two axes
#: and the throughput batches: image sides, fp32 MB per batch, timed repeats
PROFILES = {
    "smoke": {"fields": ("sperr_vorticity.512_512", "sperr_pressur_384x384.d64"), "images": 0, "crop": 128,
              "cfs": (1, 2, 4, 7), "bounds": (1e-1, 1e-2, 1e-3), "sides": (64, 128), "batch_mb": 1, "repeat": 1},
    "demo": {"fields": ("sperr_vorticity.512_512", "sperr_pressur_384x384.d64", "eraint_u_2x3x241x480.f32"),
             "images": 1, "crop": 256, "cfs": (1, 2, 3, 4, 5, 6, 7), "bounds": (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4),
             "sides": (256, 1024), "batch_mb": 4, "repeat": 1},
    "full": {"fields": None, "images": None, "crop": None,
             "cfs": (1, 2, 3, 4, 5, 6, 7), "bounds": (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4),
             "sides": (256, 1024), "batch_mb": 32, "repeat": 3},
}
#: fp32 MB per batch of the host peers in :func:`throughput`
HOST_MB = 32
#: rate-distortion series, in plot order
SERIES = ("dct", "dct fold", "dct bf16", "dct+quant", "zfp fixed-rate", "sz3", "quant+ans")


def rd_data(profile: str = "full") -> dict[str, np.ndarray]:
    """The real fields and package images of a profile (read in place, cropped where it says)."""
    size = PROFILES[profile]
    fields = scifloat_fields()
    if size["fields"] is not None:
        fields = {k: v for k, v in fields.items() if k in size["fields"]}
    images = sample_images()
    data = {**fields, **dict(list(images.items())[:size["images"]])}
    crop = size["crop"]
    return {k: np.ascontiguousarray(v[..., :crop, :crop] if crop else v) for k, v in data.items()}


def _row(data: str, series: str, param: float, x: np.ndarray, nbytes: int, y: np.ndarray, eb_abs=None) -> dict:
    report = verify(x, y, eb_abs)
    return {"data": data, "dtype": x.dtype.name, "series": series, "param": param, "ratio": x.nbytes / nbytes,
            "psnr": report["psnr"],
            "max_abs_err": report["max_abs_err"], "violations": report["violations"] if eb_abs is not None else None}


def _codec_row(data: str, series: str, param: float, x: np.ndarray, codec: codecs.Codec) -> dict:
    frame = codec.encode(x)
    return _row(data, series, param, x, len(frame), decompress(frame), codecs.read_header(frame).eb_abs)


def zfp_rate(ratio: float, dtype: np.dtype, dims: int) -> float:
    """ZFP's fixed rate for ``ratio``: ``8 * itemsize / ratio`` bits a value, but at least twice
    the sign and exponent bits of a block (zfpy 1.0.1 corrupts memory below the minimum)."""
    exponent = 8 if np.dtype(dtype).itemsize == 4 else 11
    return max(8 * np.dtype(dtype).itemsize / ratio, 2 * (1 + exponent) / 4 ** dims)


def zfp_fixed_rate(x: np.ndarray, ratio: float) -> tuple[int, np.ndarray]:
    """(compressed bytes, reconstruction) of ZFP fixed-rate at :func:`zfp_rate`, on the 2-D images
    dct sees (leading axes stacked; short leading axes would pad every 4^d zfp block)."""
    import zfpy

    shape = (x.size // x.shape[-1], x.shape[-1]) if x.ndim >= 2 else (x.size,)
    buf = zfpy.compress_numpy(np.ascontiguousarray(x).reshape(shape), rate=zfp_rate(ratio, x.dtype, len(shape)))
    return len(buf), zfpy.decompress_numpy(buf).reshape(x.shape)


def rate_distortion(data: Mapping[str, np.ndarray], cfs: Sequence[int] = (1, 2, 3, 4, 5, 6, 7),
                    bounds: Sequence[float] = (1e-1, 1e-2, 1e-3, 1e-4), series: Sequence[str] = SERIES,
                    progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per (data, series, param): ratio over the input bytes, PSNR, max error, violations
    (bounded series). ``param`` is cf for dct and ZFP (at dct's ratio for that cf), else the
    relative bound. Series whose library is missing are left out."""
    have = set(codecs.available())
    rows = []
    for name, x in data.items():
        if progress:
            progress(name)
        for cf in cfs:
            if "dct" in series:
                rows.append(_codec_row(name, "dct", cf, x, codecs.get("dct", cf=cf)))
            if "dct fold" in series:
                rows.append(_codec_row(name, "dct fold", cf, x, codecs.get("dct", cf=cf, fold=True)))
            if "dct bf16" in series:
                rows.append(_codec_row(name, "dct bf16", cf, x, codecs.get("dct", cf=cf, dtype="bfloat16")))
            if "zfp fixed-rate" in series and "zfp" in have:
                rows.append(_row(name, "zfp fixed-rate", cf, x, *zfp_fixed_rate(x, 64 / cf ** 2)))
        for eb in bounds:
            for s in ("dct+quant", "sz3", "quant+ans"):
                if s in series and s in have:
                    rows.append(_codec_row(name, s, eb, x, codecs.get(s, eb=eb)))
    return pd.DataFrame(rows)


def at_equal_psnr(rd: pd.DataFrame, reference: tuple[str, float] = ("dct", 4)) -> pd.DataFrame:
    """Per data set: the PSNR the reference (series, param) reaches, and every series' ratio at that
    PSNR (log-ratio interpolated along its curve; NaN outside the PSNRs it spans)."""
    out = []
    for name, part in rd.groupby("data", sort=False):
        ref = part[(part.series == reference[0]) & (part.param == reference[1])]
        if ref.empty:
            continue
        target = float(ref.psnr.iloc[0])
        row = {"data": name, "psnr": target}
        for s, g in part.groupby("series", sort=False):
            g = g[np.isfinite(g.psnr)].sort_values("psnr")
            inside = len(g) >= 2 and g.psnr.min() <= target <= g.psnr.max()
            row[s] = float(np.exp(np.interp(target, g.psnr, np.log(g.ratio)))) if inside else math.nan
        out.append(row)
    return pd.DataFrame(out)


# -- throughput ---------------------------------------------------------------------------------
def _timer(device) -> Callable[[Callable[[], object], int], tuple[object, float]]:
    """``timed(fn, repeat) -> (last result, median seconds)`` after one warm-up: CUDA events on a
    GPU (waited on), ``perf_counter`` on the CPU."""
    import torch

    def timed(fn, repeat):
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times = []
        for _ in range(repeat):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - t0)
        return out, float(np.median(times))

    return timed


def image_batch(n: int, side: int, dtype, device, seed: int = 0):
    """A batch (n, 1, side, side) of smooth-plus-noise 0..255 images on a device."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    ramp = torch.linspace(0, 6.0, side)
    base = 127.5 + 60 * torch.sin(ramp)[:, None] * torch.cos(0.7 * ramp)[None, :]
    x = base + 40 * torch.rand((n, 1, side, side), generator=g)
    return x.clamp_(0, 255).to(device=device, dtype=dtype)


def throughput(device: str = "cpu", sides: Sequence[int] = (256, 1024), dtypes: Sequence[str] = ("float32", "bfloat16"),
               forms: Sequence[str] = ("grown", "blockwise"), cf: int = 4, batch_mb: float = 32.0, repeat: int = 3,
               peers: bool = True, eb: float = 1e-2) -> pd.DataFrame:
    """GB/s over the input bytes, compress and decompress, one row per (method, dtype, side).

    Every batch holds about ``batch_mb`` MB of fp32 images (bf16 batches: the same images).
    DctChop keeps coefficients in the input's dtype. Peers (fp32, at most ``HOST_MB``): ZFP
    fixed-rate at dct's ratio, our ``quant+ans`` at relative bound ``eb`` through frames, and on
    CUDA ``gpu:quant+ans`` (frames in and out of the host, as the all-to-all takes them).
    """
    import torch

    from ..codecs.dct import DctChop

    dev = torch.device(device)
    timed = _timer(dev)
    rows = []
    for side in sides:
        n = max(1, int(batch_mb * 1e6 // (4 * side * side)))
        for dt in dtypes:
            x = image_batch(n, side, getattr(torch, dt), dev)
            for form in forms:
                chop = DctChop(cf=cf, form=form, dtype=dt)
                chopped, tc = timed(lambda: chop.compress(x, 128.0, 1.0), repeat)
                _, td = timed(lambda: chop.decompress(chopped, x.dtype), repeat)
                rows.append(_tp_row(f"DctChop {form}", dev.type, dt, side, n, x.numel() * x.element_size(),
                                    x.numel() * x.element_size() / chopped.nbytes, tc, td))
            del x
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        if peers:  # host codecs on at most HOST_MB (their GB/s does not need a GPU-sized batch)
            n_host = max(1, int(min(batch_mb, HOST_MB) * 1e6 // (4 * side * side)))
            rows += _peer_rows(image_batch(n_host, side, torch.float32, "cpu").numpy(), side, cf, eb, dev, timed, repeat)
    return pd.DataFrame(rows)


def _tp_row(method, device, dtype, side, n, nbytes, ratio, tc, td) -> dict:
    return {"method": method, "device": device, "dtype": dtype, "side": side, "batch": n, "input_MB": nbytes / 1e6,
            "ratio": ratio, "compress_gbps": nbytes / tc / 1e9, "decompress_gbps": nbytes / td / 1e9}


def _peer_rows(x: np.ndarray, side: int, cf: int, eb: float, dev, timed, repeat: int) -> list[dict]:
    import torch

    rows = []
    host = _timer(torch.device("cpu"))
    have = set(codecs.available())
    if "zfp" in have:
        import zfpy

        rate = zfp_rate(64 / cf ** 2, x.dtype, 2)
        flat = x.reshape(-1, side)  # images stacked: 2-D blocks, as dct's
        buf, tc = host(lambda: zfpy.compress_numpy(flat, rate=rate), min(repeat, 2))
        _, td = host(lambda: zfpy.decompress_numpy(buf), min(repeat, 2))
        rows.append(_tp_row(f"zfp fixed-rate {rate:g} bits", "cpu", "float32", side, x.shape[0], x.nbytes,
                            x.nbytes / len(buf), tc, td))
    for name in ("dct", "quant+ans"):
        codec = codecs.get(name, cf=cf) if name == "dct" else codecs.get(name, eb=eb)
        frame, tc = host(lambda: codec.encode(x), min(repeat, 2))
        _, td = host(lambda: decompress(frame), min(repeat, 2))
        label = f"codec {name} (frames)" if name == "dct" else f"codec quant+ans eb {eb:g} (frames)"
        rows.append(_tp_row(label, "cpu", "float32", side, x.shape[0], x.nbytes, x.nbytes / len(frame), tc, td))
    if dev.type == "cuda" and "gpu:quant+ans" in have:
        try:
            gpu = codecs.get("gpu:quant+ans", eb=eb)
            xd = torch.from_numpy(x).to(dev)
            frames, tc = timed(lambda: gpu.encode_batch([xd]), repeat)
            _, td = timed(lambda: gpu.decode_batch(frames, out="torch"), repeat)
            rows.append(_tp_row(f"gpu:quant+ans eb {eb:g} (frames via host)", "cuda", "float32", side, x.shape[0],
                                x.nbytes, x.nbytes / len(frames[0]), tc, td))
        except Exception as exc:  # the GPU codec is optional; its failure must not lose the table
            rows.append({"method": f"gpu:quant+ans FAILED: {exc!r:.100}", "device": "cuda", "side": side})
    return rows


def forms_agree(device: str = "cpu", cf: int = 4, seed: int = 0) -> dict:
    """Largest |grown - blockwise| of the unrounded coefficients and of the reconstructions, for a
    fp32 batch of 0..255 images of side 100 (padded to 104) on ``device``."""
    import torch

    from ..codecs.dct import DctChop

    x = image_batch(4, 100, torch.float32, device, seed)
    fast, grown = (DctChop(cf=cf, form=form, rounding="none") for form in ("blockwise", "grown"))
    cf_, cg = fast.compress(x, 128.0, 1.0), grown.compress(x, 128.0, 1.0)
    return {"coefficients": float((cf_.coeffs - cg.coeffs).abs().max()),
            "values": float((fast.decompress(cf_) - grown.decompress(cg)).abs().max())}
