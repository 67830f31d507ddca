"""Huffman and rANS stages: round trips, ratio against the order-0 entropy, the documented
byte layout (re-read by a plain-Python decoder), and corrupt input."""
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlrmcomp.codecs.entropy import DTYPES, Huffman, Rans, entropy_bits
from dlrmcomp.errors import CorruptStreamError

CODERS = [Huffman(), Rans(), Huffman(lanes=3, chunk=10), Rans(lanes=7, chunk=100)]
TABLE_SLACK = 1024  # bytes: header, alphabet, frequency / length table


def roundtrip(coder, x):
    buf = coder.encode(x)
    y = coder.decode(buf)
    assert y.dtype == x.dtype and y.shape == (x.size,)
    np.testing.assert_array_equal(y, x.reshape(-1))
    return buf


def gaussian_codes(rng, size, eb=0.03):
    return np.clip(np.round(rng.normal(0, 1 / (2 * eb * 6), size)), -127, 127).astype(np.int8)


def embedding_codes(rng, rows=20_000, lookups=65_536, dim=64, eb=0.03):
    """int8 codes of Zipf(1.05)-popular N(0, 0.05) embedding rows, quantized at eb relative."""
    table = rng.normal(0, 0.05, size=(rows, dim)).astype(np.float32)
    picked = table[(rng.zipf(1.05, lookups) - 1) % rows]
    step = 2 * eb * float(picked.max() - picked.min())
    return np.round(picked / step).astype(np.int8)


@pytest.mark.parametrize("coder", CODERS, ids=repr)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_roundtrip_dtypes_with_extremes(coder, dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    extremes = np.array([info.min, info.max, 0, info.min + 1, info.max - 1], dtype)
    for x in (extremes, np.tile(extremes, 201),
              rng.integers(info.min, info.max, 3001, dtype=dtype, endpoint=True),
              np.clip(np.round(rng.normal(0, 40, (37, 41))), info.min, info.max).astype(dtype),
              np.zeros(0, dtype)):
        roundtrip(coder, x)


@pytest.mark.parametrize("coder", CODERS, ids=repr)
def test_constant_and_uniform(coder):
    for value in (0, -128, 127):
        buf = roundtrip(coder, np.full(100_003, value, np.int8))
        assert len(buf) < 64  # zero entropy: header + alphabet only
    every = np.random.default_rng(2).permutation(np.repeat(np.arange(256, dtype=np.uint8), 400))
    buf = roundtrip(coder, every)
    assert len(buf) <= 1.02 * every.size + TABLE_SLACK + 8 * every.size / coder.chunk * coder.lanes


@pytest.mark.parametrize("cls", [Huffman, Rans])
def test_lengths_off_the_lane_and_chunk_grid(cls):
    rng = np.random.default_rng(3)
    for lanes, chunk in ((1, 1), (4, 4), (5, 13), (32, 1000), (6, 64)):
        coder = cls(lanes=lanes, chunk=chunk)
        for n in (1, 2, 3, lanes - 1, lanes + 1, chunk - 1, chunk + 1, 3 * chunk + lanes // 2 + 1):
            roundtrip(coder, gaussian_codes(rng, max(n, 0)))


@pytest.mark.parametrize("cls", [Huffman, Rans])
def test_wide_alphabets(cls):
    rng = np.random.default_rng(4)
    int16_codes = np.round(rng.normal(0, 100, 200_000)).astype(np.int16)  # ~800 distinct
    buf = roundtrip(cls(), int16_codes)
    assert buf[4] == 0  # one dense plane
    assert len(buf) <= 1.02 * entropy_bits(int16_codes) / 8 + 16 * 1024
    index = rng.choice(rng.integers(0, 2_000_000, 20_000), 65_536).astype(np.uint32)
    buf = roundtrip(cls(), index)
    assert buf[4] == 1  # byte planes
    byte_planes = index.view(np.uint8).reshape(-1, 4).T
    assert len(buf) <= 1.02 * sum(entropy_bits(p) for p in byte_planes) / 8 + TABLE_SLACK


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(DTYPES), lanes=st.integers(1, 9), chunk=st.integers(1, 50))
def test_roundtrip_property(data, dtype, lanes, chunk):
    x = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=2, max_side=40)))
    for cls in (Huffman, Rans):
        roundtrip(cls(lanes=lanes, chunk=max(chunk, lanes)), x)


