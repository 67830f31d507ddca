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


def test_gpu_frames_bit_identical_to_cpu_encoder():
    """The committed GPU frames equal the CPU recipe's frames of the same inputs, byte for byte
    (inputs regenerated as in tests/test_gpu.py::test_write_gpu_fixtures, seed 5)."""
    if not PATHS:
        pytest.skip("no GPU frames committed yet")
    from dlrmcomp import codecs
    from dlrmcomp.bench.payload import embedding_payload

    rng = np.random.default_rng(5)
    zipf = embedding_payload(batch=2048, dim=64, n_tables=3, seed=int(rng.integers(1 << 30)), row_cap=5000)
    special = rng.normal(0, 1, (512, 16)).astype(np.float32)
    special[3, 2], special[7, 0], special[9, 9] = np.nan, np.inf, -np.inf
    special[11, 1] = 1e30
    xs = zipf + [special]
    for path in PATHS:
        frame = path.read_bytes()
        cfg = codecs.read_header(frame).codec
        i = int(path.stem.rsplit("_", 1)[1])
        cpu = codecs.get(cfg["id"], eb=cfg["eb"], mode=cfg["mode"], dtype=cfg["dtype"])
        assert cpu.encode(xs[i]) == frame, path.name
