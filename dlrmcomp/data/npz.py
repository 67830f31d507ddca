"""The reference DLRM's processed Criteo arrays (``facebookresearch/dlrm``, ``data_utils.py``).

``getCriteoAdData`` turns the text logs into ``.npz`` files, all written by ``np.savez_compressed``:

* the whole set, ``kaggleAdDisplayChallenge_processed.npz`` or ``terabyte_processed.npz`` next to
  the raw file (what ``--processed-data-file`` names; ``concatCriteoAdData``): ``X_int`` int32
  [N, 13] (the integer features, negatives set to 0), ``X_cat`` [N, 26] (per table a contiguous id
  0..counts-1; float64 as written), ``y`` int32 [N] and ``counts`` int32 [26] (rows per table);
* per day ``d``, next to the raw file ``RAW`` (Kaggle ``train.txt``: ``train_day_<d>_...``,
  Terabyte ``day``: ``day_<d>_...``): ``..._processed.npz`` (``X_int``, ``X_cat``, ``y`` as above,
  ``X_cat`` in Fortran order) and, with ``--memory-map``, the shuffled ``..._reordered.npz`` the
  reference then trains from (the same members, all float64); ``RAW_fea_count.npz`` holds
  ``counts`` and ``RAW_day_count.npz`` ``total_per_file`` (rows per day).

What the reference does when it loads them, :class:`NpzData` does per batch: dense
``log(X_int + 1)`` in float32, ids ``X_cat % max_ind_range`` when that is given (tables then have
``min(count, max_ind_range)`` rows), labels float32. Like the reference it trains on all days but
the last and tests on the first half (rounded up) of the last day (the second half is its
validation set). A processed file without its day counts (no ``*_day_count.npz`` beside it whose
days add up to its rows) holds out its last ``holdout`` fraction instead, as ``criteo:`` does.
Batches follow the file order: the reference shuffles a processed file when it loads it
(``--data-randomize=total``); the reordered day files are shuffled already.

Members stored uncompressed (``np.savez``) are memory-mapped where they lie in the zip.
Compressed members (what the reference writes) cannot be: they are decompressed once, in chunks,
into ``.npy`` files under ``cache_dir`` (``X_int``, ``X_cat`` as int32, ``y`` as int8, in the
stored order) and memory-mapped from there, one folder per input file keyed by its members' CRC-32s
and sizes and the counts. Every value is checked once, chunk by chunk (integers; labels 0 or 1;
``X_int`` >= 0; ``X_cat`` below its table's count), and an error names the file and the record;
a cached file is not checked again (with ``cache_dir=None`` it is checked on every load).
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from .batch import N_DENSE, Batch, SplitData
from .cache import CacheDir, NpyWriter, building
from .criteo import CriteoFormatError

#: ``$DLRMCOMP_CACHE_DIR/npz``, else ``~/.cache/dlrmcomp/npz`` (read when a load uses it).
DEFAULT_CACHE = CacheDir("npz")
CHUNK = 1 << 20  # values per chunk
CACHE_VERSION = 1
FIELDS = ("X_int", "X_cat", "y")
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # a zip local file header (30 bytes)


class NpzFormatError(CriteoFormatError):
    """A malformed reference ``.npz``; the message names the file and, for a bad value, the record."""


@dataclass
class _Member:
    """One ``.npy`` array inside a zip: its entry and its header."""

    name: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    header_len: int  # bytes of .npy header before the values

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def stored(self) -> bool:
        return self.info.compress_type == zipfile.ZIP_STORED


def _read_header(fp, where: str, name: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        header_len = fp.tell()
    except (ValueError, EOFError, zlib.error, zipfile.BadZipFile) as e:
        raise NpzFormatError(f"{where}: {name}: not a readable .npy array ({e})") from None
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise NpzFormatError(f"{where}: {name} has dtype {dtype}, expected integers or floats")
    return tuple(shape), dtype, fortran, header_len


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise NpzFormatError(f"{path}: not an .npz (zip) file ({e})") from None


def _members(path: Path, zf: zipfile.ZipFile, names) -> dict[str, _Member]:
    out = {}
    for name in names:
        try:
            info = zf.getinfo(f"{name}.npy")
        except KeyError:
            have = sorted(n.removesuffix(".npy") for n in zf.namelist())
            raise NpzFormatError(f"{path}: lacks {name!r} (it holds {have}); expected the reference's "
                                 f"{', '.join(FIELDS)}") from None
        with zf.open(info) as fp:
            out[name] = _Member(name, info, *_read_header(fp, str(path), name))
    return out


def _check_shapes(path: Path, m: dict[str, _Member], n_tables: int) -> int:
    n = m["y"].shape[0] if len(m["y"].shape) == 1 else -1
    expected = {"y": ((n,), "(N,)"), "X_int": ((n, N_DENSE), f"(N, {N_DENSE})"),
                "X_cat": ((n, n_tables), f"(N, {n_tables})")}
    for name, (shape, text) in expected.items():
        if m[name].shape != shape:
            raise NpzFormatError(f"{path}: {name} has shape {m[name].shape}, expected {text} with N = rows of y "
                                 f"{m['y'].shape} and {n_tables} tables (counts)")
    return n


def _read_counts(path: Path, name: str = "counts") -> np.ndarray:
    """A small integer vector member (``counts``, ``total_per_file``), checked: 1-D, integers >= 1."""
    try:
        with np.load(path) as z:
            v = np.asarray(z[name]) if name in z.files else sorted(z.files)
    except (zipfile.BadZipFile, ValueError, TypeError) as e:
        raise NpzFormatError(f"{path}: not a readable .npz ({e})") from None
    if isinstance(v, list):
        raise NpzFormatError(f"{path}: lacks {name!r} (it holds {v})")
    if v.ndim != 1 or v.size == 0 or v.dtype.kind not in "iuf" or not np.all(np.isfinite(v)) \
            or np.any(v != np.floor(v)) or np.any(v < 1):
        raise NpzFormatError(f"{path}: {name} must be a non-empty vector of integers >= 1, got "
                             f"{v.dtype} {v.shape}: {v[:8].tolist()}")
    return v.astype(np.int64)


def _record(m: _Member, e: int) -> tuple[int, int | None]:
    """(record, column) of the value at storage position ``e``."""
    if len(m.shape) == 1:
        return e, None
    n, cols = m.shape
    return (e % n, e // n) if m.fortran else (e // cols, e % cols)


def _check_values(where: str, m: _Member, values: np.ndarray, e0: int, counts: np.ndarray) -> None:
    """Raise :class:`NpzFormatError` at the first bad value of ``values`` (positions ``e0..`` of
    ``m`` in storage order)."""
    bad = ~np.isfinite(values) | (values != np.floor(values)) if values.dtype.kind == "f" else np.zeros(values.size, bool)
    if m.name == "y":
        bad |= (values != 0) & (values != 1)
        rule = "labels are 0 or 1"
    elif m.name == "X_int":
        bad |= (values < 0) | (values >= 2**31)
        rule = "integer features are integers in 0..2**31-1 (the reference sets negatives to 0)"
    else:
        pos = np.arange(e0, e0 + values.size)
        limit = counts[pos // m.shape[0] if m.fortran else pos % m.shape[1]]
        bad |= (values < 0) | (values >= limit)
        rule = "ids of table t are integers in 0..counts[t]-1"
    if bad.any():
        i = int(np.argmax(bad))
        r, c = _record(m, e0 + i)
        cell = f"{m.name}[{r}]" if c is None else f"{m.name}[{r}, {c}]"
        extra = f" (counts[{c}] = {counts[c]})" if m.name == "X_cat" else ""
        raise NpzFormatError(f"{where}: record {r}: {cell} = {values[i].item()!r}{extra}; {rule}")


def _stored_values(path: Path, m: _Member) -> Iterator[np.ndarray]:
    """A stored member's values in storage order, in chunks, read with plain reads (nothing
    stays mapped), checking the zip's CRC-32 on the way."""
    with open(path, "rb") as f:
        f.seek(_data_offset(path, f, m) - m.header_len)
        crc = zlib.crc32(f.read(m.header_len))
        left = m.size * m.dtype.itemsize
        while left:
            buf = f.read(min(left, CHUNK * m.dtype.itemsize))
            if not buf or len(buf) % m.dtype.itemsize:
                raise NpzFormatError(f"{path}: {m.name} is truncated")
            crc = zlib.crc32(buf, crc)
            left -= len(buf)
            yield np.frombuffer(buf, m.dtype)
    if crc != m.info.CRC:
        raise NpzFormatError(f"{path}: {m.name} fails its CRC-32 check (the file is corrupt)")


