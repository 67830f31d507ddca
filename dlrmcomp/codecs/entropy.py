"""Order-0 entropy coders for integer streams: lane-interleaved Huffman and rANS stages.

``Huffman(lanes, chunk)`` and ``Rans(lanes, chunk)`` turn any integer array (int8 ... uint64,
any shape, read flattened) into bytes that say their dtype and length, and back into the 1-D
array. The format gives every (chunk, lane) pair its own byte range, so a GPU can encode or
decode with one thread per lane. The CPU kernels are single-threaded, GIL-free numba loops that
advance four lanes together, so that their independent dependency chains overlap. Each lane
costs 4-8 bytes of offset, state and padding. The default (32 lanes, 2**18-symbol chunks, so
8192 symbols a lane) keeps that overhead near 0.2% on 3-bit codes.

The stream format (header, planes, lanes, the layout rule) is :mod:`.stream`'s; this module holds
the two coders: their tables, their lane bodies and the numba kernels that run them.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from ._jit import njit
import numpy as np

from ..errors import CorruptStreamError
from .stream import (BYTES, DTYPES, MAX_WHOLE_ALPHABET, WHOLE, Reader, StreamHeader, choose_layout, entropy_of_counts,
                     lane_symbol_counts, pad_to_4, plane_cost_bits, stream_lanes)

_RANS_LOW = 1 << 15  # lower bound of the rANS state
_LANE_BAD_END = 1


def entropy_bits(symbols) -> float:
    """Order-0 entropy of all of ``symbols`` (any shape), in bits: n * H0."""
    flat = np.asarray(symbols).reshape(-1)
    if flat.size == 0:
        return 0.0
    if flat.dtype.itemsize <= 2 and flat.dtype.kind in "iu":
        counts = _histogram(flat.view(f"u{flat.dtype.itemsize}"), 256 ** flat.dtype.itemsize)
    else:
        counts = np.unique(flat, return_counts=True)[1]
    return entropy_of_counts(counts)


# -- shared kernels: histogram, lane bookkeeping ------------------------------------------------
@njit(cache=True, nogil=True)
def _histogram(keys, size):
    """Counts (size,) of the values of ``keys`` (n,), which are < size."""
    parts = np.zeros((4, size), np.int64)  # 4 sub-histograms break store-to-load chains
    n = keys.size
    head = n - n % 4
    for i in range(0, head, 4):
        parts[0, keys[i]] += 1
        parts[1, keys[i + 1]] += 1
        parts[2, keys[i + 2]] += 1
        parts[3, keys[i + 3]] += 1
    for i in range(head, n):
        parts[0, keys[i]] += 1
    return parts.sum(axis=0)


def _lane_driver(init, step, finish):
    """A kernel running the jitted ``init``/``step``/``finish`` of one coder over all lanes.
    Their first argument is the kernel's context tuple; ctx[7] is always the lane count."""

    @njit(cache=True, nogil=True)
    def _run_lanes(ctx, n, chunk, lanes, backwards):
        """Drive a lane coder over n symbols: ``state = step(ctx, state, i)`` for symbol i, lanes in
        order, four lanes interleaved so their dependency chains overlap; ``init(ctx, c, lane,
        count) -> state`` and ``finish(ctx, c, lane, count, state) -> error`` bracket each lane.
        ``backwards`` visits each lane's symbols last to first. Returns the first non-zero error."""
        for c in range((n + chunk - 1) // chunk):
            start = c * chunk
            m = min(chunk, n - start)
            rows, rem = m // lanes, m % lanes
            lane = 0
            while lane < lanes:
                if lane + 4 <= lanes:
                    s0 = init(ctx, c, lane, rows + (lane < rem))
                    s1 = init(ctx, c, lane + 1, rows + (lane + 1 < rem))
                    s2 = init(ctx, c, lane + 2, rows + (lane + 2 < rem))
                    s3 = init(ctx, c, lane + 3, rows + (lane + 3 < rem))
                    for t in range(rows + 1):
                        r = rows - t if backwards else t
                        i = start + r * lanes + lane
                        if r < rows:
                            s0 = step(ctx, s0, i)
                            s1 = step(ctx, s1, i + 1)
                            s2 = step(ctx, s2, i + 2)
                            s3 = step(ctx, s3, i + 3)
                        else:
                            if lane < rem:
                                s0 = step(ctx, s0, i)
                            if lane + 1 < rem:
                                s1 = step(ctx, s1, i + 1)
                            if lane + 2 < rem:
                                s2 = step(ctx, s2, i + 2)
                            if lane + 3 < rem:
                                s3 = step(ctx, s3, i + 3)
                    err = finish(ctx, c, lane, rows + (lane < rem), s0)
                    err = err or finish(ctx, c, lane + 1, rows + (lane + 1 < rem), s1)
                    err = err or finish(ctx, c, lane + 2, rows + (lane + 2 < rem), s2)
                    err = err or finish(ctx, c, lane + 3, rows + (lane + 3 < rem), s3)
                    lane += 4
                else:
                    count = rows + (lane < rem)
                    s0 = init(ctx, c, lane, count)
                    for t in range(count):
                        r = count - 1 - t if backwards else t
                        s0 = step(ctx, s0, start + r * lanes + lane)
                    err = finish(ctx, c, lane, count, s0)
                    lane += 1
                if err:
                    return err
        return 0

    return _run_lanes


@njit(cache=True, nogil=True)
def _lane_begin(ends, c, lanes, lane):
    j = c * lanes + lane
    return ends[j - 1] if j > 0 else 0


@njit(cache=True, nogil=True)
def _append(words, first, stop, word_bytes, out, cursor):
    """Write words[first:stop] little-endian into out at cursor[0], advancing it."""
    pos = cursor[0]
    for t in range(first, stop):
        w = np.int64(words[t])
        for b in range(word_bytes):
            out[pos + b] = (w >> (8 * b)) & 0xFF
        pos += word_bytes
    cursor[0] = pos


@dataclass
class _Plane:
    """One plane to code. ``keys`` (n,) uint8/uint16 index ``counts`` (256, 65536 or K,).
    ``alphabet`` (K,) holds the present symbols, ``width`` bytes each: the keys are the symbols
    themselves for widths 1 and 2, and positions in ``alphabet`` for wider ones."""

    keys: np.ndarray
    counts: np.ndarray
    alphabet: np.ndarray
    width: int

    @property
    def present(self) -> np.ndarray:
        return np.flatnonzero(self.counts)

    def cost_bits(self) -> float:
        return plane_cost_bits(self.counts, self.width)


def _byte_planes(u: np.ndarray) -> list[_Plane]:
    w = u.dtype.itemsize
    planes = []
    for b in range(w):
        keys = u.view(np.uint8).reshape(-1, w)[:, b]
        counts = _histogram(keys, 256)
        planes.append(_Plane(keys, counts, np.flatnonzero(counts).astype(np.uint8), 1))
    return planes


def _choose_planes(u: np.ndarray) -> tuple[int, list[_Plane]]:
    """(layout, planes) for the unsigned view ``u`` (n,), by the cost rule of the docstring."""
    w = u.dtype.itemsize
    if w <= 2:
        counts = _histogram(u, 256 ** w)
        whole = _Plane(u, counts, np.flatnonzero(counts).astype(u.dtype), w)
    else:
        values, inverse, counts = np.unique(u, return_inverse=True, return_counts=True)
        whole = None
        if values.size <= MAX_WHOLE_ALPHABET:
            whole = _Plane(inverse.reshape(-1).astype(np.uint16), counts, values, w)
    if w == 1:
        return WHOLE, [whole]
    planes = _byte_planes(u)
    if choose_layout(w, None if whole is None else whole.counts, [p.counts for p in planes]) == WHOLE:
        return WHOLE, [whole]
    return BYTES, planes


class _LaneCoder:
    """Shared stream, plane, chunk and lane logic; subclasses supply the table and kernels."""

    magic: bytes = b""
    _word: np.dtype  # a lane stream is made of these

    def __init__(self, lanes: int = 32, chunk: int = 1 << 18):
        if not (1 <= lanes <= 0xFFFF and lanes <= chunk <= 0x7FFFFFFF):
            raise ValueError(f"need 1 <= lanes <= 65535 and lanes <= chunk < 2**31, got lanes={lanes}, chunk={chunk}")
        self.lanes, self.chunk = int(lanes), int(chunk)

    def __repr__(self):
        return f"{type(self).__name__}(lanes={self.lanes}, chunk={self.chunk})"

    def __eq__(self, other):
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self):
        return hash((type(self).__name__, self.lanes, self.chunk))

    # -- coder-specific parts -------------------------------------------------------------
    def code_table(self, counts: np.ndarray) -> tuple[bytes, np.ndarray]:
        """(table bytes, encoder rows (K, ...)) for the present symbols' ``counts`` (K,), K >= 2."""
        raise NotImplementedError

    def read_table(self, reader: Reader, k: int):
        """Parse and validate a table of ``k`` entries; returns what the other hooks take."""
        raise NotImplementedError

    def decoder_tables(self, table, out_keys: np.ndarray) -> tuple:
        """Kernel lookup tables; decoded symbols are ``out_keys`` (K,) entries."""
        raise NotImplementedError

    def lane_sizes_ok(self, sizes: np.ndarray, symbols: np.ndarray, table) -> bool:
        raise NotImplementedError

    _encode_kernel = None  # (keys, enc, n, chunk, lanes, out, ends) -> data length
    _decode_kernel = None  # (data, ends, n, chunk, lanes, *tables, out) -> error code

    # -- encoding -------------------------------------------------------------------------
    def encode(self, symbols) -> bytes:
        """Integer array (any shape) -> self-describing bytes."""
        x = np.asarray(symbols)
        dtype = x.dtype.newbyteorder("=")
        if dtype not in DTYPES:
            raise ValueError(f"{type(self).__name__} codes integer arrays ({', '.join(map(str, DTYPES))}), got {x.dtype}")
        flat = np.ascontiguousarray(x.reshape(-1), dtype=dtype)
        u = flat.view(f"u{dtype.itemsize}")
        n = u.size
        if n == 0:
            return self.header(dtype, WHOLE, 0, self.lanes)
        layout, planes = _choose_planes(u)
        lanes = stream_lanes(n, self.lanes)
        parts = [self.header(dtype, layout, n, lanes)]
        size = len(parts[0])
        for plane in planes:
            for part in self._encode_plane(plane, n, lanes, size):
                parts.append(part)
                size += len(part)
        return b"".join(parts)

    def header(self, dtype: np.dtype, layout: int, n: int, lanes: int) -> bytes:
        """The stream header of an n-symbol stream coded with this coder's chunk."""
        return StreamHeader(self.magic, np.dtype(dtype), layout, lanes, self.chunk, n).pack()

    def _encode_plane(self, plane: _Plane, n: int, lanes: int, offset: int) -> list[bytes]:
        present = plane.present
        head = struct.pack("<I", present.size) + plane.alphabet.astype(f"<u{plane.width}").tobytes()
        if present.size == 1:
            return [head]
        table, rows = self.code_table(plane.counts[present])
        enc = np.zeros((plane.counts.size,) + rows.shape[1:], rows.dtype)
        enc[present] = rows
        n_lanes = -(-n // self.chunk) * lanes
        data = np.empty(2 * n + 4 * n_lanes, np.uint8)  # >= 2 bytes per symbol + 4 per lane
        ends = np.empty(n_lanes, np.int64)
        used = type(self)._encode_kernel(plane.keys, enc, n, self.chunk, lanes, data, ends)
        if used > 0xFFFFFFFF:
            raise ValueError("a plane is over 4 GiB; encode the array in parts")
        pad = bytes(pad_to_4(offset + len(head) + len(table)))
        return [head, table, pad, ends.astype("<u4").tobytes(), data[:used].tobytes()]

    # -- decoding -------------------------------------------------------------------------
    def decode(self, buf, max_bytes: int | None = None) -> np.ndarray:
        """Bytes from :meth:`encode` -> the 1-D array; CorruptStreamError if malformed or if it
        claims more than ``max_bytes`` of output."""
        try:
            data = np.frombuffer(memoryview(buf).cast("B"), np.uint8)
        except (TypeError, ValueError):
            raise CorruptStreamError(f"expected a bytes-like stream, got {type(buf).__name__}") from None
        reader = Reader(data)
        h = StreamHeader.read(reader, self.magic, type(self).__name__)
        dtype, layout, lanes, chunk, n = h.dtype, h.layout, h.lanes, h.chunk, h.n
        w = dtype.itemsize
        if max_bytes is not None and n * w > max_bytes:
            raise CorruptStreamError(f"stream claims {n} symbols of {dtype}, at most {max_bytes} bytes fit the frame")
        if n == 0:
            if reader.pos != data.size:
                raise CorruptStreamError("trailing bytes after an empty stream")
            return np.empty(0, dtype)
        widths = [w] if layout == WHOLE else [1] * w
        planes = [self.read_plane(reader, width, n, chunk, lanes) for width in widths]
        if reader.pos != data.size:
            raise CorruptStreamError(f"{data.size - reader.pos} trailing bytes")
        try:
            out = np.empty(n, dtype)
        except (MemoryError, ValueError):
            raise CorruptStreamError(f"stream claims {n} symbols") from None
        u = out.view(f"u{w}")
        targets = [u] if layout == WHOLE else [u.view(np.uint8).reshape(n, w)[:, b] for b in range(w)]
        for plane, target in zip(planes, targets):
            self._decode_plane(*plane, n, chunk, lanes, target)
        return out

    def read_plane(self, reader: Reader, width: int, n: int, chunk: int, lanes: int):
        (k,) = reader.unpack(struct.Struct("<I"))
        alphabet = reader.array(f"<u{width}", k).astype(f"u{width}")
        if k < 1 or np.any(alphabet[1:] <= alphabet[:-1]):
            raise CorruptStreamError("plane alphabet is empty or not strictly ascending")
        if k == 1:
            return alphabet, None, None, None, 0
        if width > 2 and k > MAX_WHOLE_ALPHABET:
            raise CorruptStreamError(f"alphabet of {k} wide symbols")
        table = self.read_table(reader, k)
        if np.any(reader.take(pad_to_4(reader.pos))):
            raise CorruptStreamError("non-zero padding")
        n_lanes = -(-n // chunk) * lanes
        if 4 * n_lanes > reader.data.size - reader.pos:
            raise CorruptStreamError("lane offset table truncated")
        ends = reader.array("<u4", n_lanes).astype(np.int64)
        sizes = np.diff(ends, prepend=0)
        lane_counts = lane_symbol_counts(n, chunk, lanes)
        if np.any(sizes < 0) or not self.lane_sizes_ok(sizes, lane_counts, table):
            raise CorruptStreamError("lane offset table corrupt")
        return alphabet, table, ends, reader.take(int(ends[-1])), int(lane_counts.max())

    def _decode_plane(self, alphabet, table, ends, body, lane_max, n, chunk, lanes, target):
        if table is None:
            target[:] = alphabet[0]
            return
        dense = alphabet.dtype.itemsize > 2  # wide alphabets decode to indices first
        out_keys = np.arange(alphabet.size, dtype=np.uint16) if dense else alphabet
        out = np.empty(n, np.uint16) if dense else target
        # zero words after the data let a lane of corrupt data read past its end without bounds
        # checks: a lane never advances more than 16 bits a symbol; finish() rejects such lanes
        words = np.zeros(body.size // self._word.itemsize + lane_max + 2, self._word)
        words.view(np.uint8)[:body.size] = body
        err = type(self)._decode_kernel(words, ends, n, chunk, lanes, *self.decoder_tables(table, out_keys), out)
        if err:
            raise CorruptStreamError(f"{type(self).__name__} lane data corrupt (code {err})")
        if dense:
            target[:] = alphabet[out]


# -- rANS ----------------------------------------------------------------------------------
def _normalise_freqs(counts: np.ndarray, scale_bits: int) -> np.ndarray:
    """Frequencies (K,) >= 1 summing to 2**scale_bits, proportional to ``counts`` (K,)."""
    total = 1 << scale_bits
    counts = counts.astype(np.float64)
    fixed = np.zeros(counts.size, bool)  # symbols pinned at frequency 1
    while True:
        share = counts * ((total - fixed.sum()) / counts[~fixed].sum())
        newly = ~fixed & (share < 1.0)
        if not newly.any():
            break
        fixed |= newly
    freqs = np.where(fixed, 1, np.floor(share)).astype(np.int64)
    leftover = total - int(freqs.sum())
    remainder = np.where(fixed, -1.0, share - np.floor(share))
    freqs[np.argsort(-remainder, kind="stable")[:leftover]] += 1
    return freqs


# A lane's encoder state is (x, next free word below); words of lane l fill
# scratch[l*(cap+1) + 1 : (l+1)*(cap+1)] downwards, slot l*(cap+1) absorbs the branchless store.
@njit(cache=True, nogil=True)
def _rans_enc_init(ctx, c, lane, count):
    return np.int64(_RANS_LOW), np.int64((lane + 1) * (ctx[3] + 1))


@njit(cache=True, nogil=True)
def _rans_enc_step(ctx, st, i):
    keys, enc, scratch = ctx[0], ctx[1], ctx[2]
    x, top = st
    s = keys[np.uint64(i)]
    flush = np.int64(x >= enc[s, 0])
    scratch[np.uint64(top - 1)] = x & 0xFFFF
    top -= flush
    x >>= flush << 4
    q = (x * enc[s, 1]) >> enc[s, 2]
    return x + enc[s, 3] + q * enc[s, 4], top


@njit(cache=True, nogil=True)
def _rans_enc_finish(ctx, c, lane, count, st):
    scratch, cap, out, ends, cursor, lanes = ctx[2], ctx[3], ctx[4], ctx[5], ctx[6], ctx[7]
    x, top = st
    if count > 0:
        state = np.empty(1, np.uint32)
        state[0] = x
        _append(state, 0, 1, 4, out, cursor)
        _append(scratch, top, (lane + 1) * (cap + 1), 2, out, cursor)
    ends[c * lanes + lane] = cursor[0]
    return 0


_rans_enc_lanes = _lane_driver(_rans_enc_init, _rans_enc_step, _rans_enc_finish)


@njit(cache=True, nogil=True)
def _rans_encode_kernel(keys, enc, n, chunk, lanes, out, ends):
    """enc (keys, 5) = (x_max, rcp, shift, bias, cmpl) rows; lanes -> out, ends (C*L,); -> bytes used."""
    cap = chunk // lanes + 1
    ctx = (keys, enc, np.empty(lanes * (cap + 1), np.uint16), cap, out, ends, np.zeros(1, np.int64), lanes)
    _rans_enc_lanes(ctx, n, chunk, lanes, True)
    return ctx[6][0]


@njit(cache=True, nogil=True)
def _rans_dec_init(ctx, c, lane, count):
    words, ends, lanes = ctx[0], ctx[1], ctx[7]
    p = _lane_begin(ends, c, lanes, lane) >> 1
    x = np.int64(_RANS_LOW)
    if count > 0:  # the offset table check guarantees the two state words
        x = np.int64(words[p]) | (np.int64(words[p + 1]) << 16)
        p += 2
    return x, p


@njit(cache=True, nogil=True)
def _rans_dec_step(ctx, st, i):
    words, scale_bits, lut_sym, lut_fb, out = ctx[0], ctx[2], ctx[3], ctx[4], ctx[5]
    x, p = st
    slot = x & ((1 << scale_bits) - 1)
    out[np.uint64(i)] = lut_sym[slot]
    fb = lut_fb[slot]
    x = (fb & 0xFFFF) * (x >> scale_bits) + (fb >> 16)
    refill = np.int64(x < _RANS_LOW)
    word = np.int64(words[np.uint64(p)])
    return (x << (refill << 4)) | (word & -refill), p + refill


@njit(cache=True, nogil=True)
def _rans_dec_finish(ctx, c, lane, count, st):
    x, p = st
    if count > 0 and (x != _RANS_LOW or 2 * p != ctx[1][c * ctx[7] + lane]):
        return _LANE_BAD_END
    return 0


_rans_dec_lanes = _lane_driver(_rans_dec_init, _rans_dec_step, _rans_dec_finish)


@njit(cache=True, nogil=True)
def _rans_decode_kernel(data, ends, n, chunk, lanes, scale_bits, lut_sym, lut_fb, out):
    """data: u16 words; lut_sym/lut_fb (2**M,): slot -> symbol, freq | (slot - cum) << 16.
    Returns 0 or an error."""
    ctx = (data, ends, scale_bits, lut_sym, lut_fb, out, 0, lanes)
    return _rans_dec_lanes(ctx, n, chunk, lanes, False)


class Rans(_LaneCoder):
    """Lane-interleaved rANS (32-bit state, 16-bit words); ``chunk`` symbols split over ``lanes``."""

    magic = b"RA"
    _word = np.dtype("<u2")
    _encode_kernel = _rans_encode_kernel
    _decode_kernel = _rans_decode_kernel

    def code_table(self, counts):
        scale_bits = min(15, max(12, math.ceil(math.log2(counts.size)) + 3))
        freq = _normalise_freqs(counts, scale_bits)
        cum = np.cumsum(freq) - freq
        shift = np.ceil(np.log2(freq)).astype(np.int64)  # smallest s with freq <= 2**s
        one = freq == 1
        rcp = np.where(one, (1 << 32) - 1, ((1 << (shift + 31)) + freq - 1) // freq)
        rows = np.stack([freq << (31 - scale_bits), rcp, np.where(one, 32, 31 + shift),
                         np.where(one, cum + (1 << scale_bits) - 1, cum), (1 << scale_bits) - freq], axis=1)
        return struct.pack("<B", scale_bits) + freq.astype("<u2").tobytes(), rows.astype(np.int64)

    def read_table(self, reader, k):
        (scale_bits,) = reader.unpack(struct.Struct("<B"))
        freq = reader.array("<u2", k).astype(np.int64)
        if not 1 <= scale_bits <= 15 or freq.min() < 1 or freq.sum() != 1 << scale_bits:
            raise CorruptStreamError("rANS frequency table corrupt")
        return scale_bits, freq

    def decoder_tables(self, table, out_keys):
        scale_bits, freq = table
        cum = np.cumsum(freq) - freq
        lut_sym = np.repeat(out_keys.astype(np.uint16), freq)
        lut_fb = (np.repeat(freq, freq) | ((np.arange(1 << scale_bits) - np.repeat(cum, freq)) << 16)).astype(np.int32)
        return scale_bits, lut_sym, lut_fb

    def lane_sizes_ok(self, sizes, symbols, table):
        empty = symbols == 0
        fits = (sizes >= 4) & (sizes <= 4 + 2 * symbols) & (sizes % 2 == 0) & (symbols <= (8 * sizes + 16) << 15)
        return bool(np.all(np.where(empty, sizes == 0, fits)))


# -- Huffman ---------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _limited_code_lengths(weights, limit):
    """Optimal code lengths (K,) of ``weights`` (K,) ascending, K >= 2, none over ``limit``
    (2**limit >= K): package-merge; a level's leaves used are a prefix of the weights."""
    k = weights.size
    is_leaf = np.zeros((limit, 2 * k), np.bool_)
    prev = np.empty(2 * k, np.int64)
    cur = np.empty(2 * k, np.int64)
    prev_len = 0
    for level in range(limit):  # level 0 is the deepest (codes of length `limit`)
        packages = prev_len // 2
        i = j = size = 0
        while i < k or j < packages:
            if j >= packages or (i < k and weights[i] <= prev[2 * j] + prev[2 * j + 1]):
                cur[size] = weights[i]
                is_leaf[level, size] = True
                i += 1
            else:
                cur[size] = prev[2 * j] + prev[2 * j + 1]
                j += 1
            size += 1
        prev, cur = cur, prev
        prev_len = size
    lengths = np.zeros(k, np.int64)
    need = 2 * k - 2
    for level in range(limit - 1, -1, -1):
        leaves = 0
        for t in range(need):
            if is_leaf[level, t]:
                leaves += 1
        lengths[:leaves] += 1
        need = 2 * (need - leaves)
        if need == 0:
            break
    return lengths


@njit(cache=True, nogil=True)
def _canonical_codes(lengths):
    """Bit-reversed (LSB-first) canonical codes (K,) for code ``lengths`` (K,) in alphabet order."""
    count = np.zeros(17, np.int64)
    for length in lengths:
        count[length] += 1
    next_code = np.zeros(17, np.int64)
    for length in range(2, 17):
        next_code[length] = (next_code[length - 1] + count[length - 1]) << 1
    codes = np.empty(lengths.size, np.int64)
    for s in range(lengths.size):
        length = lengths[s]
        code = next_code[length]
        next_code[length] += 1
        reversed_code = 0
        for b in range(length):
            reversed_code |= ((code >> b) & 1) << (length - 1 - b)
        codes[s] = reversed_code
    return codes


# A lane's encoder state is (bit buffer, bits in it, next word); words of lane l go to
# scratch[l*cap : (l+1)*cap] (every step stores the low word, a full one is kept).
@njit(cache=True, nogil=True)
def _huff_enc_init(ctx, c, lane, count):
    return np.int64(0), np.int64(0), np.int64(lane * ctx[3])


@njit(cache=True, nogil=True)
def _huff_enc_step(ctx, st, i):
    keys, enc, scratch = ctx[0], ctx[1], ctx[2]
    bits, k, p = st
    e = enc[keys[np.uint64(i)]]
    bits |= (e & 0xFFFF) << k
    k += e >> 16
    scratch[np.uint64(p)] = bits & 0xFFFFFFFF
    full = k >> 5
    return bits >> (full << 5), k & 31, p + full


@njit(cache=True, nogil=True)
def _huff_enc_finish(ctx, c, lane, count, st):
    scratch, cap, out, ends, cursor, lanes = ctx[2], ctx[3], ctx[4], ctx[5], ctx[6], ctx[7]
    bits, k, p = st
    if k > 0:
        scratch[p] = bits
        p += 1
    _append(scratch, lane * cap, p, 4, out, cursor)
    ends[c * lanes + lane] = cursor[0]
    return 0


_huff_enc_lanes = _lane_driver(_huff_enc_init, _huff_enc_step, _huff_enc_finish)


@njit(cache=True, nogil=True)
def _huffman_encode_kernel(keys, enc, n, chunk, lanes, out, ends):
    """enc (keys,) = reversed code | length << 16; lanes -> out, ends (C*L,); -> bytes used."""
    cap = (chunk // lanes + 1) // 2 + 1  # u32 words: at most 16 bits a symbol
    ctx = (keys, enc, np.empty(lanes * cap, np.uint32), cap, out, ends, np.zeros(1, np.int64), lanes)
    _huff_enc_lanes(ctx, n, chunk, lanes, False)
    return ctx[6][0]


# A lane's decoder state is its bit position in the plane's data.
@njit(cache=True, nogil=True)
def _huff_dec_init(ctx, c, lane, count):
    return 8 * _lane_begin(ctx[1], c, ctx[7], lane)


@njit(cache=True, nogil=True)
def _huff_dec_step(ctx, pos, i):
    words, max_len, lut, out = ctx[0], ctx[2], ctx[3], ctx[4]
    w = np.uint64(pos >> 5)
    window = (np.int64(words[w]) | (np.int64(words[w + np.uint64(1)]) << 32)) >> (pos & 31)
    e = lut[window & ((1 << max_len) - 1)]
    out[np.uint64(i)] = e & 0xFFFF
    return pos + (e >> 16)


@njit(cache=True, nogil=True)
def _huff_dec_finish(ctx, c, lane, count, pos):
    ends, lanes = ctx[1], ctx[7]
    begin, end = _lane_begin(ends, c, lanes, lane), ends[c * lanes + lane]
    if count > 0 and 4 * ((pos - 8 * begin + 31) // 32) != end - begin:
        return _LANE_BAD_END
    return 0


_huff_dec_lanes = _lane_driver(_huff_dec_init, _huff_dec_step, _huff_dec_finish)


@njit(cache=True, nogil=True)
def _huffman_decode_kernel(data, ends, n, chunk, lanes, max_len, lut, out):
    """data: u32 words; lut (2**max_len,): low max_len bits -> symbol | length << 16.
    Returns 0 or an error."""
    ctx = (data, ends, max_len, lut, out, 0, 0, lanes)
    return _huff_dec_lanes(ctx, n, chunk, lanes, False)


@njit(cache=True, nogil=True)
def _huffman_lut(codes, lengths, out_keys, max_len):
    lut = np.empty(1 << max_len, np.int32)
    for s in range(codes.size):
        entry = np.int32(out_keys[s]) | np.int32(lengths[s] << 16)
        for idx in range(codes[s], 1 << max_len, 1 << lengths[s]):
            lut[idx] = entry
    return lut


class Huffman(_LaneCoder):
    """Lane-interleaved canonical Huffman (codes <= 16 bits, table decoding)."""

    magic = b"HF"
    _word = np.dtype("<u4")
    _encode_kernel = _huffman_encode_kernel
    _decode_kernel = _huffman_decode_kernel

    def code_table(self, counts):
        limit = min(16, max(12, math.ceil(math.log2(counts.size)) + 1))
        order = np.argsort(counts, kind="stable")
        lengths = np.empty(counts.size, np.int64)
        lengths[order] = _limited_code_lengths(counts[order].astype(np.int64), limit)
        rows = _canonical_codes(lengths) | (lengths << 16)
        return struct.pack("<B", lengths.max()) + lengths.astype(np.uint8).tobytes(), rows

    def read_table(self, reader, k):
        (max_len,) = reader.unpack(struct.Struct("<B"))
        lengths = reader.array("u1", k).astype(np.int64)
        if not 1 <= max_len <= 16 or lengths.min() < 1 or lengths.max() != max_len or \
                int((1 << (max_len - lengths)).sum()) != 1 << max_len:
            raise CorruptStreamError("Huffman code-length table corrupt")
        return max_len, lengths

    def decoder_tables(self, table, out_keys):
        max_len, lengths = table
        return max_len, _huffman_lut(_canonical_codes(lengths), lengths, out_keys.astype(np.int64), max_len)

    def lane_sizes_ok(self, sizes, symbols, table):
        max_len = table[0]
        empty = symbols == 0
        fits = (sizes % 4 == 0) & (sizes >= 4 * -(-symbols // 32)) & (sizes <= 4 * -(-(symbols * max_len) // 32))
        return bool(np.all(np.where(empty, sizes == 0, fits)))
