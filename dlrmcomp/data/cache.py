"""Where the file loaders keep preprocessed arrays, and how they write them without holding them.

A loader builds one folder per input (named by a content key) in a temporary sibling and renames it
into place when it is complete, so a reader never sees half a cache. Arrays are written chunk by
chunk into ``.npy`` files made by ``np.lib.format.open_memmap``; each chunk's mapping is dropped once
written, so the loader's resident memory is one chunk, not the file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

ENV = "DLRMCOMP_CACHE_DIR"


class CacheDir(os.PathLike):
    """A loader's default ``cache_dir``: ``$DLRMCOMP_CACHE_DIR/<kind>`` when the variable is set,
    else ``~/.cache/dlrmcomp/<kind>``. The variable is read each time the path is used."""

    def __init__(self, kind: str):
        self.kind = kind

    def __fspath__(self) -> str:
        root = os.environ.get(ENV)
        base = Path(root).expanduser() if root else Path.home() / ".cache" / "dlrmcomp"
        return str(base / self.kind)

    def __repr__(self) -> str:
        return f"CacheDir({self.kind!r})"


class NpyWriter:
    """One ``.npy`` file of known shape, filled in pieces in storage order.

    ``write_rows(start, rows)`` fills rows ``start..`` of a C-order array; ``write_flat(start,
    values)`` fills elements ``start..`` in storage order (C or Fortran). Each call maps the file,
    writes and unmaps it (no ``msync``: the kernel writes the pages back; the loaders write
    ``meta.json`` last)."""

    def __init__(self, path, shape, dtype, fortran_order: bool = False):
        self.path, self.fortran = Path(path), fortran_order
        np.lib.format.open_memmap(self.path, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape),
                                  fortran_order=fortran_order).flush()

    def _open(self) -> np.memmap:
        return np.lib.format.open_memmap(self.path, mode="r+")

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        if len(rows):
            m = self._open()
            m[start:start + len(rows)] = rows
            del m  # unmapped: the pages stay in the page cache, out of this process's memory

    def write_flat(self, start: int, values: np.ndarray) -> None:
        if values.size:
            m = self._open()
            flat = m.reshape(-1, order="F" if self.fortran else "C")  # a view: the file is contiguous
            flat[start:start + values.size] = values
            del m, flat


@contextmanager
def building(folder: Path) -> Iterator[Path]:
    """A fresh temporary sibling of ``folder`` to fill; renamed to ``folder`` when the block ends
    (where another process got there first, its folder is kept and ours dropped), removed on error."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
    try:
        yield tmp
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
