#!/usr/bin/env python3
"""Write the GPU frame fixtures that tests/test_gpu_frames.py checks (needs cupy and a CUDA device).

Usage: python scripts/write_gpu_fixtures.py OUT_DIR

Writes OUT_DIR/gpu_frames/<stem>.frame (a frame encoded on the GPU) + <stem>.npy (the GPU's decode
of it) for every case in tests/common.py's GPU_FIXTURE_CASES x GPU_FIXTURE_INPUTS, and the same
folder as OUT_DIR/gpu_frames.tar. To refresh the committed fixtures, untar it into tests/fixtures/.
Exit status: 0 written, 2 no GPU here.
"""
from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402


def write_fixtures(out: Path) -> list[Path]:
    """Encode the fixture inputs on the GPU into out/gpu_frames/ and out/gpu_frames.tar; returns the frames."""
    from dlrmcomp.codecs.gpu.codec import GpuPipeline
    from common import GPU_FIXTURE_CASES, GPU_FIXTURE_INPUTS, GPU_FIXTURE_SEED, gpu_fixture_stem, gpu_test_arrays

    work = out / "gpu_frames"
    work.mkdir(parents=True, exist_ok=True)
    xs = gpu_test_arrays(np.random.default_rng(GPU_FIXTURE_SEED))
    written = []
    for recipe, cdt, eb in GPU_FIXTURE_CASES:
        codec = GpuPipeline(recipe, eb=eb, dtype=cdt)
        for i in GPU_FIXTURE_INPUTS:
            frame = codec.encode(xs[i])
            stem = gpu_fixture_stem(recipe, cdt, i)
            (work / f"{stem}.frame").write_bytes(frame)
            np.save(work / f"{stem}.npy", codec.decode(frame))
            written.append(work / f"{stem}.frame")
    with tarfile.open(out / "gpu_frames.tar", "w") as tar:
        tar.add(work, arcname="gpu_frames")
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output directory (gets gpu_frames/ and gpu_frames.tar)")
    args = parser.parse_args(argv)
    from dlrmcomp.codecs import gpu

    if not gpu.gpu_available():
        print("write_gpu_fixtures: cupy with a CUDA device is needed", file=sys.stderr)
        return 2
    written = write_fixtures(args.out)
    print(f"wrote {len(written)} frames (+ .npy) to {args.out / 'gpu_frames'} and {args.out / 'gpu_frames.tar'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
