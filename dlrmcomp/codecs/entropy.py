"""Order-0 entropy coders for integer streams: lane-interleaved Huffman and rANS stages.

``Huffman(lanes, chunk)`` and ``Rans(lanes, chunk)`` turn any integer array (int8 ... uint64,
any shape, read flattened) into bytes that say their dtype and length, and back into the 1-D
array. The format gives every (chunk, lane) pair its own byte range, so a GPU can encode or
decode with one thread per lane. The CPU kernels are single-threaded, GIL-free numba loops that
advance four (or two) lanes together, so that their independent dependency chains overlap. Each
lane costs 4-8 bytes of offset, state and padding. The default (32 lanes, 2**18-symbol chunks, so
8192 symbols a lane) keeps that overhead near 0.2% on 3-bit codes.

Streams of 1- and 2-byte symbols are coded in one compiled call each (:func:`encode_stream_into`,
:func:`decode_stream`: histogram, layout, tables, lanes and every reader check), which the
recipes of :mod:`.pipeline` also call from their own kernels; the numpy path (plane by plane)
codes wider symbols, decides layout ties and words the errors. Both write the same bytes.

The stream format (header, planes, lanes, the layout rule) is :mod:`.stream`'s; this module holds
the two coders: their tables, their lane bodies and the numba kernels that run them.
"""
from __future__ import annotations

import math
import struct
import threading
import sys
from dataclasses import dataclass

from ._jit import njit
import numpy as np

from ..errors import CorruptStreamError
from .stream import (BYTES, DTYPES, HEADER_SIZE, MAX_WHOLE_ALPHABET, MIN_LANE_SYMBOLS, WHOLE, Reader, StreamHeader,
                     choose_layout, entropy_of_counts, lane_symbol_counts, pad_to_4, plane_cost_bits, stream_lanes)

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
_LITTLE = sys.byteorder == "little"


@njit(cache=True, nogil=True)
def _histogram(keys, size):
    """Counts (size,) of the values of ``keys`` (n,), which are < size."""
    n = keys.size
    if n >= 1 << 31:  # an int32 sub-histogram could overflow
        return _histogram_wide(keys, size)
    parts = np.zeros((8, size), np.int32)  # 8 sub-histograms break store-to-load chains (skewed codes)
    head = n - n % 8
    for i in range(0, head, 8):
        parts[0, keys[i]] += 1
        parts[1, keys[i + 1]] += 1
        parts[2, keys[i + 2]] += 1
        parts[3, keys[i + 3]] += 1
        parts[4, keys[i + 4]] += 1
        parts[5, keys[i + 5]] += 1
        parts[6, keys[i + 6]] += 1
        parts[7, keys[i + 7]] += 1
    for i in range(head, n):
        parts[0, keys[i]] += 1
    out = np.zeros(size, np.int64)
    for p in range(8):
        for s in range(size):
            out[s] += parts[p, s]
    return out


