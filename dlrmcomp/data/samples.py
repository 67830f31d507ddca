"""The small real samples beside the checkout (``../shared/data/real``), read in place."""
from __future__ import annotations

import os
from pathlib import Path

#: sample name -> (folder, file extension) of its ``wideresdnn_<name>_{train,dev,test}`` splits
SAMPLES = {"criteo": ("criteo", "tsv"), "avazu": ("avazu", "csv")}


def real_dir() -> Path:
    """Where the real samples live: $DLRMCOMP_REAL_DATA or ../shared/data/real."""
    env = os.environ.get("DLRMCOMP_REAL_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def sample_spec(name: str, heldout: str = "test") -> str | None:
    """``TrainConfig.data`` of a real sample ("criteo:TRAIN,HELDOUT"; ``heldout`` "test" or "dev"),
    None when its files are absent."""
    if name not in SAMPLES:
        raise ValueError(f"sample must be one of {sorted(SAMPLES)}, got {name!r}")
    folder, ext = SAMPLES[name]
    train, test = (real_dir() / folder / f"wideresdnn_{name}_{split}.{ext}" for split in ("train", heldout))
    return f"{name}:{train},{test}" if train.is_file() and test.is_file() else None
