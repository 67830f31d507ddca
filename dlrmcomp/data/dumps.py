"""EMB dumps: the embedding payload saved during training, for the offline codec benchmark.

``EMB_{table}_iter_{k}.bin`` holds raw little-endian float32 [batch, dim] (k = snapshot index,
the seeds' naming), next to ``manifest.json``::

    {"format": "dlrmcomp-emb-dump/1", "dim": D, "batch": B,
     "tables": [{"table": i, "rows": cardinality}],
     "snapshots": [{"file": "EMB_3_iter_0.bin", "table": 3, "snapshot": 0, "iteration": 0,
                    "shape": [B, D], "dtype": "float32", "eb": rel_bound_or_null}]}
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

FORMAT = "dlrmcomp-emb-dump/1"
MANIFEST = "manifest.json"


class DumpWriter:
    """Writes snapshots and keeps ``manifest.json`` current after every snapshot."""

    def __init__(self, directory, table_sizes: Sequence[int], dim: int, batch: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest = {"format": FORMAT, "dim": int(dim), "batch": int(batch),
                         "tables": [{"table": i, "rows": int(n)} for i, n in enumerate(table_sizes)],
                         "snapshots": []}

    def resume(self, iteration: int) -> None:
        """Keep the snapshots taken before ``iteration`` (after a restart from a checkpoint)."""
        if (self.dir / MANIFEST).is_file():
            old = read_manifest(self.dir)["snapshots"]
            self.manifest["snapshots"] = [s for s in old if s["iteration"] < iteration]

    def write(self, snapshot: int, iteration: int, payload: Sequence[np.ndarray], bounds: Sequence[float | None]) -> None:
        """One snapshot: ``payload[t]`` float32 [batch, dim] for every table t."""
        for t, (x, eb) in enumerate(zip(payload, bounds)):
            name = f"EMB_{t}_iter_{snapshot}.bin"
            x = np.ascontiguousarray(x, dtype="<f4")
            x.tofile(self.dir / name)
            self.manifest["snapshots"].append({"file": name, "table": t, "snapshot": int(snapshot),
                                               "iteration": int(iteration), "shape": list(x.shape),
                                               "dtype": "float32", "eb": None if eb is None else float(eb)})
        tmp = self.dir / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.manifest, indent=1))
        os.replace(tmp, self.dir / MANIFEST)


def read_manifest(directory) -> dict:
    """The manifest of a dump directory (checks the format tag)."""
    manifest = json.loads((Path(directory) / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{directory}: not a {FORMAT} manifest (format={manifest.get('format')!r})")
    return manifest


def load_dump(directory, entry: dict) -> np.ndarray:
    """The float32 array of one manifest snapshot entry, shape ``entry["shape"]``."""
    x = np.fromfile(Path(directory) / entry["file"], dtype="<f4")
    shape = tuple(entry["shape"])
    if x.size != int(np.prod(shape)):
        raise ValueError(f"{entry['file']}: {x.size} floats on disk, manifest says shape {shape}")
    return x.reshape(shape)