@njit(cache=True, nogil=True)
def _histogram_wide(keys, size):
    """_histogram with int64 sub-histograms (2**31 keys or more)."""
    parts = np.zeros((4, size), np.int64)
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
        order, eight, four (or two) lanes interleaved so their dependency chains overlap; ``init(ctx, c, lane,
        count) -> state`` and ``finish(ctx, c, lane, count, state) -> error`` bracket each lane.
        ``backwards`` visits each lane's symbols last to first. Returns the first non-zero error."""
        for c in range((n + chunk - 1) // chunk):
            start = c * chunk
            m = min(chunk, n - start)
            rows, rem = m // lanes, m % lanes
            lane = 0
            while lane < lanes:
                if lane + 8 <= lanes:  # eight chains: Huffman lanes decode in 0.7x the time of four
                    s0 = init(ctx, c, lane, rows + (lane < rem))
                    s1 = init(ctx, c, lane + 1, rows + (lane + 1 < rem))
                    s2 = init(ctx, c, lane + 2, rows + (lane + 2 < rem))
                    s3 = init(ctx, c, lane + 3, rows + (lane + 3 < rem))
                    s4 = init(ctx, c, lane + 4, rows + (lane + 4 < rem))
                    s5 = init(ctx, c, lane + 5, rows + (lane + 5 < rem))
                    s6 = init(ctx, c, lane + 6, rows + (lane + 6 < rem))
                    s7 = init(ctx, c, lane + 7, rows + (lane + 7 < rem))
                    for t in range(rows + 1):
                        r = rows - t if backwards else t
                        i = start + r * lanes + lane
                        if r < rows:
                            s0, s1 = step(ctx, s0, i), step(ctx, s1, i + 1)
                            s2, s3 = step(ctx, s2, i + 2), step(ctx, s3, i + 3)
                            s4, s5 = step(ctx, s4, i + 4), step(ctx, s5, i + 5)
                            s6, s7 = step(ctx, s6, i + 6), step(ctx, s7, i + 7)
                        elif lane < rem:  # the lanes of the last row are a prefix
                            s0 = step(ctx, s0, i)
                            if lane + 1 < rem:
                                s1 = step(ctx, s1, i + 1)
                            if lane + 2 < rem:
                                s2 = step(ctx, s2, i + 2)
                            if lane + 3 < rem:
                                s3 = step(ctx, s3, i + 3)
                            if lane + 4 < rem:
                                s4 = step(ctx, s4, i + 4)
                            if lane + 5 < rem:
                                s5 = step(ctx, s5, i + 5)
                            if lane + 6 < rem:
                                s6 = step(ctx, s6, i + 6)
                            if lane + 7 < rem:
                                s7 = step(ctx, s7, i + 7)
                    err = finish(ctx, c, lane, rows + (lane < rem), s0)
                    err = err or finish(ctx, c, lane + 1, rows + (lane + 1 < rem), s1)
                    err = err or finish(ctx, c, lane + 2, rows + (lane + 2 < rem), s2)
                    err = err or finish(ctx, c, lane + 3, rows + (lane + 3 < rem), s3)
                    err = err or finish(ctx, c, lane + 4, rows + (lane + 4 < rem), s4)
                    err = err or finish(ctx, c, lane + 5, rows + (lane + 5 < rem), s5)
                    err = err or finish(ctx, c, lane + 6, rows + (lane + 6 < rem), s6)
                    err = err or finish(ctx, c, lane + 7, rows + (lane + 7 < rem), s7)
                    lane += 8
                elif lane + 4 <= lanes:
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
                elif lane + 2 <= lanes:  # short streams have 2 or 3 lanes: still two chains at once
                    s0 = init(ctx, c, lane, rows + (lane < rem))
                    s1 = init(ctx, c, lane + 1, rows + (lane + 1 < rem))
                    for t in range(rows + 1):
                        r = rows - t if backwards else t
                        i = start + r * lanes + lane
                        if r < rows:
                            s0 = step(ctx, s0, i)
                            s1 = step(ctx, s1, i + 1)
                        else:
                            if lane < rem:
                                s0 = step(ctx, s0, i)
                            if lane + 1 < rem:
                                s1 = step(ctx, s1, i + 1)
                    err = finish(ctx, c, lane, rows + (lane < rem), s0)
                    err = err or finish(ctx, c, lane + 1, rows + (lane + 1 < rem), s1)
                    lane += 2
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
        if dtype.itemsize <= 2:
            out = np.empty(stream_bound(n, dtype.itemsize, self.lanes, self.chunk), np.uint8)
            end = encode_stream_into(u, DTYPES.index(dtype), self._coder, self.lanes, self.chunk, out, 0)
            if end >= 0:
                return out[:end].tobytes()
        return self._encode_reference(u, dtype)

    def _encode_reference(self, u: np.ndarray, dtype: np.dtype) -> bytes:
        """The numpy encoder: any width (the kernel's layout ties and wide symbols come here); the
        kernel path writes the same bytes."""
        n = u.size
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
        out = decode_stream(data, self._coder, max_bytes)
        return out if out is not None else self._decode_reference(data, max_bytes)

    def _decode_reference(self, data: np.ndarray, max_bytes: int | None) -> np.ndarray:
        """The numpy decoder, with a message for every rule a stream breaks (the kernel path, which
        returns the same arrays, comes here for wide symbols and for the message of an error)."""
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
    cap = min(chunk, n) // lanes + 1  # most symbols (and words) of a lane
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
    slot = np.uint64(x & ((1 << scale_bits) - 1))  # unsigned: no negative-index fix-up
    out[np.uint64(i)] = lut_sym[slot]
    fb = np.int64(lut_fb[slot])
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
    _coder = 0  # _RANS
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
    first, at = lane * cap, cursor[0]
    if _LITTLE:  # the words' own bytes are little-endian: copied at once
        out[at:at + 4 * (p - first)] = scratch[first:p].view(np.uint8)
        cursor[0] = at + 4 * (p - first)
    else:
        _append(scratch, first, p, 4, out, cursor)
    ends[c * lanes + lane] = cursor[0]
    return 0


_huff_enc_lanes = _lane_driver(_huff_enc_init, _huff_enc_step, _huff_enc_finish)


@njit(cache=True, nogil=True)
def _huffman_encode_kernel(keys, enc, n, chunk, lanes, out, ends):
    """enc (keys,) = reversed code | length << 16; lanes -> out, ends (C*L,); -> bytes used."""
    cap = (min(chunk, n) // lanes + 1) // 2 + 1  # u32 words: at most 16 bits a symbol
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
    _coder = 1  # _HUFFMAN
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


# -- whole streams in one kernel call (1- and 2-byte symbols) -----------------------------------
# ``encode_stream_into`` / ``decode_stream`` do in compiled code what the classes above do plane by
# plane in numpy: histogram, layout, tables, lanes, and on decoding every check of the reader. They
# write and accept exactly the same bytes (tests/test_pipeline_kernels.py compares them with the numpy path on
# random streams); where they cannot decide alone (a layout whose two costs tie within rounding, wide
# symbols) or a stream is corrupt, the numpy path runs instead, and gives the error its message.
_RANS, _HUFFMAN = 0, 1
_ITEMSIZE = np.array([d.itemsize for d in DTYPES], np.int64)
_MAGIC = np.array([[ord("R"), ord("A")], [ord("H"), ord("F")]], np.int64)


def _crc_table() -> np.ndarray:
    table = np.empty(256, np.int64)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _crc_table()


@njit(cache=True, nogil=True)
def _crc32(buf, start, stop):
    """zlib.crc32 of buf[start:stop]."""
    crc = np.int64(0xFFFFFFFF)
    for i in range(start, stop):
        crc = _CRC_TABLE[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@njit(cache=True, nogil=True)
def _put(out, pos, value, nbytes):
    """value little-endian into out[pos:pos + nbytes]; returns pos + nbytes."""
    v = np.int64(value)
    for b in range(nbytes):
        out[pos + b] = (v >> (8 * b)) & 0xFF
    return pos + nbytes


@njit(cache=True, nogil=True)
def _get(data, pos, nbytes):
    """Unsigned little-endian integer at data[pos:pos + nbytes] (nbytes <= 8), as uint64."""
    v = np.uint64(0)
    for b in range(nbytes):
        v |= np.uint64(data[pos + b]) << np.uint64(8 * b)
    return v


@njit(cache=True, nogil=True)
def _ceil_log2(k):
    """Smallest s with 2**s >= k."""
    s = 0
    while (np.int64(1) << s) < k:
        s += 1
    return s


@njit(cache=True, nogil=True)
def _stream_lanes(n, lanes):
    """stream.stream_lanes."""
    want = max(1, (n + MIN_LANE_SYMBOLS - 1) // MIN_LANE_SYMBOLS)
    p = 1
    while p < want:
        p <<= 1
    return min(lanes, p)


@njit(cache=True, nogil=True)
def _lane_count(n, chunk, lanes, j):
    """Symbols of lane j (chunk-major) of an n-symbol stream (stream.lane_symbol_counts[j])."""
    c, lane = j // lanes, j % lanes
    m = min(chunk, n - c * chunk)
    return m // lanes + (lane < m % lanes)


@njit(cache=True, nogil=True)
def _entropy_of(counts, present):
    """stream.entropy_of_counts of counts[present] (up to rounding: callers keep a margin)."""
    total = 0.0
    for s in present:
        total += counts[s]
    h = 0.0
    for s in present:
        c = np.float64(counts[s])
        h -= c * np.log2(c / total)
    return h


@njit(cache=True, nogil=True)
def _rans_freqs(counts, scale_bits):
    """_normalise_freqs, the same float operations in the same order."""
    k = counts.size
    total = np.int64(1) << scale_bits
    fixed = np.zeros(k, np.bool_)
    share = np.zeros(k, np.float64)
    while True:
        n_fixed, rest = 0, np.int64(0)
        for j in range(k):
            if fixed[j]:
                n_fixed += 1
            else:
                rest += counts[j]
        if rest == 0:  # every symbol pinned (numpy divides by zero here and pins nothing new)
            break
        scale = np.float64(total - n_fixed) / np.float64(rest)
        newly = False
        for j in range(k):
            share[j] = np.float64(counts[j]) * scale
        for j in range(k):
            if not fixed[j] and share[j] < 1.0:
                fixed[j] = True
                newly = True
        if not newly:
            break
    freqs = np.empty(k, np.int64)
    neg_remainder = np.empty(k, np.float64)
    for j in range(k):
        if fixed[j]:
            freqs[j] = 1
            neg_remainder[j] = 1.0
        else:
            f = np.floor(share[j])
            freqs[j] = np.int64(f)
            neg_remainder[j] = -(share[j] - f)
    leftover = total - freqs.sum()
    order = np.argsort(neg_remainder, kind="mergesort")  # stable, as numpy's
    take = leftover if leftover >= 0 else max(k + leftover, 0)  # numpy's order[:leftover]
    for t in range(take):
        freqs[order[t]] += 1
    return freqs


@njit(cache=True, nogil=True)
def _rans_table(counts, present, out, pos, enc):
    """Rans.code_table for counts[present]: writes the table at out[pos:], fills enc[present];
    returns the end."""
    k = present.size
    scale_bits = min(15, max(12, _ceil_log2(k) + 3))
    cnt = np.empty(k, np.int64)
    for j in range(k):
        cnt[j] = counts[present[j]]
    freqs = _rans_freqs(cnt, scale_bits)
    out[pos] = scale_bits
    pos += 1
    cum = np.int64(0)
    for j in range(k):
        f = freqs[j]
        pos = _put(out, pos, f, 2)
        s = present[j]
        shift = _ceil_log2(f)
        if f == 1:
            enc[s, 1], enc[s, 2], enc[s, 3] = (np.int64(1) << 32) - 1, 32, cum + (np.int64(1) << scale_bits) - 1
        else:
            enc[s, 1] = ((np.int64(1) << (shift + 31)) + f - 1) // f
            enc[s, 2], enc[s, 3] = 31 + shift, cum
        enc[s, 0] = f << (31 - scale_bits)
        enc[s, 4] = (np.int64(1) << scale_bits) - f
        cum += f
    return pos


@njit(cache=True, nogil=True)
def _huffman_table(counts, present, out, pos, enc):
    """Huffman.code_table for counts[present]: writes the table, fills enc[present]; returns the end."""
    k = present.size
    cnt = np.empty(k, np.int64)
    for j in range(k):
        cnt[j] = counts[present[j]]
    limit = min(16, max(12, _ceil_log2(k) + 1))
    order = np.argsort(cnt, kind="mergesort")
    lengths = np.empty(k, np.int64)
    lengths[order] = _limited_code_lengths(cnt[order], limit)
    codes = _canonical_codes(lengths)
    out[pos] = lengths.max()
    pos += 1
    for j in range(k):
        out[pos + j] = lengths[j]
        enc[present[j]] = codes[j] | (lengths[j] << 16)
    return pos + k


@njit(cache=True, nogil=True)
def _encode_plane(keys, counts, present, width, coder, n, chunk, lanes, out, pos, stream_start, enc, henc):
    """One plane (keys index counts; present: the sorted symbols) at out[pos:]; returns the end, or
    -1 when a plane is over 4 GiB."""
    k = present.size
    pos = _put(out, pos, k, 4)
    for s in present:
        pos = _put(out, pos, s, width)
    if k == 1:
        return pos
    if coder == _RANS:
        pos = _rans_table(counts, present, out, pos, enc)
    else:
        pos = _huffman_table(counts, present, out, pos, henc)
    while (pos - stream_start) % 4:
        out[pos] = 0
        pos += 1
    n_lanes = (n + chunk - 1) // chunk * lanes
    ends = np.empty(n_lanes, np.int64)
    data_start = pos + 4 * n_lanes
    if coder == _RANS:
        used = _rans_encode_kernel(keys, enc, n, chunk, lanes, out[data_start:], ends)
    else:
        used = _huffman_encode_kernel(keys, henc, n, chunk, lanes, out[data_start:], ends)
    if used > 0xFFFFFFFF:
        return -1
    for j in range(n_lanes):
        pos = _put(out, pos, ends[j], 4)
    return data_start + used


@njit(cache=True, nogil=True)
def _write_stream_header(out, pos, coder, dtype_code, layout, lanes, chunk, n):
    start = pos
    out[pos], out[pos + 1] = _MAGIC[coder, 0], _MAGIC[coder, 1]
    out[pos + 2], out[pos + 3], out[pos + 4] = 1, dtype_code, layout  # VERSION
    pos = _put(out, pos + 5, lanes, 2)
    pos = _put(out, pos, chunk, 4)
    pos = _put(out, pos, n, 8)
    return _put(out, pos, _crc32(out, start, pos), 4)


@njit(cache=True, nogil=True)
def _encode_stream(u, dtype_code, coder, lanes_cfg, chunk, out, pos, counts, enc, henc):
    """The stream of ``u`` (n,) uint8 or uint16 (the unsigned view of the symbols), n >= 1, at
    out[pos:]; returns its end, or -1 where the numpy path must code it.

    ``counts`` (65536,) int64 is all zeros and is left so; ``enc`` (65536, 5) / ``henc`` (65536,)
    int64 are scratch tables (rows of absent symbols are never read)."""
    n = u.size
    w = u.itemsize
    lanes = _stream_lanes(n, lanes_cfg)
    start = pos
    if w == 1:
        whole = _histogram(u, 256)
        present = np.flatnonzero(whole)
        pos = _write_stream_header(out, pos, coder, dtype_code, WHOLE, lanes, chunk, n)
        return _encode_plane(u, whole, present, 1, coder, n, chunk, lanes, out, pos, start, enc, henc)
    # two-byte symbols: one histogram over the present symbols only, then the layout rule
    seen = np.empty(min(n, 65536), np.int64)
    k = 0
    for i in range(n):
        s = u[i]
        if counts[s] == 0:
            seen[k] = s
            k += 1
        counts[s] += 1
    present = np.sort(seen[:k])
    planes = np.zeros((2, 256), np.int64)
    for s in present:
        planes[0, s & 0xFF] += counts[s]
        planes[1, s >> 8] += counts[s]
    lo, hi = np.flatnonzero(planes[0]), np.flatnonzero(planes[1])
    layout = BYTES
    if k <= MAX_WHOLE_ALPHABET:
        whole_cost = _entropy_of(counts, present) + 8.0 * k * 4
        bytes_cost = _entropy_of(planes[0], lo) + 8.0 * lo.size * 3 + _entropy_of(planes[1], hi) + 8.0 * hi.size * 3
        if abs(whole_cost - bytes_cost) <= 1e-9 * (whole_cost + bytes_cost) + 1e-6:
            pos = -1  # a tie within rounding: numpy's sums decide
        elif whole_cost <= bytes_cost:
            layout = WHOLE
    if pos >= 0:
        pos = _write_stream_header(out, pos, coder, dtype_code, layout, lanes, chunk, n)
        if layout == WHOLE:
            pos = _encode_plane(u, counts, present, 2, coder, n, chunk, lanes, out, pos, start, enc, henc)
        else:
            b8 = u.view(np.uint8)
            pos = _encode_plane(b8[0::2], planes[0], lo, 1, coder, n, chunk, lanes, out, pos, start, enc, henc)
            if pos >= 0:
                pos = _encode_plane(b8[1::2], planes[1], hi, 1, coder, n, chunk, lanes, out, pos, start, enc, henc)
    for s in present:
        counts[s] = 0
    return pos


class _Workspace(threading.local):
    """Per-thread scratch of the stream kernels (a zeroed 16-bit histogram and coder tables)."""

    def __init__(self):
        self.counts = np.zeros(65536, np.int64)
        self.enc = np.empty((65536, 5), np.int64)
        self.henc = np.empty(65536, np.int64)


_workspace = _Workspace()


@njit(cache=True, nogil=True)
def _stream_bound(n, width, lanes, chunk):
    n_lanes = (n + chunk - 1) // chunk * lanes
    return HEADER_SIZE + width * (800 + 8 * n_lanes + 2 * n) + 4 * min(n, 65536)


def stream_bound(n: int, width: int, lanes: int, chunk: int) -> int:
    """Bytes that always hold the stream of n symbols of ``width`` (1 or 2) bytes: header, planes
    of at most min(n, 256**width) symbols, a u32 end and at most 8 bytes of state and padding a
    lane, at most 2 bytes a symbol."""
    return int(_stream_bound(n, width, lanes, chunk))


def encode_stream_into(u: np.ndarray, dtype_code: int, coder: int, lanes: int, chunk: int, out: np.ndarray,
                       pos: int) -> int:
    """The stream of ``u`` (n >= 1 uint8/uint16 symbols) written at out[pos:] (room for
    :func:`stream_bound`); returns its end, or -1 where the caller must use the numpy encoder."""
    ws = _workspace
    return _encode_stream(u, dtype_code, coder, lanes, chunk, out, pos, ws.counts, ws.enc, ws.henc)


# -- decoding --------------------------------------------------------------------------------
_OK, _CORRUPT, _UNSUPPORTED = 0, 1, 2


@njit(cache=True, nogil=True)
def _parse_plane(data, pos, end, stream_start, width, coder, n, chunk, lanes):
    """Check one plane at data[pos:end] as ``read_plane`` does. Returns (status, end of plane, k,
    alphabet (k,), table parameter, entries (k,), ends (C*L,), body start, longest lane)."""
    none = np.zeros(0, np.int64)
    if end - pos < 4:
        return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
    k = np.int64(_get(data, pos, 4))
    pos += 4
    if k < 1 or k * width > end - pos:
        return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
    alphabet = np.empty(k, np.int64)
    for j in range(k):
        alphabet[j] = np.int64(_get(data, pos + j * width, width))
        if j > 0 and alphabet[j] <= alphabet[j - 1]:
            return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
    pos += k * width
    if k == 1:
        return _OK, pos, 1, alphabet, 0, none, none, 0, 0
    entry_bytes = 2 if coder == _RANS else 1
    if 1 + k * entry_bytes > end - pos:
        return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
    param = np.int64(data[pos])
    pos += 1
    entries = np.empty(k, np.int64)
    for j in range(k):
        entries[j] = np.int64(_get(data, pos + j * entry_bytes, entry_bytes))
    pos += k * entry_bytes
    if coder == _RANS:
        total = np.int64(0)
        for j in range(k):
            total += entries[j]
        if not 1 <= param <= 15 or entries.min() < 1 or total != np.int64(1) << param:
            return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
    else:
        if not 1 <= param <= 16 or entries.min() < 1 or entries.max() != param:
            return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
        kraft = np.int64(0)
        for j in range(k):
            kraft += np.int64(1) << (param - entries[j])
        if kraft != np.int64(1) << param:
            return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
    while (pos - stream_start) % 4:
        if pos >= end or data[pos] != 0:
            return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
        pos += 1
    n_chunks = n // chunk + (n % chunk != 0)
    if n_chunks > (end - pos) // 4 // lanes:
        return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
    n_lanes = n_chunks * lanes
    ends = np.empty(n_lanes, np.int64)
    prev, lane_max = np.int64(0), np.int64(0)
    for j in range(n_lanes):
        e = np.int64(_get(data, pos + 4 * j, 4))
        size = e - prev
        count = _lane_count(n, chunk, lanes, j)
        lane_max = max(lane_max, count)
        if count == 0:
            ok = size == 0
        elif coder == _RANS:
            ok = size >= 4 and size <= 4 + 2 * count and size % 2 == 0 and count <= (8 * size + 16) << 15
        else:
            ok = size % 4 == 0 and size >= 4 * ((count + 31) // 32) and size <= 4 * ((count * param + 31) // 32)
        if size < 0 or not ok:
            return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
        ends[j] = e
        prev = e
    pos += 4 * n_lanes
    if prev > end - pos:
        return _CORRUPT, pos, 0, none, 0, none, none, 0, 0
    return _OK, pos + prev, k, alphabet, param, entries, ends, pos, lane_max


def _plane_pair_driver(init, step, finish):
    """``_lane_driver`` for two planes of one stream decoded together (forwards): lane l of both
    planes advance side by side, two lanes at a time, so a stream of one to three lanes still runs
    four (or two) dependency chains. ctx[7] is the lane count of both."""

    @njit(cache=True, nogil=True)
    def _run_plane_pair(ca, cb, n, chunk, lanes):
        for c in range((n + chunk - 1) // chunk):
            start = c * chunk
            m = min(chunk, n - start)
            rows, rem = m // lanes, m % lanes
            lane = 0
            while lane < lanes:
                if lane + 2 <= lanes:
                    n0, n1 = rows + (lane < rem), rows + (lane + 1 < rem)
                    a0, b0 = init(ca, c, lane, n0), init(cb, c, lane, n0)
                    a1, b1 = init(ca, c, lane + 1, n1), init(cb, c, lane + 1, n1)
                    for t in range(rows + 1):
                        i = start + t * lanes + lane
                        if t < rows:
                            a0, b0 = step(ca, a0, i), step(cb, b0, i)
                            a1, b1 = step(ca, a1, i + 1), step(cb, b1, i + 1)
                        else:
                            if lane < rem:
                                a0, b0 = step(ca, a0, i), step(cb, b0, i)
                            if lane + 1 < rem:
                                a1, b1 = step(ca, a1, i + 1), step(cb, b1, i + 1)
                    err = finish(ca, c, lane, n0, a0) or finish(cb, c, lane, n0, b0)
                    err = err or finish(ca, c, lane + 1, n1, a1) or finish(cb, c, lane + 1, n1, b1)
                    lane += 2
                else:
                    count = rows + (lane < rem)
                    a0, b0 = init(ca, c, lane, count), init(cb, c, lane, count)
                    for t in range(count):
                        i = start + t * lanes + lane
                        a0, b0 = step(ca, a0, i), step(cb, b0, i)
                    err = finish(ca, c, lane, count, a0) or finish(cb, c, lane, count, b0)
                    lane += 1
                if err:
                    return err
        return 0

    return _run_plane_pair


_rans_dec_pair = _plane_pair_driver(_rans_dec_init, _rans_dec_step, _rans_dec_finish)
_huff_dec_pair = _plane_pair_driver(_huff_dec_init, _huff_dec_step, _huff_dec_finish)


@njit(cache=True, nogil=True)
def _rans_plane_ctx(data, body, k, alphabet, param, entries, ends, lane_max, lanes, target):
    """The rANS decode context of a parsed plane (as _rans_decode_kernel builds it)."""
    size = ends[-1]
    words = np.zeros(size // 2 + lane_max + 2, np.uint16)
    words.view(np.uint8)[:size] = data[body:body + size]
    m = np.int64(1) << param
    lut_sym = np.empty(m, np.uint16)
    lut_fb = np.empty(m, np.int32)
    slot = 0
    for j in range(k):
        f = entries[j]
        for r in range(f):
            lut_sym[slot] = alphabet[j]
            lut_fb[slot] = f | (r << 16)
            slot += 1
    return (words, ends, param, lut_sym, lut_fb, target, 0, lanes)


@njit(cache=True, nogil=True)
def _huffman_plane_ctx(data, body, alphabet, param, entries, ends, lane_max, lanes, target):
    """The Huffman decode context of a parsed plane (as _huffman_decode_kernel builds it)."""
    size = ends[-1]
    words = np.zeros(size // 4 + lane_max + 2, np.uint32)
    words.view(np.uint8)[:size] = data[body:body + size]
    lut = _huffman_lut(_canonical_codes(entries), entries, alphabet, param)
    return (words, ends, param, lut, target, 0, 0, lanes)


@njit(cache=True, nogil=True)
def _decode_plane(data, body, k, alphabet, param, entries, ends, lane_max, coder, n, chunk, lanes, target):
    """Lane data of a parsed plane -> target (n,) (a view of the output); returns an error code."""
    if k == 1:
        target[:] = alphabet[0]
        return 0
    if coder == _RANS:
        ctx = _rans_plane_ctx(data, body, k, alphabet, param, entries, ends, lane_max, lanes, target)
        return _rans_dec_lanes(ctx, n, chunk, lanes, False)
    ctx = _huffman_plane_ctx(data, body, alphabet, param, entries, ends, lane_max, lanes, target)
    return _huff_dec_lanes(ctx, n, chunk, lanes, False)


@njit(cache=True, nogil=True)
def _decode_plane_pair(data, bodies, ks, alphabets, params, entries, all_ends, lane_maxes, coder, n, chunk, lanes,
                       out):
    """Byte planes 0 and 1 of a 2-byte stream of fewer than four lanes, decoded side by side into
    out (n * 2,) uint8; returns an error code."""
    ta, tb = out[0::2], out[1::2]
    if coder == _RANS:
        ca = _rans_plane_ctx(data, bodies[0], ks[0], alphabets[0], params[0], entries[0], all_ends[0], lane_maxes[0],
                             lanes, ta)
        cb = _rans_plane_ctx(data, bodies[1], ks[1], alphabets[1], params[1], entries[1], all_ends[1], lane_maxes[1],
                             lanes, tb)
        return _rans_dec_pair(ca, cb, n, chunk, lanes)
    ca = _huffman_plane_ctx(data, bodies[0], alphabets[0], params[0], entries[0], all_ends[0], lane_maxes[0], lanes, ta)
    cb = _huffman_plane_ctx(data, bodies[1], alphabets[1], params[1], entries[1], all_ends[1], lane_maxes[1], lanes, tb)
    return _huff_dec_pair(ca, cb, n, chunk, lanes)


@njit(cache=True, nogil=True)
def _decode_stream(data, pos, end, coder, max_bytes):
    """The stream at data[pos:end] -> (status, dtype code, symbols as bytes (n * width,) uint8).
    status: _OK, _CORRUPT, or _UNSUPPORTED (a whole plane of wide symbols: the numpy path's)."""
    none = np.zeros(0, np.uint8)
    start = pos
    if end - pos < HEADER_SIZE:
        return _CORRUPT, 0, none
    if _crc32(data, pos, pos + 19) != np.int64(_get(data, pos + 19, 4)):
        return _CORRUPT, 0, none
    code, layout = np.int64(data[pos + 3]), np.int64(data[pos + 4])
    lanes, chunk, n64 = np.int64(_get(data, pos + 5, 2)), np.int64(_get(data, pos + 7, 4)), _get(data, pos + 11, 8)
    if data[pos] != _MAGIC[coder, 0] or data[pos + 1] != _MAGIC[coder, 1] or data[pos + 2] != 1 or \
            code >= 8 or layout > 1 or lanes < 1 or chunk < 1:
        return _CORRUPT, 0, none
    w = _ITEMSIZE[code]
    if (max_bytes >= 0 and n64 > np.uint64(max_bytes // w)) or n64 >= np.uint64(1 << 62):
        return _CORRUPT if max_bytes >= 0 else _UNSUPPORTED, 0, none
    n = np.int64(n64)
    pos += HEADER_SIZE
    if n == 0:
        return (_OK if pos == end else _CORRUPT), code, none
    if layout == WHOLE and w > 2:
        return _UNSUPPORTED, 0, none
    n_planes = 1 if layout == WHOLE else w
    width = w if layout == WHOLE else 1
    # parse every plane before decoding any (the numpy reader's order: errors before allocations)
    ks = np.empty(n_planes, np.int64)
    params = np.empty(n_planes, np.int64)
    bodies = np.empty(n_planes, np.int64)
    lane_maxes = np.empty(n_planes, np.int64)
    alphabets, entries, all_ends = [], [], []
    for p in range(n_planes):
        status, pos, k, alphabet, param, entry, ends, body, lane_max = _parse_plane(
            data, pos, end, start, width, coder, n, chunk, lanes)
        if status != _OK:
            return status, 0, none
        ks[p], params[p], bodies[p], lane_maxes[p] = k, param, body, lane_max
        alphabets.append(alphabet)
        entries.append(entry)
        all_ends.append(ends)
    if pos != end:
        return _CORRUPT, 0, none
    out = np.empty(n * w, np.uint8)
    if layout == BYTES and w == 2 and lanes < 4 and ks[0] > 1 and ks[1] > 1:  # few lanes: both planes at once
        if _decode_plane_pair(data, bodies, ks, alphabets, params, entries, all_ends, lane_maxes, coder, n, chunk,
                              lanes, out):
            return _CORRUPT, 0, none
        return _OK, code, out
    for p in range(n_planes):
        if layout == WHOLE and w == 2:
            target = out.view(np.uint16)
            err = _decode_plane(data, bodies[p], ks[p], alphabets[p], params[p], entries[p], all_ends[p],
                                lane_maxes[p], coder, n, chunk, lanes, target)
        elif w == 1:  # contiguous: a strided view's stores cost a third more
            err = _decode_plane(data, bodies[p], ks[p], alphabets[p], params[p], entries[p], all_ends[p],
                                lane_maxes[p], coder, n, chunk, lanes, out)
        else:
            err = _decode_plane(data, bodies[p], ks[p], alphabets[p], params[p], entries[p], all_ends[p],
                                lane_maxes[p], coder, n, chunk, lanes, out[p::w])
        if err:
            return _CORRUPT, 0, none
    return _OK, code, out


def decode_stream(data: np.ndarray, coder: int, max_bytes: int | None) -> np.ndarray | None:
    """The 1-D array of a whole stream ``data`` (uint8), or None where the numpy decoder must run
    (a corrupt stream: for the message; wide symbols)."""
    try:
        status, code, out = _decode_stream(data, 0, data.size, coder, -1 if max_bytes is None else int(max_bytes))
    except MemoryError:
        return None
    return out.view(DTYPES[code]) if status == _OK else None
