"""The entropy-stream format: what a coded integer stream looks like, shared by every coder
(:mod:`.entropy`'s Huffman and rANS on the CPU, the CUDA kernels of :mod:`.gpu`) and by the
wire slices of the all-to-all (:mod:`dlrmcomp.exchange.wire`).

This module holds the container (header, planes, lanes, chunks), the layout rule and the checks
every reader applies; the coders own their tables and lane bodies.

Byte layout
-----------
All integers are little-endian. "Offset" means bytes from the start of the stream.

Header (23 bytes)::

    magic    2s    b"HF" (Huffman) or b"RA" (rANS)
    version  u8    1
    dtype    u8    0 int8, 1 uint8, 2 int16, 3 uint16, 4 int32, 5 uint32, 6 int64, 7 uint64
    layout   u8    0 "whole": one plane whose symbols are the whole values (width w = itemsize)
                   1 "bytes": w planes; plane b holds byte b of each value (b = 0 least
                     significant), width 1
    lanes    u16   L >= 1
    chunk    u32   S >= 1 symbols per chunk
    n        u64   number of symbols
    check    u32   zlib.crc32 of the 19 bytes above (so a damaged dtype or length is caught)

If n = 0 the header is the whole stream. Otherwise the planes follow, back to back. Every
value is read as an unsigned integer of its width (int8 -1 is symbol 255).

Symbols are cut into C = ceil(n / S) chunks. Chunk c holds symbols [c*S, min(n, (c+1)*S)).
Local symbol i of a chunk goes to lane i % L, at position i // L. So lane l of a chunk of m
symbols holds m // L + (l < m % L) symbols. Each (chunk, lane) pair is an independent stream,
and lanes with no symbols are empty.

A reader rejects a stream whose header check fails, whose alphabets are not strictly
ascending, whose tables break the rules below, whose ends decrease, whose lane sizes cannot
hold their symbols, whose lanes do not end exactly as described, or which has bytes left over.

Plane::

    K         u32          number of distinct symbols present, >= 1
    alphabet  K x width    the present symbols, unsigned, strictly ascending
    -- when K == 1 the plane is constant and ends here --
    table     ...          coder-specific (below), one entry per alphabet symbol, in order
    pad       0..3 bytes   zeros, up to the next offset that is a multiple of 4
    ends      C*L x u32    ends[c*L + l] = end of lane (c, l) in `data`, in bytes; the lane is
                           data[ends[c*L + l - 1] (0 for the first) : ends[c*L + l]]
    data      ends[-1] bytes

rANS table: ``scale_bits`` u8 (M, 1..15), then K x u16 frequencies (each >= 1, summing to 2**M).
cum[k] is the exclusive prefix sum. Slots [cum[k], cum[k] + freq[k]) decode to alphabet[k].
An rANS lane is a u32 initial state, then u16 words in reading order. The state stays in
[2**15, 2**31). Decoding, starting from x = state::

    for each symbol of the lane, in order:
        slot = x & (2**M - 1);  k = the symbol that owns slot
        x = freq[k] * (x >> M) + slot - cum[k]
        if x < 2**15:  x = (x << 16) | next u16 word
    at the end x == 2**15 and every word has been read

The encoder starts at x = 2**15 and walks the lane's symbols backwards. Before each symbol it
emits the low 16 bits of x (and shifts x right by 16) when x >= freq[k] << (31 - M); then it
sets x = (x // freq[k] << M) + x % freq[k] + cum[k]. Finally it writes the state, then the
words in the reverse of their emission order. Each symbol emits at most one word.

Huffman table: ``max_len`` u8 (1..16), then K x u8 code lengths (1..max_len; the longest is
max_len). The Kraft sum is exactly 1. Codes are canonical, as in DEFLATE: ordered by
(length, alphabet index); the first code is 0, and code[i+1] = (code[i] + 1) << (len[i+1] - len[i]).
A Huffman lane is a bit stream packed LSB first into u32 words. Each code is stored
bit-reversed, starting at the next free bit. The last word is padded with zero bits. To decode,
peek at the low max_len bits, look up (symbol, length) in a 2**max_len-entry table, then drop
`length` bits. The lane must hold exactly ceil(bits consumed / 32) words.

Encoder choices
---------------
* Lanes: a stream of n symbols uses L = min(lanes, the power of two >= ceil(n / 4096)) lanes
  (``stream_lanes``), so short streams do not pay 4-8 bytes for each of 32 mostly empty lanes;
  the header records L. The GPU encoder applies the same rule (byte-identical frames).
* Layout: 1-byte dtypes are always "whole". Wider dtypes use "whole" when at most 2**15
  distinct values are present and ``cost(whole) <= sum of cost(byte planes)``. Here
  ``cost = n * H0(plane) + 8 * K * (width + 2)`` bits. So the int16 codes of a quantizer
  (~100-2000 values) get one dense table, while a uint32 index with 20,000 distinct values over
  a wide range is split into byte planes, and its constant high bytes cost nothing.
* rANS scale bits: M = clamp(ceil(log2 K) + 3, 12, 15). Frequencies are proportional to the
  counts, with rare symbols raised to 1 and the rounding given back by largest remainder.
* Huffman lengths: optimal under the limit min(16, max(12, ceil(log2 K) + 1)) (package-merge).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptStreamError

DTYPES = tuple(np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"))
VERSION = 1
MAX_WHOLE_ALPHABET = 1 << 15
HEADER = struct.Struct("<2sBBBHIQ")
HEADER_CHECK = struct.Struct("<I")
HEADER_SIZE = HEADER.size + HEADER_CHECK.size  # 23
WHOLE, BYTES = 0, 1
#: a stream gets no more than one lane per this many symbols (a lane costs 4-8 bytes of offset and state)
MIN_LANE_SYMBOLS = 4096


def stream_lanes(n: int, lanes: int) -> int:
    """Lanes used for an n-symbol stream: ``lanes``, or fewer (a power of two) for short streams."""
    want = max(1, -(-n // MIN_LANE_SYMBOLS))
    return min(lanes, 1 << (want - 1).bit_length())


def lane_symbol_counts(n: int, chunk: int, lanes: int) -> np.ndarray:
    """Symbols per (chunk, lane), (C*L,) int64, chunk-major."""
    n_chunks = -(-n // chunk)
    m = np.full(n_chunks, chunk, np.int64)
    m[-1] = n - (n_chunks - 1) * chunk
    per_lane = m[:, None] // lanes + (np.arange(lanes)[None, :] < (m % lanes)[:, None])
    return per_lane.reshape(-1)


def pad_to_4(pos: int) -> int:
    """Zero bytes after ``pos`` (from the stream start) up to the next multiple of 4."""
    return -pos % 4


def entropy_of_counts(counts: np.ndarray) -> float:
    """n * H0 in bits of a histogram."""
    counts = counts[counts > 0].astype(np.float64)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def plane_cost_bits(counts: np.ndarray, width: int) -> float:
    """The layout rule's cost of coding a plane with this histogram: n H0 + 8 K (width + 2) bits."""
    return entropy_of_counts(counts) + 8.0 * np.count_nonzero(counts) * (width + 2)


