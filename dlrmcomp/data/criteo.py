"""Criteo Kaggle / Terabyte click logs: text (TSV) and CSV variants, streamed and categorified.

A line is ``label, I1..I13, C1..C26`` (TAB-separated, empty = missing). CSV variants have a header
(``label``/``Label``, ``I1``.., ``C1``..; other columns such as ``Id`` are ignored), may use CRLF
and write the integers as floats. Preprocessing follows the DLRM reference: dense
``log(1 + max(x, 0))``; a categorical hex string becomes ``int(hex, 16) % max_ind_range`` and is
then mapped to a contiguous id (1.., in sorted order; 0 = missing, rare or unseen). Ids are fitted
on the training file (a :class:`Vocabulary`) and applied to dev/test files.

Two streamed passes over fixed-size chunks: the first counts the rows and fits the vocabulary
(with a progress bar), the second writes the arrays chunk by chunk into ``.npy`` files under
``cache_dir`` (memory-mapped on load). Memory holds one chunk and the vocabulary (which grows with
the distinct keys, not with the rows). TSV chunks go through a compiled parser; the lines it does
not take (unusual but valid, or malformed) and CSV files go through the line-by-line parser, which
has the exact rules and error messages. The cache is keyed by a hash of the input bytes and the
options and keeps the fitted vocabulary, so a cached load reads the file once (to hash it) and
parses nothing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from ..codecs._jit import njit
from .batch import N_DENSE, N_SPARSE, Batch, SplitData
from .cache import CacheDir, NpyWriter, building

#: ``$DLRMCOMP_CACHE_DIR/criteo``, else ``~/.cache/dlrmcomp/criteo`` (read when a load uses it).
DEFAULT_CACHE = CacheDir("criteo")
CHUNK_BYTES = 8 << 20  # TSV: bytes read per chunk (cut at the last newline)
CHUNK_ROWS = 1 << 16  # CSV: rows per chunk
CACHE_VERSION = 2  # 2: the vocabulary is cached, the key has "vocab": "fit" for a fitted file
_N_FIELDS = 1 + N_DENSE + N_SPARSE


class CriteoFormatError(ValueError):
    """A malformed line; the message names the file and the line number."""


@dataclass(frozen=True)
class Vocabulary:
    """Per table, the sorted raw keys that get ids 1..len (everything else is 0)."""

    keys: tuple[np.ndarray, ...]

    @property
    def table_sizes(self) -> list[int]:
        return [k.size + 1 for k in self.keys]

    def encode(self, table: int, raw: np.ndarray) -> np.ndarray:
        keys = self.keys[table]
        if keys.size == 0:
            return np.zeros(raw.shape, dtype=np.int64)
        order = np.argsort(raw)  # sorted queries: searchsorted's binary searches run ~2x faster
        pos = np.empty(raw.shape, np.int64)
        pos[order] = np.searchsorted(keys, raw[order])
        hit = (pos < keys.size) & (keys[np.minimum(pos, keys.size - 1)] == raw) & (raw >= 0)
        return np.where(hit, pos + 1, 0)

    def digest(self) -> str:
        h = hashlib.sha1()
        for k in self.keys:
            h.update(np.int64(k.size).tobytes() + k.astype("<i8").tobytes())
        return h.hexdigest()[:16]

    def save(self, path) -> None:
        """One ``.npz``: ``sizes`` (keys per table) and ``keys`` (all tables' keys, concatenated)."""
        np.savez(path, sizes=np.array([k.size for k in self.keys], dtype=np.int64),
                 keys=np.concatenate([k.astype(np.int64) for k in self.keys]))

    @classmethod
    def load(cls, path) -> "Vocabulary":
        with np.load(path) as z:
            sizes, keys = z["sizes"], z["keys"]
        return cls(tuple(np.split(keys, np.cumsum(sizes)[:-1])))


class _KeyCounts:
    """One table's distinct keys and their counts, merged from chunks (sorted arrays; the pending
    chunks are merged once they outgrow what is merged, so the work stays O(n log n))."""

    def __init__(self):
        self.keys = self.counts = np.empty(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._n = 0

    def add(self, raw: np.ndarray) -> None:
        k, c = np.unique(raw[raw >= 0], return_counts=True)
        self._pending.append((k, c))
        self._n += k.size
        if self._n > max(self.keys.size, 1 << 12):
            self._merge()

    def _merge(self) -> None:
        k = np.concatenate([self.keys] + [p[0] for p in self._pending])
        c = np.concatenate([self.counts] + [p[1].astype(np.int64) for p in self._pending])
        self._pending, self._n = [], 0
        if k.size:
            order = np.argsort(k, kind="stable")
            k, c = k[order], c[order]
            first = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
            k, c = k[first], np.add.reduceat(c, first)
        self.keys, self.counts = k, c

    def frequent(self, min_freq: int) -> np.ndarray:
        self._merge()
        return self.keys[self.counts >= min_freq]


def _parse(fields: list, path: Path, n: int) -> tuple[float, list[float], list[int]]:
    if len(fields) != _N_FIELDS or None in fields:
        raise CriteoFormatError(f"{path}:{n}: expected {_N_FIELDS} fields, got {len(fields)}")
    try:
        label = float(fields[0])
        dense = [float(v) if v else 0.0 for v in fields[1:1 + N_DENSE]]
        cats = [int(v, 16) if v else -1 for v in fields[1 + N_DENSE:]]
    except ValueError as e:
        raise CriteoFormatError(f"{path}:{n}: {e}") from None
    if label not in (0.0, 1.0):
        raise CriteoFormatError(f"{path}:{n}: label must be 0 or 1, got {fields[0]!r}")
    if any(not -2**63 <= v < 2**63 for v in cats):
        raise CriteoFormatError(f"{path}:{n}: a categorical value does not fit in 64 bits")
    return label, dense, cats


def _digit_table() -> np.ndarray:
    lut = np.full(256, 255, np.uint8)
    for chars, first in ((b"0123456789", 0), (b"abcdef", 10), (b"ABCDEF", 10)):
        lut[np.frombuffer(chars, np.uint8)] = np.arange(first, first + len(chars))
    return lut


_DIGITS = _digit_table()  # byte -> its value as a hex digit, 255 = not one


@njit(cache=True, nogil=True, inline="always")
def _number(buf, digits, p, q, base, max_len):  # pragma: no cover - compiled
    """``buf[p:q]`` read as at most ``max_len`` digits in ``base``; -1 if it is not that."""
    if q - p > max_len:
        return -1
    v = 0
    for k in range(p, q):
        d = digits[buf[k]]
        if d >= base:
            return -1
        v = v * base + d
    return v


@njit(cache=True, nogil=True, inline="always")
def _tsv_line(buf, digits, p, stop, row, labels, dense, cats):  # pragma: no cover - compiled
    n_dense = dense.shape[1]
    n_fields = 1 + n_dense + cats.shape[1]
    if p == stop:
        return 1
    for f in range(n_fields):
        q = p
        while q < stop and buf[q] != 9:
            q += 1
        if (q == stop) != (f == n_fields - 1):
            return 2  # too few or too many fields
        if f == 0:
            if q - p != 1 or digits[buf[p]] > 1:
                return 2
            labels[row] = digits[buf[p]]
        elif f <= n_dense:
            neg = q > p and buf[p] == 45
            v = _number(buf, digits, p + 1 if neg else p, q, 10, 18)
            if v < 0 or (neg and q == p + 1):
                return 2
            dense[row, f - 1] = -v if neg else v
        else:
            v = _number(buf, digits, p, q, 16, 15) if q > p else -1
            if v < 0 and q > p:
                return 2
            cats[row, f - 1 - n_dense] = v
        p = q + 1
    return 0


@njit(cache=True, nogil=True)
def _parse_tsv(buf, digits, labels, dense, cats, status):  # pragma: no cover - compiled
    """The lines of ``buf`` (uint8, every line ends in a newline) in the common shape: label ``0`` or
    ``1``, 13 decimal integers (optional ``-``, at most 18 digits), 26 hex keys (at most 15 digits),
    TAB-separated, empty = missing, an optional CR before the newline. Per line, ``status`` 0 =
    parsed into that row, 1 = blank, 2 = anything else (for the line-by-line parser)."""
    pos, line = 0, 0
    while pos < buf.size:
        end = pos
        while buf[end] != 10:
            end += 1
        stop = end - 1 if end > pos and buf[end - 1] == 13 else end
        status[line] = _tsv_line(buf, digits, pos, stop, line, labels, dense, cats)
        pos = end + 1
        line += 1


def _tsv_pieces(path: Path, chunk_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(whole lines, each ending in a newline; bytes read) per chunk of the file."""
    with open(path, "rb") as f:
        rest = b""
        while True:
            block = f.read(chunk_bytes)
            if not block:
                if rest:
                    yield rest + b"\n", 0
                return
            cut = block.rfind(b"\n") + 1
            if cut:
                yield rest + memoryview(block)[:cut], len(block)
                rest = block[cut:]
            else:
                rest += block
                yield b"", len(block)


def _tsv_chunk(piece: bytes, n: int, first: int, path: Path, on_bad_line: str, bad: list):
    """The ``n`` lines of ``piece`` (the first is line ``first`` of the file) as arrays."""
    labels = np.empty(n, np.float32)
    dense = np.zeros((n, N_DENSE), np.float64)
    cats = np.empty((n, N_SPARSE), np.int64)
    status = np.empty(n, np.int8)
    a = np.frombuffer(piece, np.uint8)
    _parse_tsv(a, _DIGITS, labels, dense, cats, status)
    slow = np.flatnonzero(status == 2)
    if slow.size:
        ends = np.flatnonzero(a == 10)
        for i in slow:
            start = int(ends[i - 1]) + 1 if i else 0
            try:
                try:
                    text = piece[start:int(ends[i])].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CriteoFormatError(f"{path}:{first + i}: not UTF-8 text ({e.reason})") from None
                fields = text.rstrip("\r\n").split("\t")
                if fields == [""]:
                    status[i] = 1
                    continue
                labels[i], dense[i], cats[i] = _parse(fields, path, first + i)
                status[i] = 0
            except CriteoFormatError:
                if on_bad_line != "skip":
                    raise
                bad.append(first + i)
    keep = status == 0
    if not keep.all():
        labels, dense, cats = labels[keep], dense[keep], cats[keep]
    return labels, dense, cats


def _csv_rows(f, path: Path) -> Iterator[tuple[int, list]]:
    """(line number, [label, 13 ints, 26 hex]) for each data row of a CSV file."""
    reader = csv.reader(f)
    header = [h.strip().lower() for h in next(reader, [])]
    names = ["label"] + [f"i{i}" for i in range(1, N_DENSE + 1)] + [f"c{i}" for i in range(1, N_SPARSE + 1)]
    try:
        cols = [header.index(name) for name in names]
    except ValueError:
        raise CriteoFormatError(f"{path}:1: CSV header lacks one of label, I1..I13, C1..C26") from None
    for n, row in enumerate(reader, 2):
        yield n, [row[c] if c < len(row) else None for c in cols] if len(row) == len(header) else row[:0]


def _csv_chunks(path: Path, on_bad_line: str, bad: list, bar):
    raw = open(path, "rb")
    with io.TextIOWrapper(raw, newline="") as f:
        rows: list = []
        done = 0
        for n, fields in _csv_rows(f, path):
            if not fields or fields == [""]:
                continue
            try:
                rows.append(_parse(fields, path, n))
            except CriteoFormatError:
                if on_bad_line != "skip":
                    raise
                bad.append(n)
            if len(rows) == CHUNK_ROWS:
                bar.update(raw.tell() - done)
                done = raw.tell()
                yield _stack(rows)
                rows = []
        bar.update(raw.tell() - done)
        if rows:
            yield _stack(rows)


def _stack(rows: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([r[0] for r in rows], np.float32), np.array([r[1] for r in rows], np.float64),
            np.array([r[2] for r in rows], np.int64))


def _chunks(path: Path, on_bad_line: str, bad: list, bar) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(labels float32 [n], dense float64 [n, 13], raw keys int64 [n, 26], -1 = missing) per chunk."""
    with open(path, "rb") as f:
        tsv = b"\t" in f.readline() or f.tell() == 0
    if not tsv:
        yield from _csv_chunks(path, on_bad_line, bad, bar)
        return
    line = 1
    for piece, nbytes in _tsv_pieces(path, CHUNK_BYTES):
        if piece:
            n = piece.count(b"\n")
            yield _tsv_chunk(piece, n, line, path, on_bad_line, bad)
            line += n
        bar.update(nbytes)


@dataclass
class CriteoArrays:
    """Preprocessed arrays of one file: dense float32 [N, 13], ids int64 [N, 26], labels [N]."""

    dense: np.ndarray
    cats: np.ndarray
    labels: np.ndarray
    vocab: Vocabulary
    skipped: int = 0

    def __len__(self) -> int:
        return self.labels.size

    def batch(self, start: int, batch_size: int) -> Batch:
        sl = slice(start, start + batch_size)
        return Batch.from_numpy(self.dense[sl], self.cats[sl], self.labels[sl])


def _key(path: Path, options: dict) -> str:
    h = hashlib.sha1(json.dumps(options, sort_keys=True).encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:20]


def _bar(path: Path, what: str, progress: bool):
    return tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"{path.name}: {what}",
                disable=not progress)


def _raw_keys(cats: np.ndarray, max_ind_range: int | None) -> np.ndarray:
    return np.where(cats >= 0, cats % max_ind_range, cats) if max_ind_range else cats


def _first_pass(path: Path, fit: bool, max_ind_range, min_freq: int, on_bad_line: str, bad: list,
                progress: bool) -> tuple[int, Vocabulary | None]:
    """Rows, and (``fit``) the vocabulary."""
    counts = [_KeyCounts() for _ in range(N_SPARSE)] if fit else []
    rows = 0
    with _bar(path, "pass 1/2 (vocabulary)" if fit else "pass 1/2 (rows)", progress) as bar:
        for labels, _, cats in _chunks(path, on_bad_line, bad, bar):
            rows += labels.size
            if fit:
                raw = np.ascontiguousarray(_raw_keys(cats, max_ind_range).T)
                for t, c in enumerate(counts):
                    c.add(raw[t])
    return rows, Vocabulary(tuple(c.frequent(min_freq) for c in counts)) if fit else None


def _second_pass(path: Path, vocab: Vocabulary, max_ind_range, on_bad_line: str, rows: int, out: dict,
                 progress: bool) -> None:
    """Fill ``out`` (name -> array or :class:`NpyWriter`) with the preprocessed rows."""
    r = 0
    with _bar(path, "pass 2/2 (arrays)", progress) as bar:
        for labels, dense, cats in _chunks(path, on_bad_line, [], bar):
            if r + labels.size > rows:
                r += labels.size
                break
            raw = np.ascontiguousarray(_raw_keys(cats, max_ind_range).T)
            ids = np.stack([vocab.encode(t, raw[t]) for t in range(N_SPARSE)], axis=1)
            chunk = {"dense": np.log1p(np.maximum(dense, 0)).astype(np.float32), "cats": ids.astype(np.int64),
                     "labels": labels}
            for name, values in chunk.items():
                if isinstance(out[name], NpyWriter):
                    out[name].write_rows(r, values)
                else:
                    out[name][r:r + labels.size] = values
            r += labels.size
    if r != rows:
        raise CriteoFormatError(f"{path}: the file changed while it was read ({rows} rows in pass 1, "
                                f"{'more' if r > rows else r} in pass 2)")


def _open_cache(folder: Path, vocab: Vocabulary | None) -> CriteoArrays:
    meta = json.loads((folder / "meta.json").read_text())
    vocab = vocab if vocab is not None else Vocabulary.load(folder / "vocab.npz")
    arrays = [np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("dense", "cats", "labels")]
    return CriteoArrays(*arrays, vocab=vocab, skipped=meta["skipped"])


def load_criteo(path, vocab: Vocabulary | None = None, max_ind_range: int | None = None,
                min_freq: int = 1, on_bad_line: str = "error", cache_dir=DEFAULT_CACHE,
                progress: bool = True) -> CriteoArrays:
    """Read (or load from cache) one Criteo text/CSV file.

    ``vocab`` = None fits ids on this file (a training file); pass the training file's
    vocabulary for dev/test files. ``on_bad_line`` is "error" (raise :class:`CriteoFormatError`)
    or "skip" (skip, warn with the count, and report it in ``.skipped``). ``cache_dir`` = None
    keeps the arrays in memory and caches nothing; ``progress`` shows a bar per pass.
    """
    if on_bad_line not in ("error", "skip"):
        raise ValueError(f"on_bad_line must be 'error' or 'skip', got {on_bad_line!r}")
    path = Path(path)
    fit = vocab is None
    options = {"vocab": "fit" if fit else vocab.digest(), "min_freq": min_freq if fit else None,
               "max_ind_range": max_ind_range, "on_bad_line": on_bad_line, "v": CACHE_VERSION}
    cache = Path(cache_dir) / _key(path, options) if cache_dir is not None else None
    if cache is not None and (cache / "meta.json").is_file():
        return _open_cache(cache, vocab)
    bad: list[int] = []
    rows, fitted = _first_pass(path, fit, max_ind_range, min_freq, on_bad_line, bad, progress)
    vocab = fitted if fit else vocab
    if bad:
        warnings.warn(f"{path}: skipped {len(bad)} malformed line(s), first at line {bad[0]}", stacklevel=2)
    shapes = {"dense": ((rows, N_DENSE), np.float32), "cats": ((rows, N_SPARSE), np.int64),
              "labels": ((rows,), np.float32)}
    if cache is None:
        out = {name: np.empty(shape, dtype) for name, (shape, dtype) in shapes.items()}
        _second_pass(path, vocab, max_ind_range, on_bad_line, rows, out, progress)
        return CriteoArrays(out["dense"], out["cats"], out["labels"], vocab, len(bad))
    with building(cache) as tmp:
        out = {name: NpyWriter(tmp / f"{name}.npy", shape, dtype) for name, (shape, dtype) in shapes.items()}
        _second_pass(path, vocab, max_ind_range, on_bad_line, rows, out, progress)
        if fit:
            vocab.save(tmp / "vocab.npz")
        meta = {"source": str(path), "rows": rows, "skipped": len(bad), **options, "vocab": vocab.digest(),
                "fitted": fit}
        (tmp / "meta.json").write_text(json.dumps(meta))
    return _open_cache(cache, vocab)


class CriteoData(SplitData):
    """A training file and a test file (or the last ``holdout`` fraction of the training file).

    Same interface as :class:`~dlrmcomp.data.synthetic.SyntheticCriteo` (see :class:`SplitData`).
    """

    def __init__(self, train_path, test_path=None, holdout: float = 0.1, **options):
        train = load_criteo(train_path, **options)
        if test_path is not None:
            self.train, self.test = train, load_criteo(test_path, vocab=train.vocab, **options)
        else:
            cut = self.holdout_cut(len(train), holdout)
            part = lambda sl: CriteoArrays(train.dense[sl], train.cats[sl], train.labels[sl], train.vocab)  # noqa: E731
            self.train, self.test = part(slice(0, cut)), part(slice(cut, None))
        self.table_sizes = train.vocab.table_sizes
