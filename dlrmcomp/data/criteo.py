"""Criteo Kaggle / Terabyte click logs: text (TSV) and CSV variants, streamed and categorified.

A line is ``label, I1..I13, C1..C26`` (TAB-separated, empty = missing). CSV variants have a header
(``label``/``Label``, ``I1``.., ``C1``..; other columns such as ``Id`` are ignored), may use CRLF
and write the integers as floats. Preprocessing follows the DLRM reference: dense
``log(1 + max(x, 0))``; a categorical hex string becomes ``int(hex, 16) % max_ind_range`` and is
then mapped to a contiguous id (1.., in sorted order; 0 = missing, rare or unseen). Ids are fitted
on the training file (a :class:`Vocabulary`) and applied to dev/test files. Two streamed passes
(count, then write); the arrays are cached as ``.npy`` under ``cache_dir`` keyed by a hash of
the input bytes and the options, and memory-mapped on load.
"""
from __future__ import annotations

import csv
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .batch import N_DENSE, N_SPARSE, Batch

DEFAULT_CACHE = Path.home() / ".cache" / "dlrmcomp" / "criteo"


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
        pos = np.searchsorted(keys, raw)
        hit = (pos < keys.size) & (keys[np.minimum(pos, keys.size - 1)] == raw) & (raw >= 0)
        return np.where(hit, pos + 1, 0)

    def digest(self) -> str:
        h = hashlib.sha1()
        for k in self.keys:
            h.update(np.int64(k.size).tobytes() + k.astype("<i8").tobytes())
        return h.hexdigest()[:16]


