"""EMB dump directories as a list of snapshot entries, with or without ``manifest.json``.

With a manifest (``dlrmcomp.data.dumps``) the entries are its snapshots. Without one (the seeds'
raw ``EMB_{table}_iter_{k}.bin`` files) table and snapshot come from the file names and the
shape from ``dim``: [file bytes / (4 dim), dim] float32.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..data import dumps as dump_io

NAME = re.compile(r"EMB_(\d+)_iter_(\d+)\.bin$")


def infer_entries(directory, dim: int) -> list[dict]:
    """Manifest-style entries for the raw ``EMB_*_iter_*.bin`` files of ``directory``."""
    entries = []
    for path in Path(directory).iterdir():
        m = NAME.match(path.name)
        if not m:
            continue
        n_floats = path.stat().st_size // 4
        if n_floats % dim:
            raise ValueError(f"{path.name}: {n_floats} floats are not rows of dim {dim}")
        entries.append({"file": path.name, "table": int(m[1]), "snapshot": int(m[2]), "iteration": None,
                        "shape": [n_floats // dim, dim], "dtype": "float32", "eb": None})
    return entries


def list_entries(directory, dim: int | None = None) -> list[dict]:
    """Snapshot entries sorted by (table, snapshot); ``dim`` is needed only without a manifest."""
    directory = Path(directory)
    if (directory / dump_io.MANIFEST).is_file():
        entries = dump_io.read_manifest(directory)["snapshots"]
    elif dim is None:
        raise ValueError(f"{directory}: no {dump_io.MANIFEST}; give the embedding dim (--dim)")
    else:
        entries = infer_entries(directory, dim)
    if not entries:
        raise ValueError(f"{directory}: no EMB_<table>_iter_<k>.bin dumps")
    return sorted(entries, key=lambda e: (e["table"], e["snapshot"]))


def load(directory, entry: dict) -> np.ndarray:
    """The float32 [batch, dim] array of one entry."""
    return dump_io.load_dump(directory, entry)


def table_rows(directory) -> list[int] | None:
    """Cardinality per table from the manifest (None without one)."""
    path = Path(directory) / dump_io.MANIFEST
    return [t["rows"] for t in dump_io.read_manifest(directory)["tables"]] if path.is_file() else None
