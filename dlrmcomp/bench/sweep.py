"""Codec sweeps: every (data, codec, bound) -> ratio, error, throughput, in a tidy DataFrame.

Measurements go through the one runner (:mod:`dlrmcomp.bench.runner`): its timer and its row schema.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import codecs
from .runner import measure, timed

__all__ = ["measure", "sweep", "timed"]


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
