"""Committed GPU-encoded frames (tests/fixtures/gpu_frames/NAME.frame + NAME.npy): the CPU decodes
them to the stored arrays (runs in CPU CI); on a GPU box the GPU decodes them too."""
from __future__ import annotations

import numpy as np
import pytest

import dlrmcomp

from common import FIXTURES

PATHS = sorted((FIXTURES / "gpu_frames").glob("*.frame"))


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_cpu_decodes_gpu_frames(path):
    expected = np.load(path.with_suffix(".npy"))
    got = dlrmcomp.decompress(path.read_bytes())
    assert got.dtype == expected.dtype and got.shape == expected.shape and got.tobytes() == expected.tobytes()


def test_gpu_fixtures_present():
    if not PATHS:
        pytest.skip("no GPU frames committed yet")
    assert len(PATHS) >= 4


@pytest.mark.gpu
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_gpu_decodes_gpu_frames(path):
    cp = pytest.importorskip("cupy")
    from dlrmcomp.codecs import gpu

    if not gpu.gpu_available():
        pytest.skip("no CUDA device")
    from dlrmcomp.codecs.gpu.codec import GpuPipeline

    expected = np.load(path.with_suffix(".npy"))
    got = GpuPipeline("quant+ans", eb=0.01).decode(path.read_bytes())
    assert got.tobytes() == expected.tobytes() and cp is not None
