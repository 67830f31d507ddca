"""Shared checks for every codec (numcodecs' tests/common.py, plus the error bound and corruption)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import dlrmcomp
from dlrmcomp import codecs
from dlrmcomp.codecs import frame as framing

FIXTURES = Path(__file__).parent / "fixtures"

#: GPU-encoded frames committed under tests/fixtures/gpu_frames/<stem>.frame + <stem>.npy, written on a
#: GPU box by scripts/write_gpu_fixtures.py: each (recipe, code dtype, eb) case on inputs 0 and 3 of
#: gpu_test_arrays(np.random.default_rng(GPU_FIXTURE_SEED)).
GPU_FIXTURE_SEED = 5
GPU_FIXTURE_CASES = (("quant+ans", "int8", 0.03), ("quant+ans", "auto", 0.01),
                     ("quant+dedup+ans", "int16", 0.001), ("quant+dedup+ans", "int8", 0.05))
GPU_FIXTURE_INPUTS = (0, 3)


def gpu_fixture_stem(recipe: str, dtype: str, index: int) -> str:
    return f"{recipe.replace('+', '_')}_{dtype}_{index}"


GPU_FIXTURE_STEMS = tuple(gpu_fixture_stem(r, dt, i) for r, dt, _ in GPU_FIXTURE_CASES for i in GPU_FIXTURE_INPUTS)


def gpu_test_arrays(rng: np.random.Generator) -> list[np.ndarray]:
    """The GPU tests' inputs: 3 Zipf embedding payloads, a float32 array with NaN / +-inf / an escape
    (1e30, out of the int8 code range), a float64 array and a small uniform float32 array."""
    from dlrmcomp.bench.payload import embedding_payload

    zipf = embedding_payload(batch=2048, dim=64, n_tables=3, seed=int(rng.integers(1 << 30)), row_cap=5000)
    special = rng.normal(0, 1, (512, 16)).astype(np.float32)
    special[3, 2], special[7, 0], special[9, 9] = np.nan, np.inf, -np.inf
    special[11, 1] = 1e30  # escape: out of the int8 code range
    return zipf + [special, rng.normal(0, 1, (300, 8)), rng.uniform(-5, 5, (1000, 4)).astype(np.float32)]


def check_config(codec: codecs.Codec) -> None:
    """The config is JSON and rebuilds an equal codec."""
    config = json.loads(json.dumps(codec.get_config()))
    assert config["id"] == codec.name
    rebuilt = codecs.from_config(config)
    assert rebuilt == codec and rebuilt.get_config() == codec.get_config()


def check_error_bound(x: np.ndarray, y: np.ndarray, eb_abs: float) -> dict:
    """0 violations: finite elements within eb_abs, non-finite reproduced bit for bit."""
    assert y.dtype == x.dtype and y.shape == x.shape
    report = dlrmcomp.verify(x, y, eb_abs)
    assert report["violations"] == 0, report
    nonfinite = ~np.isfinite(x)
    assert x[nonfinite].tobytes() == y[nonfinite].tobytes()
    return report


def check_encode_decode(x: np.ndarray, codec: codecs.Codec) -> bytes:
    """Round trip through the codec and through ``dlrmcomp.decompress``; returns the frame."""
    frame = codec.encode(x)
    for y in (codec.decode(frame), dlrmcomp.decompress(frame), dlrmcomp.decompress(bytearray(frame))):
        if codec.lossy:
            check_error_bound(x, y, codecs.read_header(frame).eb_abs)
        else:
            assert y.dtype == x.dtype and y.shape == x.shape
            assert x.tobytes() == y.tobytes()
    return frame


def check_corruption(frame: bytes, rng: np.random.Generator, n: int = 1000, decode=dlrmcomp.decompress) -> None:
    """Random byte flips and truncations always raise CorruptStreamError (``decode``: any decoder)."""
    for i in range(n):
        bad = bytearray(frame)
        if i % 2:
            bad = bad[: int(rng.integers(0, len(frame)))]
        else:
            pos = int(rng.integers(0, len(frame)))
            bad[pos] ^= int(rng.integers(1, 256))
        with pytest.raises(dlrmcomp.CorruptStreamError):
            decode(bytes(bad))


def check_tampered_payload(frame: bytes, rng: np.random.Generator, n: int = 200, decode=dlrmcomp.decompress) -> None:
    """Flips inside the payload with a recomputed checksum: a clean error or a well-formed array."""
    header, payload = framing.unpack(frame)
    start = len(frame) - 4 - len(payload)
    for _ in range(n):
        body = bytearray(frame[:-4])
        if len(payload):
            body[start + int(rng.integers(0, len(payload)))] ^= int(rng.integers(1, 256))
        forged = bytes(body) + framing._CRC.pack(framing.zlib.crc32(bytes(body)))
        try:
            y = decode(forged)
        except dlrmcomp.CorruptStreamError:
            continue
        assert y.dtype == header.dtype and y.shape == header.shape


def check_backwards_compatibility(name: str, arrays: list[np.ndarray], codec: codecs.Codec) -> None:
    """Frozen frames under tests/fixtures/frames/<name>/ must still decode to the stored arrays.

    Set DLRMCOMP_WRITE_FIXTURES=1 to (re)write missing fixtures; CI never writes.
    """
    root = FIXTURES / "frames" / name.replace("+", "_")
    for i, x in enumerate(arrays):
        frame_path, array_path = root / f"{i:02d}.frame", root / f"{i:02d}.npy"
        if not frame_path.exists():
            if os.environ.get("DLRMCOMP_WRITE_FIXTURES") != "1":
                pytest.fail(f"missing fixture {frame_path}; write it with DLRMCOMP_WRITE_FIXTURES=1")
            root.mkdir(parents=True, exist_ok=True)
            frame = codec.encode(x)
            frame_path.write_bytes(frame)
            np.save(array_path, dlrmcomp.decompress(frame))
        expected = np.load(array_path)
        got = dlrmcomp.decompress(frame_path.read_bytes())
        assert got.dtype == expected.dtype and got.shape == expected.shape and got.tobytes() == expected.tobytes()


def execute_notebook(stem: str, tmp_path: Path, profile: str = "smoke", **parameters) -> dict:
    """Run notebooks/<stem>.ipynb with papermill into tmp_path; return its recorded results."""
    from dlrmcomp.notebook import execute, notebooks_dir, read_results

    run = execute(notebooks_dir() / f"{stem}.ipynb", tmp_path, profile, parameters, cell_timeout=600)
    assert run.ok, run.error
    return read_results(run.out_dir)