def _compressed_values(path: Path, zf: zipfile.ZipFile, m: _Member) -> Iterator[np.ndarray]:
    """A compressed member's values in storage order, decompressed in chunks (zipfile checks
    the CRC-32 at the end)."""
    try:
        with zf.open(m.info) as fp:
            fp.read(m.header_len)
            left = m.size * m.dtype.itemsize
            while left:
                want = min(left, CHUNK * m.dtype.itemsize)
                buf = fp.read(want)
                while len(buf) < want:
                    more = fp.read(want - len(buf))
                    if not more:
                        raise NpzFormatError(f"{path}: {m.name} is truncated")
                    buf += more
                left -= want
                yield np.frombuffer(buf, m.dtype)
            if fp.read(1):
                raise NpzFormatError(f"{path}: {m.name} has bytes after its values")
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise NpzFormatError(f"{path}: {m.name} is corrupt ({e})") from None


def _data_offset(path: Path, f, m: _Member) -> int:
    """Where a stored member's values start in the zip file (after its local header and .npy header)."""
    f.seek(m.info.header_offset)
    head = f.read(_LOCAL_HEADER.size)
    if len(head) != _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
        raise NpzFormatError(f"{path}: {m.name}: bad zip local header")
    fields = _LOCAL_HEADER.unpack(head)
    return m.info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1] + m.header_len


