"""Slipstream's stale-embedding skipping, on top of FAE's hot phase.

Within an epoch's hot phase the hot table is snapshotted after hot batch ``start`` and again
``round(minibatch_percentage * hot batches)`` batches later. A row is stale when it changed by
less than T in every dimension (its L-inf change < T); an input is droppable when at least
``alpha`` of its lookups hit stale rows. T is bisected in [0, 0.1] (at most 25 steps) until the
droppable fraction of a sample (``sample_rate`` of the hot inputs) of the not-yet-trained hot
inputs lies within 0.08 of the target D (if none does, the T closest to D); then every remaining
hot input is classified and the droppable ones are skipped for the rest of the epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

#: the seeds' search: T in [0, 0.1], at most 25 halvings, done within 0.08 of D
T_RANGE = (0.0, 0.1)
BISECT_STEPS = 25
TOLERANCE = 0.08


def linf_change(before: torch.Tensor, after: torch.Tensor) -> np.ndarray:
    """Per row of two snapshots [H, D]: max over dims of |after - before|, float64 [H]."""
    return (after - before).abs().amax(1).double().cpu().numpy() if before.numel() else np.zeros(before.shape[0])


def droppable(change: np.ndarray, hot_ids: np.ndarray, threshold: float, alpha: int) -> np.ndarray:
    """Inputs (hot-table row ids [N, T]) with at least ``alpha`` lookups on rows whose change < T: bool [N]."""
    return (change[hot_ids] < threshold).sum(1) >= alpha


def threshold_for_drop(change: np.ndarray, hot_ids: np.ndarray, target: float, alpha: int,
                       tolerance: float = TOLERANCE, bounds=T_RANGE, steps: int = BISECT_STEPS) -> tuple[float, float]:
    """(T, droppable fraction of ``hot_ids`` at T): bisection toward ``target`` +- ``tolerance``
    (the fraction grows with T). When no T in ``bounds`` gets within it (the fraction can jump: rows
    every input reads), the visited T closest to the target; the seeds' code keeps the last one."""
    lo, hi = bounds
    best = (float("inf"), hi, float("nan"))
    for _ in range(steps):
        t = (lo + hi) / 2
        frac = float(droppable(change, hot_ids, t, alpha).mean()) if hot_ids.size else 0.0
        best = min(best, (abs(frac - target), t, frac))
        if frac < target - tolerance:
            lo = t
        elif frac > target + tolerance:
            hi = t
        else:
            break
    return best[1], best[2]


@dataclass
class StaleSkip:
    """One epoch's decision: T, the sample's droppable fraction, what was skipped, and the overheads."""

    epoch: int
    threshold: float
    sample_fraction: float
    remaining: int
    skipped: int
    snapshot_s: float
    threshold_s: float
    classify_s: float

    def record(self) -> dict:
        return {"kind": "slipstream", "epoch": self.epoch, "T": self.threshold, "sample_drop": self.sample_fraction,
                "remaining_hot": self.remaining, "skipped": self.skipped,
                "skipped_fraction": self.skipped / max(self.remaining, 1), "snapshot_s": self.snapshot_s,
                "threshold_s": self.threshold_s, "classify_s": self.classify_s}


class StaleSkipper:
    """Slipstream's parameters and its snapshot/classify steps for one hot phase at a time.

    ``target_drop``: D; ``alpha``: stale lookups that make an input droppable; ``sample_rate``:
    fraction of the epoch's hot inputs sampled for the threshold search (at least ``min_sample``);
    ``starting_minibatch`` / ``minibatch_percentage``: where the two snapshots are taken (the
    start is capped at a quarter of the hot batches, so short runs still skip).
    """

    def __init__(self, target_drop: float = 0.3, alpha: int = 26, sample_rate: float = 0.001,
                 starting_minibatch: int = 1000, minibatch_percentage: float = 0.03, min_sample: int = 256,
                 seed: int = 0):
        self.target_drop, self.alpha, self.sample_rate = float(target_drop), int(alpha), float(sample_rate)
        self.starting_minibatch, self.minibatch_percentage = int(starting_minibatch), float(minibatch_percentage)
        self.min_sample = int(min_sample)
        self._rng = np.random.default_rng([seed, 4])
        self.last: tuple | None = None  # the last decision's (change [H], remaining inputs [N, T], sample)

    def window(self, hot_batches: int) -> tuple[int, int]:
        """(hot batch after which the first snapshot is taken, the one after which the second is)."""
        start = min(self.starting_minibatch, hot_batches // 4)
        return start, start + max(1, round(self.minibatch_percentage * hot_batches))

    def split(self, epoch: int, before: torch.Tensor, after: torch.Tensor, hot_ids: np.ndarray, n_hot: int,
              snapshot_s: float) -> tuple[np.ndarray, StaleSkip]:
        """(droppable: bool [N], the decision) for the remaining hot inputs, given as their rows of
        the hot table ``hot_ids`` [N, T], between the snapshots ``before`` and ``after`` [H, D]."""
        t0 = time.perf_counter()
        change = linf_change(before, after)
        n = hot_ids.shape[0]
        size = min(n, max(self.min_sample, round(self.sample_rate * n_hot)))
        sample = hot_ids[self._rng.choice(n, size=size, replace=False)] if n else hot_ids
        threshold, frac = threshold_for_drop(change, sample, self.target_drop, self.alpha)
        t1 = time.perf_counter()
        drop = droppable(change, hot_ids, threshold, self.alpha)
        self.last = (change, hot_ids, sample)
        t2 = time.perf_counter()
        return drop, StaleSkip(epoch, threshold, frac, n, int(drop.sum()), snapshot_s, t1 - t0, t2 - t1)
