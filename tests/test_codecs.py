"""Every registered codec: round trip, error bound, config, frozen fixtures, corruption."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import dlrmcomp
from dlrmcomp import codecs
from dlrmcomp.bench.fields import scifloat_fields

from common import (check_backwards_compatibility, check_config, check_corruption, check_encode_decode,
                    check_error_bound, check_tampered_payload)

LOSSY = ["quant+ans", "quant+huffman", "quant+zstd", "quant+lz4", "quant+zlib", "quant+dedup+ans",
         "quant+dedup+huffman", "quant+dedup+zstd", "sz3", "zfp", "dct+quant"]
LOSSLESS = ["zstd", "lz4", "zlib", "dedup+zstd"]


def make(name, eb=0.01, mode="rel"):
    return codecs.get(name) if name in LOSSLESS else codecs.get(name, eb=eb, mode=mode)


def arrays():
    rng = np.random.default_rng(42)
    emb = rng.normal(0, 0.05, size=(64, 16)).astype(np.float32)
    special = np.array([0.0, -1.5, np.nan, np.inf, -np.inf, 1e-40, 3.0], dtype=np.float32)
    return [emb[rng.integers(0, 64, 128)], special, rng.normal(size=(4, 5, 6)), np.float32(2.5) * np.ones((3, 3), np.float32)]


def test_registry_lists_every_recipe():
    assert set(LOSSY + LOSSLESS) <= set(codecs.available())
    with pytest.raises(ValueError, match="unknown codec"):
        codecs.get("nope")
    with pytest.raises(ValueError, match="invalid recipe"):
        codecs.register_recipe("ans+quant")


@pytest.mark.parametrize("name", LOSSY + LOSSLESS)
def test_round_trip_config_and_fixtures(name):
    codec = make(name)
    check_config(codec)
    for x in arrays():
        check_encode_decode(x, codec)
    check_backwards_compatibility(name, arrays(), codec)


@pytest.mark.parametrize("name", LOSSY + LOSSLESS)
def test_corruption_always_detected(name):
    rng = np.random.default_rng(7)
    frame = make(name).encode(arrays()[0])
    check_corruption(frame, rng, n=1000)
    check_tampered_payload(frame, rng, n=200)


@pytest.mark.parametrize("name", LOSSY + LOSSLESS)
@pytest.mark.parametrize("x", [np.zeros((0,), np.float32), np.zeros((3, 0, 2)), np.array(1.25), np.float32(np.nan)])
def test_empty_and_scalar(name, x):
    x = np.asarray(x)
    check_encode_decode(x, make(name))


finite = st.floats(float(np.float32(-1e30)), float(np.float32(1e30)), allow_subnormal=True, width=32)
special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-38])
elements = st.one_of(finite, finite, finite, special)


@st.composite
def float_arrays(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12))
    if draw(st.booleans()):
        value = draw(elements)
        return np.full(shape, value, dtype=dtype)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@pytest.mark.parametrize("name", LOSSY)
@given(x=float_arrays(), eb=st.floats(1e-7, 0.5), mode=st.sampled_from(["rel", "abs"]))
def test_bound_holds_on_any_array(name, x, eb, mode):
    codec = make(name, eb=eb, mode=mode)
    frame = codec.encode(x)
    check_error_bound(x, dlrmcomp.decompress(frame), codecs.read_header(frame).eb_abs)


@pytest.mark.parametrize("name", LOSSY)
def test_bound_on_real_scientific_fields(name):
    fields = scifloat_fields()
    if not fields:
        pytest.skip("../shared/data/real/scifloat not present")
    for eb in (1e-4, 1e-2):
        for field in fields.values():
            x = np.asarray(field)
            frame = make(name, eb=eb).encode(x)
            check_error_bound(x, dlrmcomp.decompress(frame), codecs.read_header(frame).eb_abs)


def test_bad_parameters_are_clear():
    for eb in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="error bound"):
            dlrmcomp.compress(np.ones(4, np.float32), eb=eb)
    with pytest.raises(ValueError, match="lossy"):
        dlrmcomp.compress(np.ones(4, np.float32), eb=None, codec="quant+zstd")
    with pytest.raises(ValueError, match="lossless"):
        dlrmcomp.compress(np.ones(4, np.float32), eb=0.1, codec="zstd")
    with pytest.raises(ValueError, match="dtype"):
        dlrmcomp.compress(np.ones(4, np.int32), eb=0.1, codec="quant+zstd")
    with pytest.raises(ValueError, match="mode"):
        dlrmcomp.compress(np.ones(4, np.float32), eb=0.1, mode="psnr")
    with pytest.raises(ValueError, match="code dtype"):
        codecs.get("quant+zstd", eb=0.1, dtype="int4")
    with pytest.raises(dlrmcomp.CorruptStreamError):
        dlrmcomp.decompress(b"not a frame at all, really")
    assert issubclass(dlrmcomp.CorruptStreamError, ValueError)


def test_lossless_codecs_take_integer_arrays():
    x = np.arange(-50, 50, dtype=np.int16).reshape(10, 10)
    for name in LOSSLESS:
        check_encode_decode(x, make(name))


def test_quantizer_matches_the_seed_formula():
    """round(x / 2eb) * 2eb, the seeds' quantize_and_dequantize, where no element escapes."""
    from dlrmcomp.codecs.quantize import quantize_dequantize

    x = np.random.default_rng(3).normal(0, 0.05, size=(1000, 8)).astype(np.float32)
    eb_abs = 0.03 * float(x.max() - x.min())
    seed = (np.round(x.astype(np.float64) / (2 * eb_abs)) * (2 * eb_abs)).astype(np.float32)
    ours = quantize_dequantize(x, eb_abs)
    assert np.max(np.abs(ours.astype(np.float64) - seed)) <= 1e-6
    assert np.abs(ours - x).max() <= eb_abs


