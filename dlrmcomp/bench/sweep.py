"""Codec sweeps: every (data, codec, bound) -> ratio, error, throughput, in a tidy DataFrame."""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import codecs
from ..api import decompress, verify


def timed(fn, *args, repeat: int = 1):
    """(result, median seconds) of ``fn(*args)`` over ``repeat`` runs after one warm-up."""
    result = fn(*args)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return result, float(np.median(times))


def measure(x: np.ndarray, codec: codecs.Codec, repeat: int = 1) -> dict:
    """One codec on one array: sizes, ratio vs the input bytes, error report, GB/s over input bytes."""
    frame, t_enc = timed(codec.encode, x, repeat=repeat)
    y, t_dec = timed(decompress, frame, repeat=repeat)
    eb_abs = codecs.read_header(frame).eb_abs
    report = verify(x, y, eb_abs)
    gb = x.nbytes / 1e9
    return {"codec": codec.name, "eb": getattr(codec, "eb", None), "eb_abs": eb_abs, "raw_bytes": x.nbytes,
            "frame_bytes": len(frame), "ratio": x.nbytes / len(frame), "max_abs_err": report["max_abs_err"],
            "violations": report["violations"], "psnr": report["psnr"], "nrmse": report["nrmse"],
            "compress_gbps": gb / t_enc if t_enc > 0 else np.inf,
            "decompress_gbps": gb / t_dec if t_dec > 0 else np.inf}


def sweep(data: Mapping[str, np.ndarray], codec_names: Sequence[str], bounds: Sequence[float | None],
          mode: str = "rel", repeat: int = 1, progress: bool = True) -> pd.DataFrame:
    """All combinations; a lossless codec is measured once (eb None) whatever ``bounds`` holds."""
    jobs = []
    for name in codec_names:
        bs = list(bounds) if codecs.is_lossy(name) else [None]
        jobs += [(d, name, eb) for d in data for eb in bs]
    rows = []
    for d, name, eb in tqdm(jobs, desc="codec sweep", disable=not progress):
        codec = codecs.get(name, eb=eb, mode=mode) if eb is not None else codecs.get(name)
        rows.append({"data": d, **measure(np.asarray(data[d]), codec, repeat)})
    return pd.DataFrame(rows)