def test_entropy_bits():
    assert entropy_bits(np.array([0, 1, 0, 1], np.int8)) == pytest.approx(4.0)
    assert entropy_bits(np.zeros(10, np.int64)) == 0.0
    assert entropy_bits(np.array([], np.uint16)) == 0.0
    assert entropy_bits(np.array([[5, 7, 7, 7]], np.uint32)) == pytest.approx(4 * 0.8112781, rel=1e-6)


@pytest.mark.parametrize("coder", [Huffman(), Rans()], ids=repr)
def test_ratio_on_embedding_codes(coder):
    rng = np.random.default_rng(5)
    for codes in (embedding_codes(rng), gaussian_codes(rng, 65_536 * 64)):
        assert 15 <= np.unique(codes).size <= 40
        bound = entropy_bits(codes) / 8
        assert len(coder.encode(codes)) <= 1.02 * bound + TABLE_SLACK


def test_ratio_on_skewed_codes():
    codes = np.clip(np.round(np.random.default_rng(6).laplace(0, 0.3, 65_536 * 64)), -127, 127).astype(np.int8)
    h0 = entropy_bits(codes)
    assert len(Rans().encode(codes)) <= 1.02 * h0 / 8 + TABLE_SLACK
    # Huffman spends >= 1 bit a symbol; Gallager's bound on its redundancy: p_max + 0.086 bits
    p_max = np.unique(codes, return_counts=True)[1].max() / codes.size
    assert len(Huffman().encode(codes)) <= 1.02 * (h0 + codes.size * (p_max + 0.086)) / 8 + TABLE_SLACK


