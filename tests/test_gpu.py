"""GPU codecs (CuPy): round trip, error bound, CPU <-> GPU cross-compatibility, corrupt frames.

Cross-compatibility property tested here: with the default lanes/chunk, a ``gpu:`` codec writes
frames byte-identical to the CPU recipe's, and each side decodes the other's frames to the
identical array. Skipped cleanly without cupy or a CUDA device. The committed GPU frames
(tests/fixtures/gpu_frames, checked by tests/test_gpu_frames.py) are written by
scripts/write_gpu_fixtures.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import dlrmcomp
from dlrmcomp import codecs

from common import FIXTURES, check_error_bound
from common import gpu_test_arrays as arrays

pytestmark = pytest.mark.gpu
cp = pytest.importorskip("cupy")
if not codecs.gpu.gpu_available():  # pragma: no cover - CPU CI
    pytest.skip("no CUDA device", allow_module_level=True)

from dlrmcomp.codecs.gpu.codec import GpuPipeline  # noqa: E402
from dlrmcomp.codecs.gpu.decode import decode_plan, run_decode  # noqa: E402


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
        return True
    except ImportError:
        return False


needs_cpu = pytest.mark.skipif(not _has_numba(), reason="CPU kernels need numba")


RECIPES = ["quant+ans", "quant+dedup+ans"]
CASES = [(r, dt, eb) for r in RECIPES for dt, eb in (("int8", 0.03), ("int16", 0.001), ("auto", 0.01))]


@pytest.mark.parametrize("recipe,cdt,eb", CASES)
def test_round_trip_and_bound(recipe, cdt, eb):
    rng = np.random.default_rng(1)
    codec = GpuPipeline(recipe, eb=eb, dtype=cdt)
    xs = arrays(rng)
    frames = codec.encode_batch(xs)
    ys = codec.decode_batch(frames)
    for x, y, f in zip(xs, ys, frames):
        check_error_bound(x, cp.asnumpy(y), codecs.read_header(f).eb_abs)


@pytest.mark.parametrize("recipe,cdt,eb", CASES)
def test_torch_in_out(recipe, cdt, eb):
    torch = pytest.importorskip("torch")
    x = torch.randn(1024, 32, device="cuda")
    codec = GpuPipeline(recipe, eb=eb, dtype=cdt)
    (y,) = codec.decode_batch(codec.encode_batch([x]), out="torch")
    assert y.is_cuda and y.shape == x.shape
    check_error_bound(x.cpu().numpy(), y.cpu().numpy(), codecs.read_header(codec.encode(x)).eb_abs)


@needs_cpu
@pytest.mark.parametrize("recipe,cdt,eb", CASES)
def test_frames_bit_identical_to_cpu(recipe, cdt, eb):
    rng = np.random.default_rng(2)
    gpu = GpuPipeline(recipe, eb=eb, dtype=cdt)
    cpu = codecs.get(recipe, eb=eb, dtype=cdt)
    xs = arrays(rng)
    for x, g in zip(xs, gpu.encode_batch(xs)):
        c = cpu.encode(x)
        assert g == c
        assert dlrmcomp.decompress(g).tobytes() == cp.asnumpy(gpu.decode_batch([c])[0]).tobytes()


@needs_cpu
@pytest.mark.parametrize("chunk,lanes", [(1 << 12, 32), (1 << 16, 64)])
def test_other_lane_layouts_decode_on_cpu(chunk, lanes):
    rng = np.random.default_rng(3)
    gpu = GpuPipeline("quant+dedup+ans", eb=0.02, chunk=chunk, lanes=lanes)
    xs = arrays(rng)
    for g in gpu.encode_batch(xs):
        assert dlrmcomp.decompress(g).tobytes() == cp.asnumpy(gpu.decode(g)).tobytes()


@pytest.mark.parametrize("name", ["quant_ans", "quant_dedup_ans"])
def test_gpu_decodes_frozen_cpu_frames(name):
    codec = GpuPipeline("quant+ans", eb=0.01)
    root = FIXTURES / "frames" / name
    paths = sorted(root.glob("*.frame"))
    assert paths
    for path in paths:
        expected = np.load(path.with_suffix(".npy"))
        got = codec.decode(path.read_bytes())
        assert got.dtype == expected.dtype and got.shape == expected.shape and got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("recipe", RECIPES)
def test_corrupt_frames_raise(recipe):
    rng = np.random.default_rng(4)
    codec = GpuPipeline(recipe, eb=0.03)
    frame = codec.encode(arrays(rng)[0])
    from dlrmcomp.codecs import frame as framing

    _, payload = framing.unpack(frame)
    start = len(frame) - 4 - len(payload)
    for i in range(300):
        bad = bytearray(frame)
        if i % 3 == 0:
            bad = bad[: int(rng.integers(0, len(frame)))]
        elif i % 3 == 1:
            bad[int(rng.integers(0, len(frame)))] ^= int(rng.integers(1, 256))
        else:  # flip inside the payload and re-seal the checksum: clean error or a well-formed array
            body = bytearray(frame[:-4])
            body[start + int(rng.integers(0, len(payload)))] ^= int(rng.integers(1, 256))
            forged = bytes(body) + framing._CRC.pack(framing.zlib.crc32(bytes(body)))
            try:
                y = codec.decode(forged)
            except dlrmcomp.CorruptStreamError:
                continue
            assert y.shape == framing.read_header(frame).shape
            continue
        with pytest.raises(dlrmcomp.CorruptStreamError):
            codec.decode(bytes(bad))
    cp.cuda.runtime.deviceSynchronize()  # no sticky CUDA error after all that


def test_registry_lists_gpu_codecs():
    assert "gpu:quant+dedup+ans" in codecs.available()
    codec = codecs.get("gpu:quant+dedup+ans", eb=0.03)
    assert codec.get_config()["id"] == "gpu:quant+dedup+ans"
    assert codecs.read_header(codec.encode(np.ones((64, 8), np.float32))).codec["id"] == "quant+dedup+ans"


@pytest.mark.parametrize("recipe,cdt,eb", CASES + [("quant+dedup+ans", "int8", 0.05)])
@pytest.mark.parametrize("lanes,chunk", [(32, 1 << 18), (128, 1 << 12)])
def test_device_tables_equal_host_tables(recipe, cdt, eb, lanes, chunk):
    """Device-built rANS tables (build_tables + plane_costs) give the same bytes as the numpy tables."""
    rng = np.random.default_rng(6)
    xs = arrays(rng) + [rng.normal(0, 1, (5000, 64)).astype(np.float32)]  # many index symbols
    dev = GpuPipeline(recipe, eb=eb, dtype=cdt, lanes=lanes, chunk=chunk, tables="device")
    host = GpuPipeline(recipe, eb=eb, dtype=cdt, lanes=lanes, chunk=chunk, tables="host")
    for d, h in zip(dev.encode_batch(xs), host.encode_batch(xs)):
        assert d == h


def _nvcomp():
    try:
        from nvidia import nvcomp  # noqa: F401
        return True
    except Exception:
        return False


needs_nvcomp = pytest.mark.skipif(not _nvcomp(), reason="nvidia-nvcomp not installed")


@needs_nvcomp
@pytest.mark.parametrize("algo", ["ANS", "LZ4", "Zstd", "Bitcomp", "Cascaded", "GDeflate"])
def test_nvcomp_adapters_round_trip_codes(algo):
    """nvcomp on batches of int8 / int16 codes (one BatchArray call each way): exact round trip."""
    from dlrmcomp.codecs.gpu.nvcomp import NvcompCodec, nbytes

    rng = np.random.default_rng(7)
    codes = [cp.asarray(np.clip(np.round(rng.laplace(0, 3, 50_000)), -127, 127).astype(np.int8)),
             cp.asarray(np.zeros(4096, np.int8)),
             cp.asarray(rng.integers(-2000, 2000, 30_000).astype(np.int16))]
    codec = NvcompCodec(algo, eb=0.03)
    comp = codec.compress_codes(codes)
    assert len(comp) == len(codes) and 0 < nbytes(comp)
    got = codec.decompress_codes(comp)
    for g, c in zip(got, codes):
        assert g.dtype == cp.uint8 and g.tobytes() == c.reshape(-1).view(cp.uint8).tobytes()


@needs_nvcomp
@needs_cpu
@pytest.mark.parametrize("algo", ["ANS", "Zstd"])
def test_nvcomp_frames_round_trip(algo):
    x = np.random.default_rng(8).normal(0, 1, (2048, 32)).astype(np.float32)
    codec = codecs.get(f"nvcomp:{algo.lower()}", eb=0.03)
    y = codec.decode(codec.encode(x))
    check_error_bound(x, y, codecs.read_header(codec.encode(x)).eb_abs)


@pytest.mark.parametrize("recipe", ["quant+ans", "quant+dedup+ans"])
@pytest.mark.parametrize("cdt", ["int8", "int16"])
@pytest.mark.parametrize("mode", ["rel", "abs"])
@pytest.mark.parametrize("lanes,chunk", [(32, 1 << 18), (128, 1 << 12), (24, 1 << 10)])
def test_fused_and_multistate_give_identical_frames(recipe, cdt, mode, lanes, chunk):
    """Device grid params + fused quantize/histogram + S lanes per thread: the same bytes as the unfused,
    one-state-per-thread path (and so as the CPU's in the default layout); decode with S = 1, 2, 4 agrees."""
    rng = np.random.default_rng(9)
    xs = arrays(rng) + [rng.normal(0, 1, (777, 64)).astype(np.float32),
                        np.full((64, 16), 3.0, np.float32), rng.normal(0, 1, (300, 8)).astype(np.float64)]
    xs = [x for x in xs if x.dtype == np.float32] if recipe == "quant+dedup+ans" else xs
    eb = 0.02 if mode == "rel" else 0.01
    ref = GpuPipeline(recipe, eb=eb, mode=mode, dtype=cdt, lanes=lanes, chunk=chunk, fused=False, states=1)
    want = ref.encode_batch(xs)
    for states in (1, 2, 4):
        new = GpuPipeline(recipe, eb=eb, mode=mode, dtype=cdt, lanes=lanes, chunk=chunk, fused=True, states=states)
        assert new.encode_batch(xs) == want
        got = run_decode(decode_plan(want), states)
        base = run_decode(decode_plan(want), 1)
        for g, b, x in zip(got, base, xs):
            assert g.shape == x.shape and cp.asnumpy(g).tobytes() == cp.asnumpy(b).tobytes()
        for g, x, f in zip(got, xs, want):
            check_error_bound(x, cp.asnumpy(g), codecs.read_header(f).eb_abs)