def _map_stored(path: Path, m: _Member) -> np.ndarray:
    if m.size == 0:
        return np.zeros(m.shape, m.dtype)
    with open(path, "rb") as f:
        offset = _data_offset(path, f, m)
    return np.memmap(path, dtype=m.dtype, mode="r", offset=offset, shape=m.shape, order="F" if m.fortran else "C")


def _cache_dtype(name: str, counts: np.ndarray) -> np.dtype:
    if name == "y":
        return np.dtype(np.int8)
    return np.dtype(np.int64 if name == "X_cat" and counts.max() > 2**31 else np.int32)


def _key(path: Path, members: dict[str, _Member], counts: np.ndarray) -> str:
    desc = {"v": CACHE_VERSION, "size": path.stat().st_size, "counts": counts.tolist(),
            "members": [[m.name, m.info.CRC, m.info.file_size, m.info.compress_size, m.info.compress_type]
                        for m in members.values()]}
    return hashlib.sha1(json.dumps(desc).encode()).hexdigest()[:20]


@dataclass
class NpzArrays:
    """One reference ``.npz``: ``X_int`` [N, 13], ``X_cat`` [N, T], ``y`` [N] (memory-mapped, as
    stored or as cached) and ``counts`` [T]."""

    X_int: np.ndarray
    X_cat: np.ndarray
    y: np.ndarray
    counts: np.ndarray
    path: Path

    def __len__(self) -> int:
        return self.y.shape[0]


def load_npz(path, counts=None, cache_dir=DEFAULT_CACHE, progress: bool = True) -> NpzArrays:
    """Open (and check) one reference ``.npz``: ``X_int``, ``X_cat``, ``y``, with ``counts`` from
    the file itself when not given (a day file takes them from ``RAW_fea_count.npz``)."""
    path = Path(path)
    if counts is None:
        counts = _read_counts(path)
    counts = np.asarray(counts, dtype=np.int64)
    with _open_zip(path) as zf:
        members = _members(path, zf, FIELDS)
        rows = _check_shapes(path, members, counts.size)
        folder = Path(cache_dir) / _key(path, members, counts) if cache_dir is not None else None
        if folder is not None and (folder / "meta.json").is_file():
            return _open_cached(path, folder, members, counts)
        total = sum(m.size * m.dtype.itemsize for m in members.values())
        what = "checking" if all(m.stored for m in members.values()) else "decompressing"
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"{path.name}: {what}", disable=not progress) as bar:
            if folder is None:
                out = _fill(path, zf, members, counts, bar)
                return NpzArrays(out["X_int"], out["X_cat"], out["y"], counts, path)
            with building(folder) as tmp:
                _fill(path, zf, members, counts, bar, tmp)
                meta = {"source": str(path), "rows": rows, "counts": counts.tolist(), "v": CACHE_VERSION,
                        "members": {m.name: "mapped" if m.stored else f"{m.name}.npy" for m in members.values()}}
                (tmp / "meta.json").write_text(json.dumps(meta))
    return _open_cached(path, folder, members, counts)


