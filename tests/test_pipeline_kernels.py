"""The compiled paths (one kernel a stream, one a table) write and read exactly the bytes of the
stage-by-stage numpy paths; the ``match`` row stage; batches, threads and decoding into given arrays."""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dlrmcomp
from dlrmcomp import codecs
from dlrmcomp.bench.payload import embedding_payload
from dlrmcomp.codecs import base, entropy, pipeline
from dlrmcomp.codecs.dedup import dedup_rows, inverse_of, match_rows, matches_of
from dlrmcomp.codecs.entropy import DTYPES, Huffman, Rans
from dlrmcomp.codecs.frame import _CRC, unpack
from dlrmcomp.codecs.pipeline import Pipeline, parse_recipe

from common import (check_backwards_compatibility, check_config, check_corruption, check_encode_decode,
                    check_error_bound, check_tampered_payload)

OURS = ["quant+ans", "quant+huffman", "quant+dedup+ans", "quant+dedup+huffman", "quant+match+ans",
        "quant+match+huffman"]
MATCH = ["quant+match+ans", "quant+match+huffman"]
CODERS = [Rans(), Huffman(), Rans(lanes=7, chunk=100), Huffman(lanes=3, chunk=10)]


@pytest.fixture(autouse=True)
def default_registry(monkeypatch):
    """Reading a match frame registers its recipe on the fly; other tests expect the defaults only."""
    monkeypatch.setattr(base, "_registry", dict(base._registry))


def staged_encode(codec: Pipeline, x) -> bytes:
    kernel, codec._kernel = codec._kernel, None
    try:
        return codec.encode(x)
    finally:
        codec._kernel = kernel


def staged_decode(codec: Pipeline, frame) -> np.ndarray:
    header, payload = unpack(frame)
    return codec._decode_staged(payload, header)


def arrays():
    rng = np.random.default_rng(11)
    special = rng.normal(0, 1, (512, 16)).astype(np.float32)
    special[3, 2], special[7, 0], special[9, 9], special[11, 1] = np.nan, np.inf, -np.inf, 1e30  # 1e30 escapes
    return embedding_payload(300, 16, 2, seed=1) + embedding_payload(2000, 64, 2, seed=2) + [
        special, rng.normal(size=(50, 7)), rng.normal(size=(3, 4, 5)).astype(np.float32), np.zeros((10, 4), np.float32),
        np.array([0.0, -1.5, np.nan, np.inf, -np.inf, 1e-40, 3.0], np.float32),
        np.array([[-0.0, 0.0, 1.0]], np.float32),
        -np.abs(rng.normal(size=(100, 8))).astype(np.float32), rng.normal(size=(70000, 1)).astype(np.float32)]


# -- entropy streams ---------------------------------------------------------------------------
def check_stream_paths(coder, x):
    x = np.asarray(x)
    u = x.reshape(-1).view(f"u{x.dtype.itemsize}")
    buf = coder.encode(x)
    if u.size:
        assert buf == coder._encode_reference(u, x.dtype)
    data = np.frombuffer(buf, np.uint8)
    fast, ref = coder.decode(buf), coder._decode_reference(data, None)
    assert fast.dtype == ref.dtype == x.dtype and fast.tobytes() == ref.tobytes() == x.tobytes()


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(DTYPES), lanes=st.integers(1, 9), chunk=st.integers(1, 60))
def test_stream_kernels_write_and_read_the_numpy_bytes(data, dtype, lanes, chunk):
    x = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=2, max_side=60)))
    for cls in (Huffman, Rans):
        check_stream_paths(cls(lanes=lanes, chunk=max(chunk, lanes)), x)


@pytest.mark.parametrize("coder", CODERS, ids=repr)
def test_stream_kernels_on_both_layouts_and_many_lanes(coder):
    rng = np.random.default_rng(3)
    for x in (np.round(rng.normal(0, 100, 50_000)).astype(np.int16),  # ~800 values: one dense plane
              rng.choice(rng.integers(0, 65536, 3000), 40_000).astype(np.uint16),  # spread: byte planes
              rng.integers(0, 4, 9000).astype(np.uint8), rng.integers(0, 1 << 30, 5000).astype(np.uint32),
              np.clip(np.round(rng.laplace(0, 0.3, 300_000)), -127, 127).astype(np.int8)):
        check_stream_paths(coder, x)


