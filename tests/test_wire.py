"""The wire format of the compressed all-to-all on the CPU: round trip and bound on real fields,
frames from slices, corrupt slices, and the GPU-written wire buffers committed as fixtures
(scripts/write_wire_fixtures.py on a GPU) decoded here, on the CPU, to the GPU's arrays."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dlrmcomp
from dlrmcomp.exchange import wire

from common import FIXTURES, check_error_bound

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "scifloat"
WIRE_FIXTURES = FIXTURES / "wire"


def _real_fields() -> list[np.ndarray]:
    vort = np.fromfile(REAL / "sperr_vorticity.512_512", "<f4").reshape(512, 512)
    press = np.fromfile(REAL / "sperr_pressur_384x384.d64", "<f8").reshape(384, 384)
    wind = np.fromfile(REAL / "eraint_u_2x3x241x480.f32", "<f4").reshape(-1, 480)
    return [vort, press, wind]


def _bound_of(buf) -> float:
    return wire.Descriptor.unpack(buf).eb_abs


@pytest.mark.parametrize("eb", [0.05, 0.01, 0.001])
def test_real_fields_round_trip_within_the_bound(eb):
    for x in _real_fields():
        x = x.copy()
        x[5, 7], x[9, 1], x[2, 3] = np.nan, np.inf, -np.inf
        buf = wire.encode_slice(x, eb, code_dtype=wire.code_dtype_for([eb]))
        y = wire.decode_slice(buf)
        stats = check_error_bound(x, y, _bound_of(buf))
        assert stats["violations"] == 0 and y.dtype == x.dtype and y.shape == x.shape
        assert len(buf) < x.nbytes / (3 if eb >= 0.01 else 1.5)  # it compresses
        np.testing.assert_array_equal(dlrmcomp.decompress(wire.to_frame(buf)), y)  # frame of the slice: same array


def test_code_dtype_is_decided_from_the_bounds_alone():
    assert wire.code_dtype_for([0.03, 0.002]) == np.int8
    assert wire.code_dtype_for([0.03, 0.0019]) == np.int16
    assert wire.code_dtype_for([0.5], mode="abs") == np.int16
    assert wire.code_dtype_for([0.001], codes="int8") == np.int8
    # the rule holds on data: at the smallest int8 bound no finite value escapes
    x = np.random.default_rng(0).standard_normal((4096, 32)).astype(np.float32)
    buf = wire.encode_slice(x, wire.INT8_MIN_REL_BOUND, code_dtype=np.dtype(np.int8))
    assert wire.Descriptor.unpack(buf).n_esc == 0


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(0, 40), st.integers(1, 9)),
                    elements=st.floats(-1e6, 1e6, width=32) | st.just(np.nan) | st.just(np.inf)),
       eb=st.sampled_from([0.1, 0.03, 0.004, 1e-5]))
def test_property_bound_and_frame_equivalence(x, eb):
    buf = wire.encode_slice(x, eb, code_dtype=wire.code_dtype_for([eb]))
    assert len(buf) % 16 == 0
    y = wire.decode_slice(buf)
    assert check_error_bound(x, y, _bound_of(buf))["violations"] == 0
    np.testing.assert_array_equal(dlrmcomp.decompress(wire.to_frame(buf)), y)


def test_packed_slices_and_receiver_checks():
    rng = np.random.default_rng(1)
    xs = [rng.normal(0, 0.1, (r, 16)).astype(np.float32) for r in (1, 50, 333)]
    buf, lengths = wire.encode_slices(xs, [0.03, 0.01, 0.05])
    assert sum(lengths) == len(buf) and all(n % 16 == 0 for n in lengths)
    ys = wire.decode_slices(buf, lengths, [x.shape for x in xs])
    for x, y, view in zip(xs, ys, wire.split(buf, lengths)):
        assert check_error_bound(x, y, _bound_of(view))["violations"] == 0
    with pytest.raises(dlrmcomp.CorruptStreamError, match="expected"):
        wire.decode_slices(buf, lengths, [(1, 16), (50, 16), (334, 16)])  # the receiver expects other rows
    with pytest.raises(dlrmcomp.CorruptStreamError):
        wire.decode_slices(buf[:-16], lengths, [x.shape for x in xs])  # truncated buffer
    with pytest.raises(ValueError):
        wire.encode_slice(np.zeros(8, np.float32), 0.1)  # not 2-D


def test_corrupt_slices_raise_or_decode_to_the_right_shape():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (200, 16)).astype(np.float32)
    x[3, 3] = np.nan
    buf = wire.encode_slice(x, 0.02)
    for i in range(400):
        bad = bytearray(buf)
        if i % 4 == 0:  # truncation: always an error
            with pytest.raises(dlrmcomp.CorruptStreamError):
                wire.decode_slice(bytes(bad[:int(rng.integers(0, len(buf)))]))
            continue
        pos = int(rng.integers(0, wire.DESCRIPTOR_SIZE + 23 if i % 4 == 1 else len(buf)))
        bad[pos] ^= int(rng.integers(1, 256))
        if pos < wire.DESCRIPTOR_SIZE + 23:  # descriptor and stream header are checksummed
            with pytest.raises(dlrmcomp.CorruptStreamError):
                wire.decode_slice(bytes(bad))
            continue
        try:  # the body has no checksum of its own (the transport's): an error or a well-formed array
            y = wire.decode_slice(bytes(bad))
        except dlrmcomp.CorruptStreamError:
            continue
        assert y.shape == x.shape and y.dtype == x.dtype


def test_gpu_written_wire_buffers_decode_on_the_cpu():
    files = sorted(WIRE_FIXTURES.glob("*.npz"))
    assert files, "no GPU-written wire fixtures: run scripts/write_wire_fixtures.py on a GPU and commit them"
    for f in files:
        z = np.load(f)
        n = int(z["n_slices"])
        ys = wire.decode_slices(z["buffer"].tobytes(), z["lengths"], [z[f"expected_{i}"].shape for i in range(n)])
        for i, y in enumerate(ys):
            np.testing.assert_array_equal(y, z[f"expected_{i}"], err_msg=f"{f.name} slice {i}")
            assert check_error_bound(z[f"input_{i}"], y, _bound_of(wire.split(z["buffer"].tobytes(), z["lengths"])[i]))["violations"] == 0