def _fill(path: Path, zf: zipfile.ZipFile, members: dict[str, _Member], counts: np.ndarray, bar,
          tmp: Path | None = None) -> dict[str, np.ndarray]:
    """Check every value. A stored member is then mapped; a compressed one is written, as
    :func:`_cache_dtype`, into ``tmp`` (returned: the stored ones only) or else into memory."""
    out: dict[str, np.ndarray] = {}
    for m in members.values():
        values = _stored_values(path, m) if m.stored else _compressed_values(path, zf, m)
        order = "F" if m.fortran else "C"
        target = None
        if not m.stored and tmp is not None:
            target = NpyWriter(tmp / f"{m.name}.npy", m.shape, _cache_dtype(m.name, counts), fortran_order=m.fortran)
        elif not m.stored:
            out[m.name] = np.empty(m.shape, _cache_dtype(m.name, counts), order=order)
            target = out[m.name].reshape(-1, order=order)  # a view in storage order
        e = 0
        for chunk in values:
            _check_values(str(path), m, chunk, e, counts)
            if isinstance(target, NpyWriter):
                target.write_flat(e, chunk)
            elif target is not None:
                target[e:e + chunk.size] = chunk
            e += chunk.size
            bar.update(chunk.nbytes)
        if m.stored:
            out[m.name] = _map_stored(path, m)
    return out


def _open_cached(path: Path, folder: Path, members: dict[str, _Member], counts: np.ndarray) -> NpzArrays:
    meta = json.loads((folder / "meta.json").read_text())
    arrays = {}
    for name, m in members.items():
        a = _map_stored(path, m) if meta["members"][name] == "mapped" else np.load(folder / meta["members"][name],
                                                                                   mmap_mode="r")
        if a.shape != m.shape:
            raise NpzFormatError(f"{folder}: cached {name} has shape {a.shape}, the file {m.shape}; delete the folder")
        arrays[name] = a
    return NpzArrays(arrays["X_int"], arrays["X_cat"], arrays["y"], counts, path)