@pytest.mark.parametrize("coder", [Rans(lanes=8, chunk=512), Huffman(lanes=8, chunk=512)], ids=repr)
def test_stream_kernel_accepts_only_what_numpy_accepts(coder):
    """A damaged stream the kernel decodes, the numpy reader decodes to the same array (the kernel
    hands every stream it rejects to the numpy reader, which words the error)."""
    rng = np.random.default_rng(4)
    for x in (np.round(rng.normal(0, 3, 4000)).astype(np.int8), np.round(rng.normal(0, 300, 3000)).astype(np.int16)):
        buf = coder.encode(x)
        for _ in range(150):
            bad = bytearray(buf)
            bad[int(rng.integers(len(bad)))] ^= int(rng.integers(1, 256))
            data = np.frombuffer(bytes(bad), np.uint8)
            fast = entropy.decode_stream(data, coder._coder, None)
            if fast is not None:
                assert fast.tobytes() == coder._decode_reference(data, None).tobytes()


# -- recipes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OURS)
def test_compiled_recipes_write_and_read_the_staged_bytes(name):
    for eb, mode, dtype in ((0.03, "rel", "auto"), (0.001, "rel", "auto"), (0.05, "rel", "int16"),
                            (1e-300, "abs", "auto")):
        codec = codecs.get(name, eb=eb, mode=mode, dtype=dtype)
        for x in arrays():
            frame = codec.encode(x)
            assert frame == staged_encode(codec, x), (eb, x.shape)
            assert codec.decode(frame).tobytes() == staged_decode(codec, frame).tobytes()


@pytest.mark.parametrize("name", OURS)
def test_compiled_decoder_accepts_only_what_the_staged_one_accepts(name):
    rng = np.random.default_rng(5)
    codec = codecs.get(name, eb=0.02)
    frame = codec.encode(arrays()[0])
    header, payload = unpack(frame)
    start = len(frame) - 4 - len(payload)
    row_stage, coder = codec._kernel
    for _ in range(300):
        body = bytearray(frame[:-4])
        body[start + int(rng.integers(len(payload)))] ^= int(rng.integers(1, 256))
        forged = bytes(body) + _CRC.pack(zlib.crc32(bytes(body)))
        header, payload = unpack(forged)
        out = np.empty(header.shape, header.dtype)
        status = pipeline._decode_table(np.frombuffer(payload, np.uint8), row_stage, coder._coder,
                                        pipeline.row_width(header.shape), pipeline.output_limit(header),
                                        out.reshape(-1))
        if status == pipeline._OK:
            assert out.tobytes() == staged_decode(codec, forged).tobytes()


def test_batches_threads_and_given_outputs(monkeypatch):
    monkeypatch.setattr(pipeline, "THREAD_MIN_ELEMENTS", 1)  # these small tables on threads too
    xs = embedding_payload(700, 16, 6, seed=3) + [np.random.default_rng(0).normal(size=(40, 3))]
    for name in ("quant+match+ans", "quant+dedup+huffman", "quant+zstd"):
        codec = codecs.get(name, eb=0.01)
        frames = [codec.encode(x) for x in xs]
        assert codec.encode_batch(xs) == frames == codec.encode_batch(xs, threads=2)
        singles = [codec.decode(f) for f in frames]
        for ys in (codec.decode_batch(frames), codec.decode_batch(frames, threads=2)):
            assert [y.tobytes() for y in ys] == [y.tobytes() for y in singles]
            ys[0][...] = 7  # arrays of one batch share a buffer, never their elements
            assert ys[1].tobytes() == singles[1].tobytes()
    codec = codecs.get("quant+match+huffman", eb=0.01)
    frames = codec.encode_batch(xs)
    first = codec.decode_batch(frames)
    kept = [y.copy() for y in first]
    codec.decode_batch(frames[::-1])  # a buffer is reused only once no array of it is alive
    assert [y.tobytes() for y in first] == [y.tobytes() for y in kept]
    out = [np.empty_like(x) for x in xs]
    ys = codec.decode_batch(frames, out=out)
    assert all(y is o for y, o in zip(ys, out)) and ys[2].tobytes() == codec.decode(frames[2]).tobytes()
    with pytest.raises(ValueError, match="out"):
        codec.decode_batch(frames, out=out[:-1])
    with pytest.raises(dlrmcomp.CorruptStreamError):
        codec.decode_batch([frames[0], frames[1][:-3]])