def test_int8_and_int16_codes_chosen_by_range():
    x = np.linspace(-1, 1, 10000, dtype=np.float32)
    from dlrmcomp.codecs.quantize import LinearQuantizer
    assert LinearQuantizer().quantize(x, 0.03 * 2).codes.dtype == np.int8
    assert LinearQuantizer().quantize(x, 0.001 * 2).codes.dtype == np.int16
    forced = LinearQuantizer("int8").quantize(x, 0.001 * 2)
    assert forced.codes.dtype == np.int8 and forced.escapes.size > 0
    y = LinearQuantizer.dequantize(forced, x.dtype)
    assert np.abs(y - x).max() <= 0.002


def test_grid_that_cannot_reach_the_data_escapes_everything():
    x = np.array([1e10, 1e10 + 1])
    frame = dlrmcomp.compress(x, eb=1e-300, mode="abs", codec="quant+zstd")
    assert np.array_equal(dlrmcomp.decompress(frame), x)


def test_any_valid_recipe_decodes_without_registering(monkeypatch):
    from dlrmcomp.codecs import base

    x = np.random.default_rng(1).normal(size=(64, 8)).astype(np.float32)
    frame = codecs.get("quant+dedup+huffman+zstd", eb=0.01).encode(x)  # registered on first use
    monkeypatch.delitem(base._registry, "quant+dedup+huffman+zstd")  # as in a fresh process
    check_error_bound(x, dlrmcomp.decompress(frame), codecs.read_header(frame).eb_abs)


@pytest.mark.parametrize("name", LOSSY + LOSSLESS)
def test_decoded_arrays_are_writable(name):
    y = dlrmcomp.decompress(make(name).encode(arrays()[2]))
    y[...] = 0  # a read-only view of the frame would raise


@pytest.mark.parametrize("name", ["quant+ans", "quant+huffman", "zstd", "lz4", "zlib", "quant+dedup+ans"])
def test_forged_stream_lengths_are_errors_not_allocations(name):
    """A payload from a huge array inside a frame that claims a tiny one: rejected before decoding."""
    from dlrmcomp.codecs import frame as framing

    big = np.zeros((1 << 17, 4), np.float32)
    header, payload = framing.unpack(make(name).encode(big))
    forged = framing.pack(framing.FrameHeader(header.codec, header.dtype, (2, 4), header.eb_abs), bytes(payload))
    with pytest.raises(dlrmcomp.CorruptStreamError, match="claims|inflates"):
        dlrmcomp.decompress(forged)


@pytest.mark.parametrize("meta", [
    b'{"codec":{"id":"quant+ans","eb":0.03,"mode":"rel","dtype":"int8"},"dtype":"<f4","shape":[128,16],'
    b'"eb_abs":0.0104}',
    b'{"codec":{"id":"a","l":[1,2]},"dtype":"<f8","shape":[],"eb_abs":null}',
    b'{"codec":{"id":"a","s":",\\"dtype\\":\\"<f4"},"dtype":"<f8","shape":[3],"eb_abs":5}',
    b'{"codec":{"id":"a"},"stats":{"psnr":40.0},"dtype":"<f4","shape":[3],"eb_abs":1e-300}',
    b'{"dtype":"<f4","codec":{"id":"a"},"shape":[3],"eb_abs":NaN}',
    b'{"codec":[1],"dtype":"<f4","shape":[3],"eb_abs":1}',
    b'{"codec":{"id":"a"},"dtype":"<f4","shape":[1,,3],"eb_abs":1}',
])
def test_frame_headers_read_as_json_reads_them(meta):
    """unpack reads pack's layout without json for all but the codec config: the same headers and
    the same refusals as json."""
    import json

    from dlrmcomp.codecs import frame

    try:
        m = json.loads(meta)
        expected = frame.FrameHeader(dict(m["codec"]), np.dtype(m["dtype"]), tuple(int(s) for s in m["shape"]),
                                     None if m["eb_abs"] is None else float(m["eb_abs"]),
                                     None if m.get("stats") is None else dict(m["stats"]))
    except (ValueError, TypeError):
        expected = None
    if expected is None:
        with pytest.raises((ValueError, TypeError)):
            frame._read_meta(meta)
    else:
        got = frame._read_meta(meta)
        assert repr(got) == repr(expected) and repr(frame._read_meta(meta)) == repr(got)  # again: remembered
        assert repr(frame.unpack(frame.pack(got, b"x"))[0]) == repr(got)
