"""A synthetic Criteo-like click log with a known ground truth (the embedded default).

13 count-like dense features (log1p-transformed) and 26 categorical features with the Criteo
Kaggle cardinalities times ``scale``; category popularity is Zipf. Labels are Bernoulli draws
from a hidden model: per-category effects + pairwise dot products of latent category vectors +
dense effects, with the bias calibrated to ``positive_rate``. Batch ``k`` is a pure function of
``(seed, k)``, so streams are reproducible and resumable; only the test set is held in memory,
and the ground truth's AUC on it (:attr:`SyntheticCriteo.bayes_auc`) is the ceiling for a model.
"""
from __future__ import annotations

from functools import cached_property
from typing import Iterator

import numpy as np

from .batch import N_DENSE, Batch

#: Criteo Kaggle (Display Advertising Challenge) table cardinalities.
KAGGLE_CARDINALITIES = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593,
                        3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105,
                        142572)


def scale_cardinalities(cards=KAGGLE_CARDINALITIES, scale: float = 1e-3, min_rows: int = 8) -> list[int]:
    """``min(c, max(min_rows, round(c * scale)))`` per table: big tables shrink, tiny ones stay."""
    return [int(min(c, max(min_rows, round(c * scale)))) for c in cards]


class SyntheticCriteo:
    """Deterministic synthetic click stream; see the module docstring.

    >>> data = SyntheticCriteo(scale=1e-4, test_size=2000, seed=1)
    >>> b = data.batch(0, 4)
    >>> tuple(b.dense.shape), len(b.indices), round(float(data.test_labels.mean()), 1)
    ((4, 13), 26, 0.2)
    """

    def __init__(self, scale: float = 1e-3, zipf: float = 1.2, test_size: int = 20000,
                 positive_rate: float = 0.25, latent_dim: int = 4, n_pairs: int = 40,
                 cat_effect: float = 0.8, interaction: float = 0.3, dense_effect: float = 0.8,
                 seed: int = 0):
        self.table_sizes = scale_cardinalities(KAGGLE_CARDINALITIES, scale)
        self.zipf, self.test_size, self.seed = float(zipf), int(test_size), int(seed)
        rng = np.random.default_rng([self.seed, 0])
        n = len(self.table_sizes)
        # popularity: rank r has mass ~ (r + 1) ** -zipf; ids are a random permutation of ranks
        self._cdfs, self._ids = [], []
        for rows in self.table_sizes:
            w = np.arange(1, rows + 1, dtype=np.float64) ** -self.zipf
            self._cdfs.append(np.cumsum(w) / w.sum())
            self._ids.append(rng.permutation(rows))
        # ground truth: effects scaled so each term's total variance is roughly its weight ** 2
        self._effects = [rng.normal(0, cat_effect / np.sqrt(n / 4), rows) for rows in self.table_sizes]
        self._latent = [rng.normal(0, 1 / np.sqrt(latent_dim), (rows, latent_dim)) for rows in self.table_sizes]
        all_pairs = [(a, b) for a in range(n) for b in range(a)]
        chosen = rng.choice(len(all_pairs), size=min(n_pairs, len(all_pairs)), replace=False)
        self._pairs = [all_pairs[i] for i in chosen]
        self._pair_w = rng.normal(0, interaction / np.sqrt(len(self._pairs) / 4), len(self._pairs))
        self._dense_mu = rng.uniform(0.0, 4.0, N_DENSE)
        self._dense_sigma = rng.uniform(0.5, 1.5, N_DENSE)
        self._dense_missing = rng.uniform(0.0, 0.4, N_DENSE)
        self._dense_w = rng.normal(0, dense_effect / np.sqrt(N_DENSE / 2), N_DENSE)
        self._bias = 0.0
        self._bias = self._calibrate(positive_rate, rng)

    # -- sampling ------------------------------------------------------------------------
    def _features(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        counts = np.floor(np.exp(rng.normal(self._dense_mu, self._dense_sigma, (n, N_DENSE))))
        counts[rng.random((n, N_DENSE)) < self._dense_missing] = 0
        dense = np.log1p(counts).astype(np.float32)
        u = rng.random((n, len(self.table_sizes)))
        cats = np.stack([ids[np.minimum(np.searchsorted(cdf, u[:, t]), ids.size - 1)]
                         for t, (cdf, ids) in enumerate(zip(self._cdfs, self._ids))], axis=1)
        return dense, cats

    def logit(self, dense: np.ndarray, cats: np.ndarray) -> np.ndarray:
        """The ground truth's logit for dense [n, 13] (log1p) and ids [n, 26]."""
        z = (dense - self._dense_mu / 2) / 2
        out = self._bias + z @ self._dense_w - 0.3 * z[:, 0] * z[:, 1]
        for t, eff in enumerate(self._effects):
            out += eff[cats[:, t]]
        for (a, b), w in zip(self._pairs, self._pair_w):
            out += w * np.einsum("ij,ij->i", self._latent[a][cats[:, a]], self._latent[b][cats[:, b]])
        return out

    def probability(self, dense: np.ndarray, cats: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(dense, cats)))

    def _calibrate(self, rate: float, rng: np.random.Generator, n: int = 50000) -> float:
        logits = self.logit(*self._features(rng, n))
        lo, hi = -20.0, 20.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logits + mid)))) < rate else (lo, mid)
        return (lo + hi) / 2

    def _sample(self, rng: np.random.Generator, n: int):
        dense, cats = self._features(rng, n)
        p = self.probability(dense, cats)
        return dense, cats, (rng.random(n) < p).astype(np.float32), p

    def batch(self, k: int, batch_size: int) -> Batch:
        """Training batch ``k`` (deterministic in ``(seed, k, batch_size)``)."""
        dense, cats, labels, _ = self._sample(np.random.default_rng([self.seed, 1, k, batch_size]), batch_size)
        return Batch.from_numpy(dense, cats, labels)

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Batch]:
        """Endless training stream from batch ``start``."""
        k = start
        while True:
            yield self.batch(k, batch_size)
            k += 1

    # -- the held-out set ------------------------------------------------------------------
    @cached_property
    def _test(self):
        return self._sample(np.random.default_rng([self.seed, 2]), self.test_size)

    @property
    def test_labels(self) -> np.ndarray:
        return self._test[2]

    def test_batches(self, batch_size: int = 16384) -> Iterator[Batch]:
        dense, cats, labels, _ = self._test
        for i in range(0, labels.size, batch_size):
            yield Batch.from_numpy(dense[i:i + batch_size], cats[i:i + batch_size], labels[i:i + batch_size])

    @cached_property
    def bayes_auc(self) -> float:
        """AUC of the ground-truth probabilities on the test set: the ceiling for any model."""
        from ..train.metrics import auc_score

        return auc_score(self._test[2], self._test[3])
