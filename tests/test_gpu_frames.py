"""Committed GPU-encoded frames (tests/fixtures/gpu_frames/NAME.frame + NAME.npy): the CPU decodes
them to the stored arrays (runs in CPU CI); on a GPU box the GPU decodes them too.

The fixtures are part of the repository: a missing one fails (as in common.check_backwards_compatibility),
it never skips. They are written on a GPU box by scripts/write_gpu_fixtures.py OUT_DIR (cases and
inputs: GPU_FIXTURE_* in tests/common.py); untar OUT_DIR/gpu_frames.tar into tests/fixtures/.
"""
from __future__ import annotations

import numpy as np
import pytest

import dlrmcomp

from common import FIXTURES, GPU_FIXTURE_SEED, GPU_FIXTURE_STEMS, gpu_test_arrays

ROOT = FIXTURES / "gpu_frames"
# the expected fixtures, plus any other committed frame (so an extra one is checked too, not ignored)
STEMS = sorted(set(GPU_FIXTURE_STEMS) | {p.stem for p in ROOT.glob("*.frame")})
HINT = ("write the fixtures on a GPU box with scripts/write_gpu_fixtures.py OUT_DIR and untar "
        "OUT_DIR/gpu_frames.tar into tests/fixtures/")


def fixture(stem: str) -> tuple[bytes, np.ndarray]:
    """(frame bytes, expected array) of one committed fixture; fails when either file is missing."""
    frame_path, array_path = ROOT / f"{stem}.frame", ROOT / f"{stem}.npy"
    for path in (frame_path, array_path):
        if not path.is_file():
            pytest.fail(f"missing GPU fixture {path}; {HINT}")
    return frame_path.read_bytes(), np.load(array_path)


def test_gpu_fixtures_present():
    missing = [f"{ROOT / stem}.{ext}" for stem in GPU_FIXTURE_STEMS for ext in ("frame", "npy")
               if not (ROOT / f"{stem}.{ext}").is_file()]
    assert not missing, f"missing GPU fixtures {missing}; {HINT}"


@pytest.mark.parametrize("stem", STEMS)
def test_cpu_decodes_gpu_frames(stem):
    frame, expected = fixture(stem)
    got = dlrmcomp.decompress(frame)
    assert got.dtype == expected.dtype and got.shape == expected.shape and got.tobytes() == expected.tobytes()


@pytest.mark.gpu
@pytest.mark.parametrize("stem", STEMS)
def test_gpu_decodes_gpu_frames(stem):
    cp = pytest.importorskip("cupy")
    from dlrmcomp.codecs import gpu

    if not gpu.gpu_available():
        pytest.skip("no CUDA device")
    from dlrmcomp.codecs.gpu.codec import GpuPipeline

    frame, expected = fixture(stem)
    got = GpuPipeline("quant+ans", eb=0.01).decode(frame)
    assert got.tobytes() == expected.tobytes() and cp is not None


@pytest.mark.parametrize("stem", STEMS)
def test_gpu_frames_bit_identical_to_cpu_encoder(stem):
    """A committed GPU frame equals the CPU recipe's frame of the same input, byte for byte (inputs
    regenerated as scripts/write_gpu_fixtures.py makes them: common.gpu_test_arrays, GPU_FIXTURE_SEED)."""
    from dlrmcomp import codecs

    frame, _ = fixture(stem)
    xs = gpu_test_arrays(np.random.default_rng(GPU_FIXTURE_SEED))
    cfg = codecs.read_header(frame).codec
    i = int(stem.rsplit("_", 1)[1])
    cpu = codecs.get(cfg["id"], eb=cfg["eb"], mode=cfg["mode"], dtype=cfg["dtype"])
    assert cpu.encode(xs[i]) == frame, stem


def test_fixture_script_reproduces_committed_frames(tmp_path, monkeypatch):
    """scripts/write_gpu_fixtures.py, with the CPU recipe standing in for GpuPipeline (their frames are
    byte-identical by design), writes exactly the committed fixtures: same names, same bytes, same arrays."""
    import importlib.util
    import sys
    import tarfile

    from dlrmcomp import codecs
    from dlrmcomp.codecs.gpu import codec as gpu_codec

    path = FIXTURES.parents[1] / "scripts" / "write_gpu_fixtures.py"
    spec = importlib.util.spec_from_file_location("write_gpu_fixtures", path)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script prepends the repo and tests/ to it
    spec.loader.exec_module(script)
    monkeypatch.setattr(gpu_codec, "GpuPipeline", lambda recipe, eb, dtype: codecs.get(recipe, eb=eb, dtype=dtype))
    written = script.write_fixtures(tmp_path)
    assert sorted(p.stem for p in written) == sorted(GPU_FIXTURE_STEMS)
    for stem in GPU_FIXTURE_STEMS:
        frame, expected = fixture(stem)
        assert (tmp_path / "gpu_frames" / f"{stem}.frame").read_bytes() == frame, stem
        got = np.load(tmp_path / "gpu_frames" / f"{stem}.npy")
        assert got.dtype == expected.dtype and got.shape == expected.shape and got.tobytes() == expected.tobytes()
    with tarfile.open(tmp_path / "gpu_frames.tar") as tar:
        names = set(tar.getnames())
    assert {f"gpu_frames/{s}.{e}" for s in GPU_FIXTURE_STEMS for e in ("frame", "npy")} <= names
