"""The synthetic all-to-all payload of DESIGN.md: per-table pooled embeddings of one batch.

26 tables with the Criteo Kaggle cardinalities (capped), lookups drawn from a Zipf popularity,
one-hot pooling, so a table's payload is its looked-up rows: popular rows repeat whole.
"""
from __future__ import annotations

import numpy as np

CRITEO_KAGGLE_ROWS = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
                      27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572)


def zipf_indices(rng: np.random.Generator, n_rows: int, size: int, exponent: float = 1.05) -> np.ndarray:
    """``size`` row ids in [0, n_rows) with P(rank k) proportional to k^-exponent."""
    cdf = np.cumsum(np.arange(1, n_rows + 1, dtype=np.float64) ** -exponent)
    return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1]), n_rows - 1)


def table_payload(rng: np.random.Generator, n_rows: int, batch: int, dim: int, exponent: float = 1.05,
                  scale: float = 0.05) -> np.ndarray:
    """[batch, dim] float32: rows of a N(0, scale) table looked up with Zipf popularity."""
    ids = zipf_indices(rng, n_rows, batch, exponent)
    unique, inverse = np.unique(ids, return_inverse=True)
    rows = rng.normal(0.0, scale, size=(unique.size, dim)).astype(np.float32)
    return rows[inverse]


def embedding_payload(batch: int = 65536, dim: int = 64, n_tables: int = 26, exponent: float = 1.05,
                      row_cap: int = 2_000_000, seed: int = 0,
                      cardinalities=CRITEO_KAGGLE_ROWS) -> list[np.ndarray]:
    """One [batch, dim] float32 array per table (DESIGN.md's payload at the defaults: 436 MB)."""
    rng = np.random.default_rng(seed)
    sizes = [min(int(cardinalities[i % len(cardinalities)]), row_cap) for i in range(n_tables)]
    return [table_payload(rng, n, batch, dim, exponent) for n in sizes]


def unique_payload(batch: int = 65536, dim: int = 64, n_tables: int = 26, seed: int = 0) -> list[np.ndarray]:
    """The same shape without repeated rows (every lookup distinct): dedup cannot help."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 0.05, size=(batch, dim)).astype(np.float32) for _ in range(n_tables)]


#: the cardinalities of :func:`other_payload`
OTHER_ROWS = (5000, 90000, 12, 700000, 333, 4000000, 48, 2600, 150000, 9, 31000, 1200000, 77, 520, 64000, 2000000)


def other_payload(batch: int = 32768, seed: int = 7) -> list[np.ndarray]:
    """A payload built differently from DESIGN.md's: 16 tables of other cardinalities, dim 128, Zipf 1.2."""
    return embedding_payload(batch, 128, 16, exponent=1.2, seed=seed, row_cap=4_000_000, cardinalities=OTHER_ROWS)


PAYLOADS = ("design", "other", "no-repeat")


def make_payload(kind: str, batch: int, dim: int = 64, n_tables: int = 26, exponent: float = 1.05) -> list[np.ndarray]:
    """A payload of :data:`PAYLOADS` at ``batch`` rows a table: ``design`` (:func:`embedding_payload`
    at dim, tables and Zipf exponent), ``other`` (:func:`other_payload`: its own dim, tables and
    exponent) or ``no-repeat`` (:func:`unique_payload`)."""
    if kind == "design":
        return embedding_payload(batch, dim, n_tables, exponent=exponent)
    if kind == "other":
        return other_payload(batch)
    if kind == "no-repeat":
        return unique_payload(batch, dim, n_tables)
    raise ValueError(f"unknown payload {kind!r}; one of {PAYLOADS}")
