"""The wire format of the compressed all-to-all: what one (table, destination) slice looks like.

A frame (:mod:`dlrmcomp.codecs.frame`) is the self-describing format for files and dumps; it has a
JSON header and is built on the host. What crosses an all-to-all is a *wire slice*: a fixed-size
binary descriptor that a GPU writes and validates without the host, then the same entropy stream
a ``quant+ans`` frame carries, then the escaped values. Slices are packed back to back, so a
destination's part of the send buffer is one contiguous run of slices.

Slice layout (little-endian; slices start at multiples of 16 bytes)::

    descriptor  80 bytes (DESCRIPTOR below, crc32 of its first 76 bytes last)
    stream      stream_len bytes: a Rans stream (codecs/stream.py) of the int8/int16 codes (n = rows * dim)
    pad         zeros to a multiple of 8 (from the slice start)
    escapes     n_esc values of the slice dtype, in element order (values the grid cannot code)
    pad         zeros to a multiple of 16: the slice is slice_len bytes

Descriptor fields: magic b"DLW1", version 1, codec 1 (quant+ans), dtype (0 float32, 1 float64),
code dtype (0 int8, 2 int16: stream.DTYPES indices), mode (0 rel, 1 abs), dim, rows, n_esc,
stream_len, slice_len, eb (the bound as given), eb_abs (resolved), grid base, grid step, lanes and
chunk of the stream, a reserved word, crc32.

This module is the CPU side (numpy, no GPU needed): encode slices with the CPU stages, decode any
slice a GPU wrote, and turn slices into frames (:func:`to_frame`) for ``dlrmcomp.decompress``.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..codecs import frame as framing
from ..codecs.entropy import Rans
from ..codecs.stream import DTYPES, stream_lanes
from ..codecs.pipeline import Pipeline
from ..codecs.quantize import CODE_DTYPES, Grid, LinearQuantizer, Quantized
from ..errorbound import ErrorBound
from ..errors import CorruptStreamError

MAGIC = b"DLW1"
VERSION = 1
CODEC_QUANT_ANS = 1
DESCRIPTOR = struct.Struct("<4sBBBBB3xIIIIIddddIII")
_CRC = struct.Struct("<I")
DESCRIPTOR_SIZE = DESCRIPTOR.size + _CRC.size  # 80
VALUE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MODES = ("rel", "abs")
#: a relative bound at or above this always fits int8 codes: |code| <= 1 / (4 eb) + 1 <= 127
INT8_MIN_REL_BOUND = 1.0 / 500


def code_dtype_for(bounds, mode: str = "rel", codes: str = "auto") -> np.dtype:
    """The code dtype of one exchange, decided from its bounds alone (no look at the data, no sync):
    int8 when every relative bound guarantees that finite values fit, else int16."""
    if codes != "auto":
        return CODE_DTYPES[codes]
    if mode == "rel" and min(bounds, default=1.0) >= INT8_MIN_REL_BOUND:
        return CODE_DTYPES["int8"]
    return CODE_DTYPES["int16"]


def header_lanes(n: int, lanes: int) -> int:
    """The lanes an n-symbol Rans stream records in its header."""
    return stream_lanes(n, lanes) if n else lanes


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


@dataclass(frozen=True)
class Descriptor:
    dtype: np.dtype
    code_dtype: np.dtype
    mode: str
    dim: int
    rows: int
    n_esc: int
    stream_len: int
    slice_len: int
    eb: float
    eb_abs: float
    grid: Grid
    lanes: int
    chunk: int

    @property
    def escapes_at(self) -> int:
        return DESCRIPTOR_SIZE + _pad(self.stream_len, 8)

    def pack(self) -> bytes:
        head = DESCRIPTOR.pack(MAGIC, VERSION, CODEC_QUANT_ANS, VALUE_DTYPES.index(self.dtype),
                               DTYPES.index(self.code_dtype), MODES.index(self.mode), self.dim, self.rows,
                               self.n_esc, self.stream_len, self.slice_len, self.eb, self.eb_abs,
                               self.grid.base, self.grid.step, self.lanes, self.chunk, 0)
        return head + _CRC.pack(zlib.crc32(head))

    @classmethod
    def unpack(cls, buf) -> "Descriptor":
        data = framing.as_bytes(buf)
        if len(data) < DESCRIPTOR_SIZE:
            raise CorruptStreamError(f"wire slice of {len(data)} bytes is shorter than its descriptor")
        head = bytes(data[:DESCRIPTOR.size])
        (magic, version, codec, dtype, cdt, mode, dim, rows, n_esc, stream_len, slice_len, eb, eb_abs, base, step,
         lanes, chunk, _) = DESCRIPTOR.unpack(head)
        if magic != MAGIC or version != VERSION:
            raise CorruptStreamError("not a dlrmcomp wire slice (bad magic or version)")
        if _CRC.unpack(bytes(data[DESCRIPTOR.size:DESCRIPTOR_SIZE]))[0] != zlib.crc32(head):
            raise CorruptStreamError("wire descriptor checksum mismatch")
        if codec != CODEC_QUANT_ANS or dtype >= len(VALUE_DTYPES) or cdt not in (0, 2) or mode >= len(MODES):
            raise CorruptStreamError("wire descriptor names an unknown codec, dtype or mode")
        d = cls(VALUE_DTYPES[dtype], DTYPES[cdt], MODES[mode], dim, rows, n_esc, stream_len, slice_len, eb, eb_abs,
                Grid(base, step), lanes, chunk)
        if slice_len > len(data) or d.escapes_at + n_esc * d.dtype.itemsize > slice_len:
            raise CorruptStreamError(f"wire slice claims {slice_len} bytes, {len(data)} received")
        return d


def encode_slice(x: np.ndarray, eb: float, mode: str = "rel", code_dtype: np.dtype = CODE_DTYPES["int8"],
                 lanes: int = 32, chunk: int = 1 << 18) -> bytes:
    """One [rows, dim] slice -> wire bytes, with the CPU stages (the GPU writes the same layout)."""
    x = np.ascontiguousarray(x)
    if x.ndim != 2 or x.dtype not in VALUE_DTYPES:
        raise ValueError(f"a wire slice is a 2-D float32/float64 array, got {x.dtype} {x.shape}")
    eb_abs = ErrorBound(eb, mode).resolve(x)
    q = LinearQuantizer(np.dtype(code_dtype).name).quantize(x, eb_abs)
    stream = Rans(lanes, chunk).encode(q.codes)
    d = Descriptor(x.dtype, np.dtype(code_dtype), mode, x.shape[1], x.shape[0], q.escapes.size, len(stream), 0,
                   float(eb), float(eb_abs), q.grid, header_lanes(x.size, lanes), chunk)
    slice_len = _pad(d.escapes_at + q.escapes.nbytes, 16)
    d = Descriptor(**{**d.__dict__, "slice_len": slice_len})
    out = bytearray(slice_len)
    out[:DESCRIPTOR_SIZE] = d.pack()
    out[DESCRIPTOR_SIZE:DESCRIPTOR_SIZE + len(stream)] = stream
    out[d.escapes_at:d.escapes_at + q.escapes.nbytes] = q.escapes.tobytes()
    return bytes(out)


def _parts(buf) -> tuple[Descriptor, memoryview, np.ndarray]:
    d = Descriptor.unpack(buf)
    data = framing.as_bytes(buf)
    stream = data[DESCRIPTOR_SIZE:DESCRIPTOR_SIZE + d.stream_len]
    if DESCRIPTOR_SIZE + d.stream_len > d.escapes_at:
        raise CorruptStreamError("wire stream overlaps the escapes")
    escapes = np.frombuffer(data[d.escapes_at:d.escapes_at + d.n_esc * d.dtype.itemsize], d.dtype)
    return d, stream, escapes


def decode_slice(buf) -> np.ndarray:
    """Wire bytes of one slice -> its [rows, dim] array; CorruptStreamError on anything malformed."""
    d, stream, escapes = _parts(buf)
    codes = Rans().decode(stream, max_bytes=2 * d.rows * d.dim)
    if codes.dtype != d.code_dtype or codes.size != d.rows * d.dim:
        raise CorruptStreamError(f"wire stream holds {codes.size} {codes.dtype} codes, descriptor says "
                                 f"{d.rows * d.dim} {d.code_dtype}")
    return LinearQuantizer.dequantize(Quantized(codes.reshape(d.rows, d.dim), escapes, d.grid), d.dtype)


def to_frame(buf) -> bytes:
    """Wire bytes of one slice -> the equivalent ``quant+ans`` frame (a cheap host step)."""
    d, stream, escapes = _parts(buf)
    config = Pipeline("quant+ans", eb=d.eb, mode=d.mode, dtype=d.code_dtype.name).get_config()
    header = framing.FrameHeader(config, d.dtype, (d.rows, d.dim), d.eb_abs)
    side = LinearQuantizer.pack_side(Quantized(None, escapes, d.grid))
    return framing.pack(header, framing.join_sections([side, bytes(stream)]))


def split(buf, lengths) -> list[memoryview]:
    """A buffer of packed slices + their lengths -> one view per slice (lengths are checked)."""
    data = framing.as_bytes(buf)
    lengths = [int(n) for n in lengths]
    if any(n < DESCRIPTOR_SIZE or n % 16 for n in lengths) or sum(lengths) > len(data):
        raise CorruptStreamError(f"slice lengths {lengths[:8]}... do not fit a buffer of {len(data)} bytes")
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    return [data[o:o + n] for o, n in zip(offsets, lengths)]


def encode_slices(xs, bounds, mode: str = "rel", codes: str = "auto", lanes: int = 32,
                  chunk: int = 1 << 18) -> tuple[bytes, list[int]]:
    """Slices (each [rows, dim]) and their bounds -> (packed wire bytes, slice lengths): the CPU
    ranks' side of one exchange, one call."""
    cdt = code_dtype_for(bounds, mode, codes)
    parts = [encode_slice(np.asarray(x), eb, mode, cdt, lanes, chunk) for x, eb in zip(xs, bounds)]
    return b"".join(parts), [len(p) for p in parts]


def decode_slices(buf, lengths, shapes) -> list[np.ndarray]:
    """Packed wire bytes + slice lengths + expected (rows, dim) -> arrays; a slice whose shape
    disagrees with what the receiver expects is a CorruptStreamError."""
    out = []
    for view, shape in zip(split(buf, lengths), shapes):
        a = decode_slice(view)
        if a.shape != tuple(shape):
            raise CorruptStreamError(f"wire slice of shape {a.shape}, expected {tuple(shape)}")
        out.append(a)
    return out