# -- the documented layout, read back by a plain-Python decoder --------------------------------
def reference_decode(buf: bytes) -> np.ndarray:
    """Decode following only the module docstring (one lane at a time, as a GPU thread would)."""
    magic, _, code, layout, lanes, chunk, n = struct.unpack_from("<2sBBBHIQ", buf, 0)
    dtype = DTYPES[code]
    width, pos = dtype.itemsize, 23
    planes = []
    for plane_width in ([width] if layout == 0 else [1] * width):
        (k,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        alphabet = [int.from_bytes(buf[pos + j * plane_width:pos + (j + 1) * plane_width], "little") for j in range(k)]
        pos += k * plane_width
        if k == 1:
            planes.append([alphabet[0]] * n)
            continue
        param = buf[pos]
        entries = list(struct.unpack_from(f"<{k}{'H' if magic == b'RA' else 'B'}", buf, pos + 1))
        pos += 1 + k * (2 if magic == b"RA" else 1)
        pos += -pos % 4
        n_lanes = -(-n // chunk) * lanes
        ends = struct.unpack_from(f"<{n_lanes}I", buf, pos)
        data = buf[pos + 4 * n_lanes:]
        pos += 4 * n_lanes + ends[-1]
        symbols = [None] * n
        for c in range(-(-n // chunk)):
            m = min(chunk, n - c * chunk)
            for lane in range(lanes):
                j = c * lanes + lane
                lane_bytes = data[ends[j - 1] if j else 0:ends[j]]
                targets = range(c * chunk + lane, c * chunk + m, lanes)
                decode = reference_rans_lane if magic == b"RA" else reference_huffman_lane
                for i, s in zip(targets, decode(lane_bytes, len(targets), param, entries)):
                    symbols[i] = alphabet[s]
        planes.append(symbols)
    values = [sum(p[i] << (8 * b) for b, p in enumerate(planes)) for i in range(n)] if layout else planes[0]
    return np.array(values, dtype=f"u{width}").view(dtype)


def reference_rans_lane(lane: bytes, count: int, scale_bits: int, freq: list[int]):
    if count == 0:
        return []
    cum = np.concatenate([[0], np.cumsum(freq)]).tolist()
    x, words, out = int.from_bytes(lane[:4], "little"), memoryview(lane[4:]).cast("H"), []
    for _ in range(count):
        slot = x & ((1 << scale_bits) - 1)
        k = next(s for s in range(len(freq)) if cum[s] <= slot < cum[s + 1])
        out.append(k)
        x = freq[k] * (x >> scale_bits) + slot - cum[k]
        if x < 1 << 15:
            x, words = (x << 16) | words[0], words[1:]
    assert x == 1 << 15 and len(words) == 0
    return out


def reference_huffman_lane(lane: bytes, count: int, max_len: int, lengths: list[int]):
    order = sorted(range(len(lengths)), key=lambda s: (lengths[s], s))
    codes, code = {}, 0
    for prev, s in zip([None] + order, order):
        if prev is not None:
            code = (code + 1) << (lengths[s] - lengths[prev])
        codes[(lengths[s], code)] = s
    bits = "".join(f"{b:08b}"[::-1] for b in lane)  # LSB first
    out, pos = [], 0
    for _ in range(count):
        length = 1
        while (length, int(bits[pos:pos + length], 2)) not in codes:
            length += 1
        out.append(codes[(length, int(bits[pos:pos + length], 2))])
        pos += length
    assert len(lane) == 4 * (-(-pos // 32))
    return out


@pytest.mark.parametrize("cls", [Huffman, Rans])
def test_documented_layout(cls):
    rng = np.random.default_rng(7)
    for x in (gaussian_codes(rng, 900), np.round(rng.normal(0, 200, 500)).astype(np.int16),
              rng.integers(0, 1 << 30, 300).astype(np.uint32), np.full(50, 7, np.int64)):
        buf = cls(lanes=6, chunk=64).encode(x)
        np.testing.assert_array_equal(reference_decode(buf), x)


# -- corrupt input ----------------------------------------------------------------------------
def corruption_cases():
    rng = np.random.default_rng(8)
    arrays = [gaussian_codes(rng, 5000), np.round(rng.normal(0, 300, 3000)).astype(np.int16),
              rng.choice(rng.integers(0, 1 << 21, 500), 3000).astype(np.uint32)]
    return [(coder, coder.encode(x), x) for coder in (Huffman(lanes=8, chunk=512), Rans(lanes=8, chunk=512)) for x in arrays]


@pytest.mark.parametrize("coder,buf,x", corruption_cases(), ids=lambda v: repr(v)[:20] if not isinstance(v, bytes | np.ndarray) else "")
def test_corruption_is_detected_or_harmless(coder, buf, x):
    rng = np.random.default_rng(len(buf))
    for _ in range(50):  # 6 cases x 50 = 300 flips
        bad = bytearray(buf)
        at = int(rng.integers(len(bad)))
        bad[at] ^= int(rng.integers(1, 256))
        try:
            y = coder.decode(bytes(bad))
        except CorruptStreamError:
            continue
        assert y.dtype == x.dtype and y.size == x.size
    for _ in range(50):  # 300 truncations
        with pytest.raises(CorruptStreamError):
            coder.decode(memoryview(buf)[:int(rng.integers(len(buf)))])
    with pytest.raises(CorruptStreamError):
        coder.decode(buf + b"\0")
    with pytest.raises(CorruptStreamError):
        (Rans() if isinstance(coder, Huffman) else Huffman()).decode(buf)


def test_value_objects():
    assert Rans(lanes=16, chunk=4096) == Rans(lanes=16, chunk=4096) != Huffman(lanes=16, chunk=4096)
    assert repr(Huffman()) == "Huffman(lanes=32, chunk=262144)"
    assert vars(Rans(lanes=8, chunk=800)) == {"lanes": 8, "chunk": 800}
    for bad in ({"lanes": 0}, {"lanes": 64, "chunk": 32}, {"lanes": 1 << 16, "chunk": 1 << 20}):
        with pytest.raises(ValueError):
            Rans(**bad)
    with pytest.raises(ValueError):
        Huffman().encode(np.zeros(3, np.float32))
    with pytest.raises(CorruptStreamError):
        Huffman().decode(object())


@pytest.mark.parametrize("coder", [Rans(), Huffman()])
def test_short_streams_use_few_lanes(coder):
    """A lane costs bytes of offset (and state): short streams must not pay for 32 of them."""
    from dlrmcomp.codecs.entropy import stream_lanes

    assert [stream_lanes(n, 32) for n in (1, 4096, 4097, 65536, 10**6)] == [1, 1, 2, 16, 32]
    symbols = np.random.default_rng(0).integers(0, 4, 512).astype(np.uint8)  # 2 bits each: 128 bytes
    stream = coder.encode(symbols)
    assert len(stream) <= 128 * 1.05 + 64
    assert np.array_equal(coder.decode(stream), symbols)
