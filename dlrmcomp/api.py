"""Top-level functions: ``compress``, ``decompress``, ``verify``."""
from __future__ import annotations

import math

import numpy as np

from . import codecs
from .codecs import frame as framing
from .codecs.base import decode_checked


def compress(x, eb: float | None = 0.03, mode: str = "rel", codec: str = "quant+ans", **params) -> bytes:
    """Compress array ``x`` into a self-describing frame.

    ``eb``/``mode`` give the bound of a lossy codec (``mode`` "rel": fraction of the finite value
    range; "abs"); pass ``eb=None`` for a lossless codec. Other ``params`` go to the codec.
    """
    if eb is not None and not codecs.is_lossy(codec):
        raise ValueError(f"codec {codec!r} is lossless: pass eb=None")
    c = codecs.get(codec, eb=eb, mode=mode, **params) if codecs.is_lossy(codec) else codecs.get(codec, **params)
    return c.encode(x)


def decompress(frame) -> np.ndarray:
    """The array stored in a frame written by any dlrmcomp codec (CPU or GPU)."""
    header, payload = framing.unpack(frame)
    try:
        codec = codecs.from_config(header.codec)
    except (ValueError, TypeError) as exc:
        from .errors import CorruptStreamError

        raise CorruptStreamError(f"frame names an unusable codec {header.codec!r}: {exc}") from None
    return decode_checked(codec, payload, header)


def verify(x, y, eb_abs: float | None = None) -> dict:
    """Compare original ``x`` with reconstruction ``y`` element-wise.

    Returns max_abs_err, violations (finite elements with |x - y| > eb_abs, plus non-finite
    elements not reproduced exactly), nonfinite_mismatch, psnr (dB, over the finite range),
    nrmse (RMSE / finite range) and n.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    xf, yf = x.astype(np.float64).reshape(-1), y.astype(np.float64).reshape(-1)
    finite = np.isfinite(xf)
    nonfinite_bad = int(np.count_nonzero(~finite & ~((xf == yf) | (np.isnan(xf) & np.isnan(yf)))))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(xf[finite] - yf[finite])
    max_err = float(np.max(err)) if err.size else 0.0
    bad_finite = int(np.count_nonzero(~(err <= eb_abs))) if eb_abs is not None else 0
    rng = float(np.ptp(xf[finite])) if finite.any() else 0.0
    rmse = float(np.sqrt(np.mean(err ** 2))) if err.size else 0.0
    psnr = math.inf if rmse == 0 else (20 * math.log10(rng / rmse) if rng > 0 else -math.inf)
    return {"n": int(x.size), "max_abs_err": max_err, "violations": bad_finite + nonfinite_bad,
            "nonfinite_mismatch": nonfinite_bad, "psnr": psnr, "nrmse": rmse / rng if rng > 0 else (0.0 if rmse == 0 else math.inf)}