def choose_layout(width: int, whole_counts: np.ndarray | None, plane_counts) -> int:
    """WHOLE or BYTES for a ``width``-byte stream from its histograms: ``whole_counts`` of the
    values (None: too many distinct values to count) and ``plane_counts`` of each byte plane."""
    if width == 1:
        return WHOLE
    if whole_counts is not None and np.count_nonzero(whole_counts) <= MAX_WHOLE_ALPHABET and \
            plane_cost_bits(whole_counts, width) <= sum(plane_cost_bits(c, 1) for c in plane_counts):
        return WHOLE
    return BYTES


class Reader:
    """Bounds-checked reads from a uint8 array; every failure is a CorruptStreamError."""

    def __init__(self, data: np.ndarray):
        self.data, self.pos = data, 0

    def take(self, nbytes: int) -> np.ndarray:
        if nbytes < 0 or self.pos + nbytes > self.data.size:
            raise CorruptStreamError(f"stream truncated (needs {nbytes} bytes at {self.pos}, has {self.data.size})")
        out = self.data[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return out

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size).tobytes())

    def array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return self.take(count * dt.itemsize).view(dt)


@dataclass(frozen=True)
class StreamHeader:
    magic: bytes
    dtype: np.dtype
    layout: int
    lanes: int
    chunk: int
    n: int

    @property
    def plane_widths(self) -> list[int]:
        """Symbol width of each plane, in order."""
        w = self.dtype.itemsize
        return [w] if self.layout == WHOLE else [1] * w

    def pack(self) -> bytes:
        head = HEADER.pack(self.magic, VERSION, DTYPES.index(self.dtype), self.layout, self.lanes, self.chunk, self.n)
        return head + HEADER_CHECK.pack(zlib.crc32(head))

    @classmethod
    def read(cls, reader: Reader, magic: bytes, name: str = "entropy") -> "StreamHeader":
        """Parse and check the header at the reader's position (checksum, magic, version, fields)."""
        head = reader.take(HEADER.size).tobytes()
        got, version, code, layout, lanes, chunk, n = HEADER.unpack(head)
        if reader.unpack(HEADER_CHECK)[0] != zlib.crc32(head):
            raise CorruptStreamError("entropy-stream header checksum mismatch")
        if got != magic or version != VERSION:
            raise CorruptStreamError(f"not a {name} v{VERSION} stream")
        if code >= len(DTYPES) or layout not in (WHOLE, BYTES) or lanes < 1 or chunk < 1:
            raise CorruptStreamError("corrupt entropy-stream header")
        return cls(got, DTYPES[code], layout, lanes, chunk, n)
