"""FAE's input profiler: which embedding rows are hot, and which training inputs touch only them.

A sample of the training inputs (``ip_sampling_rate``, the seeds' 5%) is counted per (table, row);
the rows sorted by count fill a hot-memory budget of ``budget_bytes // (4 * dim)`` rows, so Lambda
(the seeds' popularity cut) is the count of the last row that fits. An input is hot only if every
one of its sparse indices is hot. The split (index lists + profile) is saved with a run and can be
loaded by later runs (``TrainConfig.hot_split``).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.batch import Batch
from ..io import write_json

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1000, "m": 1 << 20, "mib": 1 << 20, "mb": 10 ** 6,
          "g": 1 << 30, "gib": 1 << 30, "gb": 10 ** 9}


def parse_bytes(spec: str | int) -> int:
    """``"256MiB"`` -> 268435456 (KiB/MiB/GiB, kB/MB/GB, K/M/G = binary; a plain number is bytes)."""
    if isinstance(spec, (int, np.integer)):
        return int(spec)
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", str(spec))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"a memory size like 256MiB, 1GiB or 4096 expected, got {spec!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def batch_ids(batch: Batch) -> np.ndarray:
    """The ids of a one-hot batch as int64 [B, T] (every bag holds exactly one index)."""
    for off in batch.offsets:
        if not torch.equal(off, torch.arange(batch.size, dtype=off.dtype)):
            raise ValueError("hot/cold training needs one-hot inputs (one index per table and sample)")
    return torch.stack(batch.indices, 1).numpy()


class EpochInputs:
    """One epoch of a data source's training inputs held in memory: dense float32 [N, 13], ids int64
    [N, T], labels float32 [N] from ``data.batch(k, batch_size)``, k < ``n_batches``.

    A data source itself (what :class:`~dlrmcomp.train.Trainer` reads): ``batch(k, B)`` cycles the
    epoch in order (the baseline's order); test set, ``table_sizes`` and ``bayes_auc`` are the
    source's. ``take(idx)`` is the batch of the inputs ``idx`` (what the hot/cold schedule trains).
    """

    def __init__(self, data, batch_size: int, n_batches: int):
        parts = [data.batch(k, batch_size) for k in range(n_batches)]
        self.dense = torch.cat([b.dense for b in parts]).numpy()
        self.ids = np.concatenate([batch_ids(b) for b in parts])
        self.labels = torch.cat([b.labels for b in parts]).numpy()
        self.source, self.table_sizes = data, list(data.table_sizes)

    def __len__(self) -> int:
        return self.labels.size

    def take(self, idx: np.ndarray) -> Batch:
        return Batch.from_numpy(self.dense[idx], self.ids[idx], self.labels[idx])

    def batch(self, k: int, batch_size: int) -> Batch:
        start = (k % max(1, len(self) // batch_size)) * batch_size
        return self.take(np.arange(start, min(start + batch_size, len(self))))

    @property
    def bayes_auc(self):
        return getattr(self.source, "bayes_auc", None)

    @property
    def test_labels(self) -> np.ndarray:
        return self.source.test_labels

    def test_batches(self, batch_size: int = 16384):
        return self.source.test_batches(batch_size)


@dataclass
class HotColdSplit:
    """A profile and the inputs it splits.

    ``hot_rows``: sorted fused row ids (``row_offsets[t] + row``) of the hot rows [H];
    ``counts``: their sampled access counts [H]; ``hot_inputs`` / ``cold_inputs``: sorted input
    indices; ``lambda_``: the count of the last row that fit the budget (0: no hot rows).
    """

    hot_rows: np.ndarray
    counts: np.ndarray
    hot_inputs: np.ndarray
    cold_inputs: np.ndarray
    table_sizes: list[int]
    dim: int
    budget_bytes: int
    ip_sampling_rate: float
    sampled: int
    lambda_: int
    seconds: float = 0.0
    row_offsets: np.ndarray = field(init=False, repr=False)
    hot_offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.row_offsets = np.r_[0, np.cumsum(self.table_sizes)].astype(np.int64)
        self.hot_offsets = np.searchsorted(self.hot_rows, self.row_offsets).astype(np.int64)

    @property
    def hot_table_sizes(self) -> list[int]:
        """Hot rows per table (the concatenated hot table's parts)."""
        return np.diff(self.hot_offsets).tolist()

    @property
    def hot_fraction(self) -> float:
        n = self.hot_inputs.size + self.cold_inputs.size
        return self.hot_inputs.size / n if n else 0.0

    def is_hot_row(self, ids: np.ndarray) -> np.ndarray:
        """Per id of ``ids`` [N, T]: is that (table, row) hot? bool [N, T]."""
        fused = ids + self.row_offsets[:ids.shape[1]]
        pos = np.minimum(np.searchsorted(self.hot_rows, fused), max(self.hot_rows.size - 1, 0))
        return (self.hot_rows[pos] == fused) if self.hot_rows.size else np.zeros(ids.shape, bool)

    def to_hot(self, ids: np.ndarray) -> np.ndarray:
        """Ids [N, T] of hot inputs -> their rows in the hot table's per-table parts [N, T]."""
        return np.searchsorted(self.hot_rows, ids + self.row_offsets[:ids.shape[1]]) - self.hot_offsets[:ids.shape[1]]

    def from_hot(self, hot_ids: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_hot`."""
        t = hot_ids.shape[1]
        return self.hot_rows[hot_ids + self.hot_offsets[:t]] - self.row_offsets[:t]

    def info(self) -> dict:
        """What the logs and ``summary.json`` carry."""
        return {"hot_fraction": self.hot_fraction, "lambda": self.lambda_, "hot_rows": int(self.hot_rows.size),
                "hot_inputs": int(self.hot_inputs.size), "cold_inputs": int(self.cold_inputs.size),
                "budget_bytes": self.budget_bytes, "hot_table_bytes": int(self.hot_rows.size) * 4 * self.dim,
                "ip_sampling_rate": self.ip_sampling_rate, "sampled_inputs": self.sampled,
                "profile_s": self.seconds}

    def save(self, folder) -> Path:
        """``folder/split.npz`` (rows, counts, input lists) + ``folder/profile.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "split.npz", hot_rows=self.hot_rows, counts=self.counts,
                            hot_inputs=self.hot_inputs, cold_inputs=self.cold_inputs)
        write_json(folder / "profile.json", {**self.info(), "table_sizes": self.table_sizes, "dim": self.dim})
        return folder

    @classmethod
    def load(cls, folder) -> "HotColdSplit":
        folder = Path(folder)
        meta = json.loads((folder / "profile.json").read_text())
        with np.load(folder / "split.npz") as z:
            arrays = {k: z[k] for k in ("hot_rows", "counts", "hot_inputs", "cold_inputs")}
        return cls(**arrays, table_sizes=meta["table_sizes"], dim=meta["dim"], budget_bytes=meta["budget_bytes"],
                   ip_sampling_rate=meta["ip_sampling_rate"], sampled=meta["sampled_inputs"],
                   lambda_=meta["lambda"], seconds=meta["profile_s"])


def hot_rows_for_budget(counts: np.ndarray, budget_bytes: int, dim: int) -> tuple[np.ndarray, int]:
    """(sorted fused ids of the rows that fit, Lambda): the most-counted rows first (ties: lower
    id), at most ``budget_bytes // (4 * dim)`` of them, only rows the sample touched."""
    touched = np.flatnonzero(counts)
    order = touched[np.lexsort((touched, -counts[touched]))]
    fit = order[:budget_bytes // (4 * dim)]
    return np.sort(fit), int(counts[fit[-1]]) if fit.size else 0


def profile_inputs(ids: np.ndarray, table_sizes, dim: int, budget_bytes: int | str, ip_sampling_rate: float = 0.05,
                   seed: int = 0) -> HotColdSplit:
    """Profile ``ip_sampling_rate`` of the inputs ``ids`` [N, T] and split all N into hot and cold."""
    t0 = time.perf_counter()
    budget = parse_bytes(budget_bytes)
    n = ids.shape[0]
    sample = np.random.default_rng(seed).choice(n, size=max(1, round(ip_sampling_rate * n)), replace=False) \
        if ip_sampling_rate < 1 else np.arange(n)
    offsets = np.r_[0, np.cumsum(table_sizes)].astype(np.int64)
    counts = np.bincount((ids[sample] + offsets[:-1]).ravel(), minlength=int(offsets[-1]))
    hot_rows, lam = hot_rows_for_budget(counts, budget, dim)
    is_hot = np.zeros(int(offsets[-1]), bool)
    is_hot[hot_rows] = True
    hot = is_hot[ids + offsets[:-1]].all(1)
    return HotColdSplit(hot_rows.astype(np.int64), counts[hot_rows], np.flatnonzero(hot), np.flatnonzero(~hot),
                        [int(s) for s in table_sizes], int(dim), budget, float(ip_sampling_rate), int(sample.size),
                        lam, time.perf_counter() - t0)
