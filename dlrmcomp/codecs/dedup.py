"""Vector dedup: a 2-D array of rows -> its distinct rows + the inverse index.

The in-process counterpart of GPULZ's vector matching: in a batch of embedding lookups popular
rows repeat whole, so sending each distinct row once plus one small index per row pays more
than any byte-level match finder. Rows are hashed in one pass (open addressing, rows compared
word by word on a hash hit), so the cost is linear in the payload.
"""
from __future__ import annotations

from ._jit import njit
import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def _dedup_kernel(words, inverse, first_rows):
    """words [R, K] unsigned; fills inverse [R] (first-occurrence ids) and first_rows; returns U."""
    n_rows, n_words = words.shape
    cap = 1
    while cap < 2 * n_rows:
        cap *= 2
    table = np.full(cap, -1, dtype=np.int64)
    mask = np.uint64(cap - 1)
    n_unique = 0
    for r in range(n_rows):
        h = np.uint64(n_words)
        for k in range(n_words):
            h = (h ^ np.uint64(words[r, k])) * np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
        slot = h & mask
        while True:
            u = table[slot]
            if u < 0:
                table[slot] = n_unique
                first_rows[n_unique] = r
                inverse[r] = n_unique
                n_unique += 1
                break
            rep = first_rows[u]
            same = True
            for k in range(n_words):
                if words[rep, k] != words[r, k]:
                    same = False
                    break
            if same:
                inverse[r] = u
                break
            slot = (slot + np.uint64(1)) & mask
    return n_unique


def _as_words(rows: np.ndarray) -> np.ndarray:
    """[R, W] array -> [R, K] unsigned words covering each row's bytes (8-byte words when they fit)."""
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(rows.shape[0], -1)
    for width in (np.uint64, np.uint32, np.uint16):
        if raw.shape[1] % np.dtype(width).itemsize == 0:
            return raw.view(width)
    return raw


def index_dtype(n_unique: int) -> np.dtype:
    """Smallest unsigned dtype holding ids 0..n_unique-1."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n_unique <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def dedup_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rows [R, W] -> (unique [U, W] in first-occurrence order, inverse [R]) with unique[inverse] == rows."""
    if rows.ndim != 2:
        raise ValueError(f"dedup needs a 2-D array of rows, got shape {rows.shape}")
    n = rows.shape[0]
    if n == 0 or rows.shape[1] == 0:
        return rows[:min(n, 1)].copy(), np.zeros(n, dtype=index_dtype(1))
    inverse = np.empty(n, dtype=np.int64)
    first_rows = np.empty(n, dtype=np.int64)
    n_unique = _dedup_kernel(_as_words(rows), inverse, first_rows)
    return rows[first_rows[:n_unique]], inverse.astype(index_dtype(n_unique))