class NpzRows:
    """Rows of one or more :class:`NpzArrays` (``parts``: (arrays, start, stop)), preprocessed per
    batch as the reference does when it loads them."""

    def __init__(self, parts: list[tuple[NpzArrays, int, int]], max_ind_range: int | None = None):
        self.parts = [(a, lo, hi) for a, lo, hi in parts if hi > lo]
        self.max_ind_range = max_ind_range
        self._starts = np.cumsum([0] + [hi - lo for _, lo, hi in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _take(self, start: int, stop: int, names=FIELDS) -> list[np.ndarray]:
        pieces: list[list[np.ndarray]] = [[] for _ in names]
        first = max(0, int(np.searchsorted(self._starts, start, side="right")) - 1)
        for (a, lo, _), s0, s1 in zip(self.parts[first:], self._starts[first:-1], self._starts[first + 1:]):
            if s0 >= stop:
                break
            sl = slice(lo + max(start, s0) - s0, lo + min(stop, s1) - s0)
            for p, name in zip(pieces, names):
                p.append(getattr(a, name)[sl])
        return [np.concatenate(p) if len(p) != 1 else p[0] for p in pieces]

    def batch(self, start: int, batch_size: int) -> Batch:
        x_int, x_cat, y = self._take(start, min(start + batch_size, len(self)))
        cats = x_cat.astype(np.int64)
        if self.max_ind_range:
            cats %= self.max_ind_range
        return Batch.from_numpy(np.log(x_int.astype(np.float32) + 1), cats, y.astype(np.float32))

    @cached_property
    def labels(self) -> np.ndarray:
        return self._take(0, len(self), ("y",))[0].astype(np.float32)


def _day_count_beside(path: Path, rows: int) -> tuple[Path, np.ndarray] | None:
    """The ``*_day_count.npz`` next to a processed file whose days add up to its rows, if one."""
    for f in sorted(path.parent.glob("*_day_count.npz")):
        try:
            days = _read_counts(f, "total_per_file")
        except NpzFormatError:
            continue
        if days.sum() == rows:
            return f, days
    return None


def _day_files(raw: Path) -> tuple[list[Path], Path, np.ndarray | None]:
    """The reference's per-day files for its raw-data path ``raw``: day files, counts file and day counts."""
    folder, base = raw.parent, raw.name
    stem = base.split(".")[0]
    for d_file, prefix in ((stem, f"{stem}_day"), (base, base)):  # Kaggle's naming, then Terabyte's
        for kind in ("reordered", "processed"):
            if not (folder / f"{prefix}_0_{kind}.npz").is_file():
                continue
            day_count = folder / f"{d_file}_day_count.npz"
            totals = _read_counts(day_count, "total_per_file") if day_count.is_file() else None
            n_days = len(totals) if totals is not None else \
                next(d for d in range(1, 10**4) if not (folder / f"{prefix}_{d}_{kind}.npz").is_file())
            files = [folder / f"{prefix}_{d}_{kind}.npz" for d in range(n_days)]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise NpzFormatError(f"{day_count}: {n_days} days, but {', '.join(missing)} missing in {folder}")
            counts = folder / f"{d_file}_fea_count.npz"
            if not counts.is_file():
                raise NpzFormatError(f"{raw}: found {files[0].name} but not {counts.name} (the counts per table)")
            return files, counts, totals
    raise FileNotFoundError(f"{raw}: neither a processed .npz file nor the raw-data path of the reference's day "
                            f"files (looked for {stem}_day_0_reordered.npz, {base}_0_reordered.npz and their "
                            f"_processed.npz forms in {folder})")


class NpzData(SplitData):
    """The reference DLRM's processed arrays as a data source (the interface of :class:`SplitData`).

    ``path``: a processed file (``kaggleAdDisplayChallenge_processed.npz``, ...: the
    reference's ``--processed-data-file``) or the reference's ``--raw-data-file`` path
    whose day files lie beside it (``data/raw/day`` for ``day_<d>_reordered.npz``,
    ``data/raw/train.txt`` for ``train_day_<d>_reordered.npz``; ``_processed.npz`` day files
    are read when there are no reordered ones). ``split`` says which rows train and test.
    """

    def __init__(self, path, max_ind_range: int | None = None, holdout: float = 0.1,
                 cache_dir=DEFAULT_CACHE, progress: bool = True):
        path = Path(path)
        load = dict(cache_dir=cache_dir, progress=progress)
        if path.is_file():
            arrays = load_npz(path, **load)
            n, counts = len(arrays), arrays.counts
            found = _day_count_beside(path, n)
            if found is not None and len(found[1]) >= 2:
                last = int(found[1][-1])
                train, test = [(arrays, 0, n - last)], [(arrays, n - last, n - last // 2)]
                self.split = (f"days 0..{len(found[1]) - 2} train, the first half of day {len(found[1]) - 1} "
                              f"tests ({found[0].name})")
            else:
                cut = self.holdout_cut(n, holdout)
                train, test = [(arrays, 0, cut)], [(arrays, cut, n)]
                self.split = f"the last {n - cut} of {n} rows test (no day counts beside {path.name})"
        else:
            files, counts_file, totals = _day_files(path)
            counts = _read_counts(counts_file)
            days = [load_npz(f, counts=counts, **load) for f in files]
            for f, d, want in zip(files, days, totals if totals is not None else [len(d) for d in days]):
                if len(d) != want:
                    raise NpzFormatError(f"{f}: {len(d)} rows, but the day counts say {want}")
            if len(days) < 2:
                raise NpzFormatError(f"{files[0]}: one day only; the reference trains on all days but the last")
            train = [(d, 0, len(d)) for d in days[:-1]]
            test = [(days[-1], 0, len(days[-1]) - len(days[-1]) // 2)]
            self.split = f"days 0..{len(days) - 2} train, the first half of day {len(days) - 1} tests"
        self.counts = counts
        self.table_sizes = [int(min(c, max_ind_range)) if max_ind_range else int(c) for c in counts]
        self.train, self.test = NpzRows(train, max_ind_range), NpzRows(test, max_ind_range)
        if not (len(self.train) and len(self.test)):
            raise NpzFormatError(f"{path}: too few rows to train and test on ({self.split})")