# -- the match stage ---------------------------------------------------------------------------
def test_match_recipes_parse_apart_from_dedup():
    assert parse_recipe("quant+match+ans") == (True, False, ("match", "ans"))
    assert parse_recipe("match+zstd") == (False, False, ("match", "zstd"))
    # a reader that knows quant+ans / quant+dedup+ans only (the GPU codec) sees other coders and refuses
    assert parse_recipe("quant+match+ans")[2] != ("ans",)
    for bad in ("quant+dedup+match+ans", "quant+ans+match", "match+quant+ans"):
        with pytest.raises(ValueError, match="invalid recipe"):
            parse_recipe(bad)


def test_matches_invert_and_reject_forward_references():
    rows = np.array([[1, 2], [3, 4], [1, 2], [5, 6], [3, 4], [3, 4]], np.int8)
    unique, inverse = dedup_rows(rows)
    m = matches_of(inverse)
    assert m.tolist() == [0, 0, 1, 0, 2, 2] and m.dtype == np.uint8
    assert np.array_equal(match_rows(rows)[1], m) and np.array_equal(inverse_of(m, 3), inverse)
    assert inverse_of(m, 2) is None and inverse_of(np.array([0, 2], np.uint8), 1) is None  # 2: row 1 not sent yet
    assert matches_of(np.arange(300)).dtype == np.uint8 and matches_of(np.array([0, 1, 0, 300])).dtype == np.uint16


@pytest.mark.parametrize("name", MATCH + ["match+zstd"])
def test_match_recipes_round_trip_and_fixtures(name):
    lossy = name.startswith("quant")
    codec = codecs.get(name, eb=0.01) if lossy else codecs.get(name)
    check_config(codec)
    xs = arrays() if lossy else [np.arange(-50, 50, dtype=np.int16).reshape(10, 10), arrays()[0]]
    for x in xs:
        check_encode_decode(x, codec)
    check_backwards_compatibility(name, xs[:6], codec)
    rng = np.random.default_rng(7)
    frame = codec.encode(xs[0])
    check_corruption(frame, rng, n=300)
    check_tampered_payload(frame, rng, n=200)


@pytest.mark.parametrize("name", MATCH)
@settings(max_examples=40, deadline=None)
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(0, 30), st.integers(1, 6)),
                    elements=st.sampled_from([0.0, 0.5, -1.25, 3.0, np.nan, np.inf, 1e30])),
       eb=st.sampled_from([0.3, 0.01, 1e-6]))
def test_match_recipes_keep_the_bound_on_repetitive_arrays(name, x, eb):
    frame = codecs.get(name, eb=eb).encode(x)
    check_error_bound(x, dlrmcomp.decompress(frame), codecs.read_header(frame).eb_abs)


@pytest.mark.parametrize("batch", [128, 1024])
def test_match_beats_zstd_and_dedup_in_ratio_on_small_batches(batch):
    """Issue 17: at 128-1024 rows a table (dim 16) the inverse index's tables cost more than dedup
    saves; the matches keep our recipes ahead of quant+zstd level 1."""
    tables = embedding_payload(batch, 16, 26)
    size = {n: sum(map(len, codecs.get(n, eb=0.03, dtype="int8").encode_batch(tables)))
            for n in ("quant+match+ans", "quant+match+huffman", "quant+dedup+ans", "quant+zstd")}
    assert size["quant+match+ans"] < size["quant+zstd"] and size["quant+match+huffman"] < size["quant+zstd"]
    assert size["quant+match+ans"] < 0.9 * size["quant+dedup+ans"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_value_range_matches_finite_range(dtype, data):
    """The compiled range (integer keys of the bit patterns) is errorbound.finite_range's, the signs
    of zero extremes included, with NaN / inf skipped; large float64 arrays take it too."""
    from dlrmcomp.errorbound import finite_range
    n = data.draw(st.sampled_from([0, 1, 7, 100, pipeline._SMALL + 3]))
    x = data.draw(hnp.arrays(dtype, n, elements=st.sampled_from(
        [0.0, -0.0, 0.5, -1.25, 3.0, -7e30, 1e-40, np.nan, -np.nan, np.inf, -np.inf])))
    got, want = pipeline._value_range(x), finite_range(x)
    assert got == want and [np.signbit(v) for v in got] == [np.signbit(v) for v in want]


def test_histogram_counts():
    rng = np.random.default_rng(0)
    for n in (0, 1, 9, 1000):
        keys = rng.zipf(1.5, n).clip(0, 255).astype(np.uint8)
        assert (entropy._histogram(keys, 256) == np.bincount(keys, minlength=256)).all()
