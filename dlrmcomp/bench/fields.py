"""Scientific float fields (../shared/data/real/scifloat), a generated stand-in, and sample images
that installed packages ship."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.samples import real_dir

#: file name -> (dtype, shape) for the raw little-endian C-order samples
SCIFLOAT_FILES = {
    "sperr_vorticity.512_512": ("<f4", (512, 512)),
    "sperr_vorticity.128_128_41": ("<f4", (41, 128, 128)),
    "sperr_wmag91.float": ("<f4", (91, 91, 91)),
    "sperr_pressur_384x384.d64": ("<f8", (384, 384)),
    "eraint_u_2x3x241x480.f32": ("<f4", (2, 3, 241, 480)),
    "sz_testfloat_8_8_128.f32": ("<f4", (8, 8, 128)),
}


def scifloat_dir() -> Path:
    """Where the real samples live: $DLRMCOMP_SCIFLOAT or ../shared/data/real/scifloat."""
    env = os.environ.get("DLRMCOMP_SCIFLOAT")
    return Path(env) if env else real_dir() / "scifloat"


def scifloat_fields(directory: str | Path | None = None) -> dict[str, np.ndarray]:
    """The known samples that are present, read in place (memory-mapped)."""
    root = Path(directory) if directory else scifloat_dir()
    out = {}
    for name, (dtype, shape) in SCIFLOAT_FILES.items():
        path = root / name
        if path.is_file() and path.stat().st_size == np.dtype(dtype).itemsize * int(np.prod(shape)):
            out[name] = np.memmap(path, dtype=dtype, mode="r", shape=shape)
    return out


def generated_field(shape: tuple[int, int] = (256, 256), seed: int = 0) -> np.ndarray:
    """A smooth 2-D float32 field with small-scale noise (used when no sample is present)."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 4 * np.pi, shape[0]), np.linspace(0, 4 * np.pi, shape[1]), indexing="ij")
    return (np.sin(x) * np.cos(0.7 * y) + 0.3 * np.sin(2.3 * x + y) + 0.02 * rng.normal(size=shape)).astype(np.float32)


def sample_images() -> dict[str, np.ndarray]:
    """Photographs that installed packages ship (no download), float32 in 0..255: scikit-learn's
    ``china`` and ``flower`` (RGB, as (3, 427, 640)) and scikit-image's ``camera`` (512 x 512).
    Empty when neither package is installed."""
    out = {}
    try:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for path, img in zip(bunch.filenames, bunch.images):
            out[f"sklearn {Path(path).stem}"] = np.ascontiguousarray(np.moveaxis(img, -1, 0), dtype=np.float32)
    except ImportError:
        pass
    try:
        from skimage import data

        out["skimage camera"] = data.camera().astype(np.float32)
    except Exception:  # not installed, or this version would download it
        pass
    return out