def _open_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, [label, 13 ints, 26 hex]) for each data line of a TSV or CSV file."""
    with open(path, newline="") as f:
        first = f.readline()
        f.seek(0)
        if "\t" in first:
            for n, line in enumerate(f, 1):
                yield n, line.rstrip("\r\n").split("\t")
            return
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader)]
        names = ["label"] + [f"i{i}" for i in range(1, N_DENSE + 1)] + [f"c{i}" for i in range(1, N_SPARSE + 1)]
        try:
            cols = [header.index(name) for name in names]
        except ValueError:
            raise CriteoFormatError(f"{path}:1: CSV header lacks one of label, I1..I13, C1..C26") from None
        for n, row in enumerate(reader, 2):
            yield n, [row[c] if c < len(row) else None for c in cols] if len(row) == len(header) else row[:0]


def _parse(fields: list, path: Path, n: int) -> tuple[float, list[float], list[int]]:
    if len(fields) != 1 + N_DENSE + N_SPARSE or None in fields:
        raise CriteoFormatError(f"{path}:{n}: expected {1 + N_DENSE + N_SPARSE} fields, got {len(fields)}")
    try:
        label = float(fields[0])
        dense = [float(v) if v else 0.0 for v in fields[1:1 + N_DENSE]]
        cats = [int(v, 16) if v else -1 for v in fields[1 + N_DENSE:]]
    except ValueError as e:
        raise CriteoFormatError(f"{path}:{n}: {e}") from None
    if label not in (0.0, 1.0):
        raise CriteoFormatError(f"{path}:{n}: label must be 0 or 1, got {fields[0]!r}")
    return label, dense, cats


def _records(path: Path, on_bad_line: str, bad: list) -> Iterator[tuple[float, list[float], list[int]]]:
    for n, fields in _open_rows(path):
        if not fields or fields == [""]:
            continue
        try:
            yield _parse(fields, path, n)
        except CriteoFormatError:
            if on_bad_line != "skip":
                raise
            bad.append(n)


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


def _fit_vocab(path: Path, max_ind_range: int | None, min_freq: int, on_bad_line: str) -> Vocabulary:
    counts: list[dict[int, int]] = [{} for _ in range(N_SPARSE)]
    for _, _, cats in _records(path, on_bad_line, []):
        for t, v in enumerate(cats):
            if v >= 0:
                v = v % max_ind_range if max_ind_range else v
                counts[t][v] = counts[t].get(v, 0) + 1
    return Vocabulary(tuple(np.array(sorted(k for k, c in cnt.items() if c >= min_freq), dtype=np.int64)
                            for cnt in counts))


def load_criteo(path, vocab: Vocabulary | None = None, max_ind_range: int | None = None,
                min_freq: int = 1, on_bad_line: str = "error", cache_dir=DEFAULT_CACHE) -> CriteoArrays:
    """Read (or load from cache) one Criteo text/CSV file.

    ``vocab`` = None fits ids on this file (a training file); pass the training file's
    vocabulary for dev/test files. ``on_bad_line`` is "error" (raise :class:`CriteoFormatError`)
    or "skip" (skip, warn with the count, and report it in ``.skipped``).
    """
    if on_bad_line not in ("error", "skip"):
        raise ValueError(f"on_bad_line must be 'error' or 'skip', got {on_bad_line!r}")
    path = Path(path)
    if vocab is None:
        vocab = _fit_vocab(path, max_ind_range, min_freq, on_bad_line)
    options = {"vocab": vocab.digest(), "max_ind_range": max_ind_range, "on_bad_line": on_bad_line, "v": 1}
    cache = Path(cache_dir) / _key(path, options) if cache_dir is not None else None
    if cache is not None and (cache / "meta.json").is_file():
        meta = json.loads((cache / "meta.json").read_text())
        arrays = [np.load(cache / f"{name}.npy", mmap_mode="r") for name in ("dense", "cats", "labels")]
        return CriteoArrays(*arrays, vocab=vocab, skipped=meta["skipped"])
    bad: list[int] = []
    dense, cats, labels = [], [], []
    for label, d, c in _records(path, on_bad_line, bad):
        labels.append(label)
        dense.append(d)
        cats.append(c)
    raw = np.array(cats, dtype=np.int64).reshape(-1, N_SPARSE)
    if max_ind_range:
        raw = np.where(raw >= 0, raw % max_ind_range, raw)
    ids = np.stack([vocab.encode(t, raw[:, t]) for t in range(N_SPARSE)], axis=1) if raw.size else raw
    out = CriteoArrays(np.log1p(np.maximum(np.array(dense, dtype=np.float64).reshape(-1, N_DENSE), 0)).astype(np.float32),
                       ids.astype(np.int64), np.array(labels, dtype=np.float32), vocab, len(bad))
    if bad:
        warnings.warn(f"{path}: skipped {len(bad)} malformed line(s), first at line {bad[0]}", stacklevel=2)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("dense", "cats", "labels"):
            np.save(cache / f"{name}.npy", getattr(out, name))
        (cache / "meta.json").write_text(json.dumps({"source": str(path), "rows": len(out), "skipped": len(bad), **options}))
    return out


class CriteoData:
    """A training file and a test file (or the last ``holdout`` fraction of the training file).

    Same interface as :class:`~dlrmcomp.data.synthetic.SyntheticCriteo`: ``table_sizes``,
    ``batch(k, B)`` (epochs cycle in file order), ``test_batches(B)``.
    """

    def __init__(self, train_path, test_path=None, holdout: float = 0.1, **options):
        train = load_criteo(train_path, **options)
        if test_path is not None:
            self.train, self.test = train, load_criteo(test_path, vocab=train.vocab, **options)
        else:
            n_test = max(1, int(len(train) * holdout))
            cut = len(train) - n_test
            part = lambda sl: CriteoArrays(train.dense[sl], train.cats[sl], train.labels[sl], train.vocab)  # noqa: E731
            self.train, self.test = part(slice(0, cut)), part(slice(cut, None))
        self.table_sizes = train.vocab.table_sizes
        self.bayes_auc = None

    def batch(self, k: int, batch_size: int) -> Batch:
        per_epoch = max(1, len(self.train) // batch_size)
        return self.train.batch((k % per_epoch) * batch_size, batch_size)

    @property
    def test_labels(self) -> np.ndarray:
        return np.asarray(self.test.labels)

    def test_batches(self, batch_size: int = 16384) -> Iterator[Batch]:
        for i in range(0, len(self.test), batch_size):
            yield self.test.batch(i, batch_size)
