"""Vector dedup: a 2-D array of rows -> its distinct rows + the inverse index (or matches).

The in-process counterpart of GPULZ's vector matching: in a batch of embedding lookups popular
rows repeat whole, so sending each distinct row once plus one small index per row pays more
than any byte-level match finder. Rows are hashed in one pass (open addressing, rows compared
word by word on a hash hit), so the cost is linear in the payload.

Two indexes name the rows: ``dedup``'s inverse (row r is distinct row inverse[r]) and the
``match`` stage's matches (0: row r is the next distinct row, seen here first; id + 1: it
repeats distinct row id). In a small batch most rows are seen once, so the inverse has about as
many symbols as rows, each with its own table entry, while the matches are mostly 0: at 128-1024
rows a table the inverse's coder tables cost more than the rows they save.
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


# -- matches: the index of the ``match`` stage --------------------------------------------------
@njit(cache=True, nogil=True)
def _matches_kernel(inverse, out):
    """out[r] = 0 where row r is the first of its distinct row (ids in first-occurrence order),
    else inverse[r] + 1; returns the largest value written."""
    nxt, top = 0, 0
    for r in range(inverse.size):
        u = inverse[r]
        if u == nxt:
            out[r] = 0
            nxt += 1
        else:
            out[r] = u + 1
            top = max(top, u + 1)
    return top


@njit(cache=True, nogil=True)
def _inverse_kernel(matches, inverse):
    """Inverse of :func:`_matches_kernel`: -> number of distinct rows, or -1 when a match names a
    row not seen yet."""
    nxt = 0
    for r in range(matches.size):
        m = np.int64(matches[r])
        if m == 0:
            inverse[r] = nxt
            nxt += 1
        elif m - 1 < nxt:
            inverse[r] = m - 1
        else:
            return -1
    return nxt


def matches_of(inverse: np.ndarray) -> np.ndarray:
    """An inverse index in first-occurrence order (:func:`dedup_rows`) -> the ``match`` stage's
    index: 0 for a row seen for the first time (it is the next distinct row), id + 1 for a row
    that repeats distinct row id. In the smallest unsigned dtype that holds it."""
    out = np.empty(inverse.size, np.int64)
    top = _matches_kernel(inverse, out) if inverse.size else 0
    return out.astype(index_dtype(top + 1))


def inverse_of(matches: np.ndarray, n_unique: int) -> np.ndarray | None:
    """The inverse index of a ``match`` index, or None when it is not one of ``n_unique`` rows
    (a match ahead of the rows seen so far, or a literal count other than ``n_unique``)."""
    inverse = np.empty(matches.size, np.int64)
    n = _inverse_kernel(matches, inverse) if matches.size else 0
    return inverse if n == n_unique else None


def match_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rows [R, W] -> (distinct rows [U, W] in first-occurrence order, match index [R])."""
    unique, inverse = dedup_rows(rows)
    return unique, matches_of(inverse)
