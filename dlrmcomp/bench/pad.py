"""``dlrmcomp pad``: the seed's ``padding_files.py`` (a larger batch by repeating the data)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..data import dumps as dump_io
from ..io import atomic_write, write_json
from . import dumps


def pad_dir(src, out, copies: int, dim: int | None = None) -> list[dict]:
    """Write every dump of ``src`` ``copies`` times over ([B, D] -> [copies*B, D]) into ``out``."""
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    entries = []
    for e in dumps.list_entries(src, dim):
        x = np.tile(dumps.load(src, e), (copies, 1))
        atomic_write(Path(out) / e["file"], x.astype("<f4").tobytes())
        entries.append({**e, "shape": list(x.shape)})
    manifest_path = Path(src) / dump_io.MANIFEST
    if manifest_path.is_file():
        manifest = dump_io.read_manifest(src)
        write_json(Path(out) / dump_io.MANIFEST,
                   {**manifest, "batch": manifest["batch"] * copies, "snapshots": entries})
    return entries


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("emb_dir", type=Path)
    p.add_argument("--copies", type=int, required=True, help="multiple of the original batch")
    p.add_argument("--dim", type=int, help="embedding dim (only for dumps without manifest.json)")
    p.add_argument("--out", type=Path, required=True)


def main(args) -> int:
    entries = pad_dir(args.emb_dir, args.out, args.copies, args.dim)
    print(f"{len(entries)} dumps x{args.copies} in {args.out}")
    return 0
