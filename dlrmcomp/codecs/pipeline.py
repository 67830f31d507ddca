"""A compressor is a recipe of small stages (SZ3's generic compressor), named by joining them.

``"quant+dedup+ans"`` = linear quantizer -> vector dedup -> rANS on each resulting stream.
Stages, in the order a recipe may use them:

- ``quant`` (first, lossy): :class:`~dlrmcomp.codecs.quantize.LinearQuantizer`
- a row stage over rows of the last axis: ``dedup`` (:func:`~dlrmcomp.codecs.dedup.dedup_rows`:
  distinct rows + inverse index) or ``match`` (:func:`~dlrmcomp.codecs.dedup.match_rows`: distinct
  rows + matches, cheaper to code where most rows are seen once: small batches)
- coders, chained: ``ans``, ``huffman`` (ours, :mod:`~dlrmcomp.codecs.entropy`), then byte
  back-ends ``zstd``, ``lz4``, ``zlib`` (:mod:`~dlrmcomp.codecs.lossless`)

Payload = sections: [quantizer side info] + one coded section per stream (codes, or distinct
rows and their index).

``quant[+dedup|+match]+ans|huffman`` on float32/float64 run as one compiled kernel a table
(quantize, rows, histograms, tables, lanes; decoding: every check, lanes, rows, dequantize),
which writes and reads the same bytes as the stage-by-stage path; ``encode_batch`` /
``decode_batch`` code many tables a call, on ``threads`` threads.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errorbound import ErrorBound, finite_range
from ..errors import CorruptStreamError
from . import entropy, lossless
from ._jit import njit
from .base import Codec, ErrorBoundedCodec, decode_checked
from .dedup import _dedup_kernel, _inverse_kernel, _matches_kernel, dedup_rows, index_dtype, inverse_of, matches_of
from .frame import (FrameHeader, as_bytes, header_head, join_sections, pack_array, pack_parts, split_sections,
                    unpack, unpack_array)
from .quantize import CODE_DTYPES, Grid, LinearQuantizer, Quantized, _quantize_kernel, code_limits

CODERS = ("ans", "huffman", "zstd", "lz4", "zlib")
ROW_STAGES = ("dedup", "match")
LEVELED = {"zstd": 1, "zlib": 6}


try:
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils, types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _prefetch(typingctx, array, index):
        """Ask the CPU for the cache line of array[index] (llvm.prefetch: a read, kept in cache)."""
        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            byte = _ir.IntType(8).as_pointer()
            fn = _cgutils.get_or_insert_function(builder.module, _ir.FunctionType(
                _ir.VoidType(), [byte, _ir.IntType(32), _ir.IntType(32), _ir.IntType(32)]), "llvm.prefetch.p0")
            i32 = _ir.IntType(32)
            builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), byte), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()

        return _types.void(array, index), codegen
except ImportError:  # pragma: no cover - no numba: the kernels raise ImportError when called
    def _prefetch(array, index):
        pass


def make_coder(name: str, level: int | None):
    """A coder stage by recipe name (``level`` for zstd / zlib)."""
    if name in ("ans", "huffman"):
        return entropy.Rans() if name == "ans" else entropy.Huffman()
    if name == "lz4":
        return lossless.Lz4()
    stage = lossless.Zstd if name == "zstd" else lossless.Zlib
    return stage(LEVELED[name] if level is None else level)


def parse_recipe(recipe: str) -> tuple[bool, bool, tuple[str, ...]]:
    """'quant+dedup+ans' -> (quantize, dedup, coders); ValueError for an invalid order.

    ``match`` is listed first among the coders ('quant+match+ans' -> (True, False, ('match', 'ans'))):
    it turns rows into two streams, as a vector-LZ coder would, and a reader that knows only
    ``dedup`` must not take it for one."""
    stages = recipe.split("+")
    quant = stages[0] == "quant"
    rest = stages[1:] if quant else stages
    dedup = bool(rest) and rest[0] == "dedup"
    coders = tuple(rest[1:] if dedup else rest)
    lead = coders[1:] if coders[:1] == ("match",) and not dedup else coders
    bad = [s for s in lead if s not in CODERS]
    if bad or not (quant or dedup or coders):
        raise ValueError(f"invalid recipe {recipe!r}: use [quant+][dedup+|match+]coder[+coder...] "
                         f"with coders from {CODERS}")
    return quant, dedup, coders


def row_width(shape: tuple[int, ...]) -> int:
    """Row length used by dedup: the last axis for >= 2-D arrays, else 1."""
    return shape[-1] if len(shape) >= 2 and shape[-1] > 0 else 1


def output_limit(header: FrameHeader) -> int:
    """Most bytes any stage may decode to for this frame (8 per element plus tables and headers):
    a forged length inside a stream is an error, not a huge allocation."""
    return 8 * header.size + (1 << 16)


# -- the compiled path: one kernel a table ------------------------------------------------------
_NONE, _DEDUP, _MATCH = 0, 1, 2
_AHEAD = 8  # rows fetched ahead while expanding distinct rows
_SMALL = 1 << 15  # up to this many elements, the range is found in one compiled loop
_OK, _CORRUPT, _UNSUPPORTED = entropy._OK, entropy._CORRUPT, entropy._UNSUPPORTED
_SIDE_HEAD = 26  # quantize._HEAD: b"LQ", base f64, step f64, escape count u64
_put, _get = entropy._put, entropy._get


@njit(cache=True, nogil=True)
def _key_range(bits, expo, flip, big):
    """(min, max) of the order-preserving integer keys (sign-magnitude -> two's complement) of
    the finite values whose bit patterns (int32 / int64 view) are ``bits``; lo > hi when none is.
    Branch-free, so it runs about twice as fast as comparing floats (which must skip NaN)."""
    lo, hi = big, -big - 1
    for i in range(bits.size):
        b = bits[i]
        key = b ^ ((b >> (8 * bits.itemsize - 1)) & flip)
        finite = (b & expo) != expo
        lo = min(lo, key if finite else big)
        hi = max(hi, key if finite else -big - 1)
    return lo, hi


@njit(cache=True, nogil=True)
def _range_of_bits(flat, bits, expo, big):
    """:func:`_small_range` for ``bits``, the int32 / int64 view of ``flat``."""
    lo, hi = _key_range(bits, expo, big, big)
    if lo > hi:
        return 0.0, 0.0
    v = np.empty(2, flat.dtype)
    k = v.view(bits.dtype)
    shift = 8 * bits.itemsize - 1
    k[0], k[1] = lo ^ ((lo >> shift) & big), hi ^ ((hi >> shift) & big)
    return np.float64(v[0]), np.float64(v[1])


@njit(cache=True, nogil=True)
def _small_range(flat):
    """(lo, hi) over the finite values of a float32 / float64 array, (0.0, 0.0) when none is:
    finite_range without numpy's per-call cost (its vectorised min / max win on large float32
    arrays). The keys of -0.0 and 0.0 differ: the caller settles a zero extreme."""
    if flat.itemsize == 4:
        return _range_of_bits(flat, flat.view(np.int32), np.int32(0x7F800000), np.int32(0x7FFFFFFF))
    return _range_of_bits(flat, flat.view(np.int64), np.int64(0x7FF0000000000000), np.int64(0x7FFFFFFFFFFFFFFF))


def _value_range(x: np.ndarray) -> tuple[float, float]:
    """errorbound.finite_range of x (numpy's own where an extreme is zero: it picks the zero's sign)."""
    if x.size > _SMALL and x.dtype.itemsize == 4:  # numpy's float64 min / max are slower than ours
        return finite_range(x)
    lo, hi = _small_range(x.reshape(-1))
    return finite_range(x) if lo == 0.0 or hi == 0.0 else (lo, hi)


@njit(cache=True, nogil=True)
def _dedup_codes(sym, rows, inverse, first_rows):
    """dedup.dedup_rows over the rows of sym (n,) uint8/uint16 seen as [rows, n // rows]."""
    b = sym.view(np.uint8)
    rb = b.size // rows
    if rb % 8 == 0:
        return _dedup_kernel(b.view(np.uint64).reshape(rows, rb // 8), inverse, first_rows)
    if rb % 4 == 0:
        return _dedup_kernel(b.view(np.uint32).reshape(rows, rb // 4), inverse, first_rows)
    if rb % 2 == 0:
        return _dedup_kernel(b.view(np.uint16).reshape(rows, rb // 2), inverse, first_rows)
    return _dedup_kernel(b.reshape(rows, rb), inverse, first_rows)


@njit(cache=True, nogil=True)
def _put_stream(symbols, dtype_code, coder, lanes, chunk, out, pos, ws_counts, ws_enc, ws_henc):
    """A u64 section length + the entropy stream of symbols (uint8/uint16 view); -> end or -1."""
    if pos < 0:
        return pos
    end = entropy._encode_stream(symbols, dtype_code, coder, lanes, chunk, out, pos + 8, ws_counts, ws_enc, ws_henc)
    if end >= 0:
        _put(out, pos, end - pos - 8, 8)
    return end


@njit(cache=True, nogil=True)
def _encode_table(flat, rows, base, step, eb_abs, qmax, esc, sym, row_stage, coder, lanes, chunk,
                  ws_counts, ws_enc, ws_henc):
    """The payload of ``Pipeline.encode_payload`` for flat (n,) float32/float64; ``sym`` (n,)
    uint8/uint16 receives the bits of the int8/int16 codes (``esc``: the escape code's bits).
    -> (bytes (m,), m), or m = -1 where the numpy path must write it (an index wider than 16
    bits, a layout tie)."""
    n = flat.size
    n_esc = _quantize_kernel(flat, base, step, eb_abs, qmax, esc, sym)
    isz, csz = flat.itemsize, sym.itemsize
    code_dtype = 0 if csz == 1 else 2  # stream.DTYPES: int8, int16
    width = n // rows
    inverse = np.empty(rows if row_stage != _NONE else 0, np.int64)
    first_rows = np.empty(rows if row_stage != _NONE else 0, np.int64)
    if row_stage == _NONE:
        n_unique = 0
        room = entropy._stream_bound(n, csz, lanes, chunk)
    else:
        n_unique = _dedup_codes(sym, rows, inverse, first_rows)
        if n_unique > 65536 or (row_stage == _MATCH and n_unique >= 65536):
            return np.empty(0, np.uint8), -1
        room = entropy._stream_bound(n_unique * width, csz, lanes, chunk) + 8
        room += entropy._stream_bound(rows, 2, lanes, chunk)
    out = np.empty(4 + 8 + 4 + 8 + _SIDE_HEAD + 8 + n_esc * isz + 8 + room, np.uint8)
    pos = _put(out, 0, 2 if row_stage == _NONE else 3, 4)
    pos = _put(out, pos, 4 + 8 + _SIDE_HEAD + 8 + n_esc * isz, 8)  # side info: join_sections([head, escapes])
    pos = _put(out, pos, 2, 4)
    pos = _put(out, pos, _SIDE_HEAD, 8)
    out[pos], out[pos + 1] = ord("L"), ord("Q")
    grid = np.empty(2, np.float64)
    grid[0], grid[1] = base, step
    bits = grid.view(np.int64)
    pos = _put(out, pos + 2, bits[0], 8)
    pos = _put(out, pos, bits[1], 8)
    pos = _put(out, pos, n_esc, 8)
    pos = _put(out, pos, n_esc * isz, 8)
    if n_esc:
        raw = flat.view(np.uint8)
        for i in range(n):
            if sym[i] == esc:
                out[pos:pos + isz] = raw[i * isz:(i + 1) * isz]
                pos += isz
    if row_stage == _NONE:
        return out, _put_stream(sym, code_dtype, coder, lanes, chunk, out, pos, ws_counts, ws_enc, ws_henc)
    unique = np.empty(n_unique * width, sym.dtype)
    for u in range(n_unique):
        r = first_rows[u]
        unique[u * width:(u + 1) * width] = sym[r * width:(r + 1) * width]
    pos = _put_stream(unique, code_dtype, coder, lanes, chunk, out, pos, ws_counts, ws_enc, ws_henc)
    index = inverse
    top = n_unique - 1
    if row_stage == _MATCH:
        index = np.empty(rows, np.int64)
        top = _matches_kernel(inverse, index)
    if top < 256:
        small = np.empty(rows, np.uint8)
        small[:] = index
        return out, _put_stream(small, 1, coder, lanes, chunk, out, pos, ws_counts, ws_enc, ws_henc)
    wide = np.empty(rows, np.uint16)
    wide[:] = index
    return out, _put_stream(wide, 3, coder, lanes, chunk, out, pos, ws_counts, ws_enc, ws_henc)


@njit(cache=True, nogil=True)
def _sections(buf, start, stop, expected):
    """split_sections of buf[start:stop] -> (status, starts, lengths) with ``expected`` sections."""
    none = np.zeros(0, np.int64)
    if stop - start < 4:
        return _CORRUPT, none, none
    count = np.int64(_get(buf, start, 4))
    if count != expected:
        return _CORRUPT, none, none
    starts, lengths = np.empty(count, np.int64), np.empty(count, np.int64)
    pos = start + 4
    for s in range(count):
        if pos + 8 > stop:
            return _CORRUPT, none, none
        length = _get(buf, pos, 8)
        pos += 8
        if length > np.uint64(stop - pos):
            return _CORRUPT, none, none
        starts[s], lengths[s] = pos, np.int64(length)
        pos += np.int64(length)
    if pos != stop:
        return _CORRUPT, none, none
    return _OK, starts, lengths


@njit(cache=True, nogil=True)
def _index_values(raw, dtype_code):
    """Decoded index bytes of an unsigned dtype (stream.DTYPES code) -> int64 values, or None-like
    (-1 first) when the dtype is signed or a value does not fit int64."""
    w = entropy._ITEMSIZE[dtype_code]
    n = raw.size // w
    out = np.empty(n, np.int64)
    if dtype_code == 1:
        out[:] = raw
    elif dtype_code == 3:
        out[:] = raw.view(np.uint16)
    else:
        for i in range(n):
            v = _get(raw, i * w, w)
            out[i] = np.int64(v) if v < np.uint64(1 << 62) else np.int64(1 << 62)
    return out


@njit(cache=True, nogil=True)
def _dequantize_codes(codes, esc, base, step, out_flat, inverse, width, escapes):
    """out = base + code * step, rows gathered through ``inverse`` unless it is empty (then codes
    has out's size), escapes stored in order where the code is ``esc``: LinearQuantizer.dequantize,
    or, without escapes, dequantize_rows (the same values; nothing checked)."""
    n = out_flat.size
    found = 0
    if inverse.size == 0:
        for i in range(n):
            out_flat[i] = base + codes[i] * step
            found += codes[i] == esc
    else:
        w = np.uint64(width)
        line = np.uint64(max(1, 64 // codes.itemsize))  # codes a cache line
        for r in range(inverse.size):
            if r + _AHEAD < inverse.size:  # the rows come in random order: fetch ahead
                ahead = np.uint64(inverse[r + _AHEAD]) * w
                for q in range(np.uint64(0), w, line):
                    _prefetch(codes, ahead + q)
            src, dst = np.uint64(inverse[r]) * w, np.uint64(r) * w
            for j in range(w):
                out_flat[dst + j] = base + codes[src + j] * step
        if escapes.size == 0:  # dequantize_rows
            return _OK
        for r in range(inverse.size):
            src = np.uint64(inverse[r]) * w
            for j in range(w):
                found += codes[src + j] == esc
    if found != escapes.size:
        return _CORRUPT
    k = 0
    w = np.uint64(width)
    for i in range(n):
        c = codes[np.uint64(inverse[i // width]) * w + np.uint64(i % width)] if inverse.size else codes[i]
        if c == esc:
            out_flat[i] = escapes[k]
            k += 1
    return _OK


@njit(cache=True, nogil=True)
def _dequantize_into(raw, code_dtype, base, step, out_flat, inverse, width, escapes):
    """_dequantize_codes of raw int8 (code_dtype 0) or int16 (2) code bytes."""
    if code_dtype == 0:
        return _dequantize_codes(raw.view(np.int8), -128, base, step, out_flat, inverse, width, escapes)
    return _dequantize_codes(raw.view(np.int16), -32768, base, step, out_flat, inverse, width, escapes)


@njit(cache=True, nogil=True)
def _decode_table(buf, row_stage, coder, width, max_bytes, out_flat):
    """Pipeline.decode_payload of a payload buf (uint8) into out_flat (size,) float32/float64,
    with every check of the stage-by-stage path. -> _OK, _CORRUPT or _UNSUPPORTED."""
    size = out_flat.size
    status, starts, lengths = _sections(buf, 0, buf.size, 2 if row_stage == _NONE else 3)
    if status != _OK:
        return status
    status, side, side_len = _sections(buf, starts[0], starts[0] + lengths[0], 2)
    if status != _OK or side_len[0] != _SIDE_HEAD:
        return _CORRUPT
    h = side[0]
    if buf[h] != ord("L") or buf[h + 1] != ord("Q"):
        return _CORRUPT
    grid = np.empty(2, np.int64)
    grid[0], grid[1] = np.int64(_get(buf, h + 2, 8)), np.int64(_get(buf, h + 10, 8))
    base, step = grid.view(np.float64)[0], grid.view(np.float64)[1]
    n_esc = _get(buf, h + 18, 8)
    isz = out_flat.itemsize
    if n_esc > np.uint64(side_len[1]) or np.int64(n_esc) * isz != side_len[1] or not step >= 0:
        return _CORRUPT
    escapes = np.empty(np.int64(n_esc), out_flat.dtype)
    escapes.view(np.uint8)[:] = buf[side[1]:side[1] + side_len[1]]
    status, code, raw = entropy._decode_stream(buf, starts[1], starts[1] + lengths[1], coder, max_bytes)
    if status != _OK:
        return status
    w = entropy._ITEMSIZE[code]
    if row_stage == _NONE:
        if raw.size // w != size or (code != 0 and code != 2):
            return _CORRUPT
        return _dequantize_into(raw, code, base, step, out_flat, np.empty(0, np.int64), 1, escapes)
    status, index_code, index_raw = entropy._decode_stream(buf, starts[2], starts[2] + lengths[2], coder, max_bytes)
    if status != _OK:
        return status
    n_codes = raw.size // w
    n_rows = index_raw.size // entropy._ITEMSIZE[index_code]
    if n_codes % width or n_rows != size // width or index_code % 2 == 0:  # unsigned dtypes have odd codes
        return _CORRUPT
    n_unique = n_codes // width
    index = _index_values(index_raw, index_code)
    if row_stage == _MATCH:
        inverse = np.empty(n_rows, np.int64)
        if _inverse_kernel(index, inverse) != n_unique:
            return _CORRUPT
    else:
        inverse = index
        if n_rows and (n_unique == 0 or inverse.max() >= n_unique):
            return _CORRUPT
    if code != 0 and code != 2:
        return _CORRUPT
    if n_rows == 0:  # an empty frame never takes this path; a forged one is the numpy path's
        return _UNSUPPORTED
    return _dequantize_into(raw, code, base, step, out_flat, inverse, width, escapes)


class Pipeline(Codec):
    """A recipe codec. Lossy iff it starts with ``quant``; then ``eb``/``mode`` are required."""

    def __init__(self, recipe: str, eb: float | None = None, mode: str = "rel", dtype: str = "auto",
                 level: int | None = None):
        quant, dedup, coders = parse_recipe(recipe)
        self._recipe = recipe
        self._heads: dict[tuple, bytes] = {}
        self._rows = "dedup" if dedup else ("match" if coders[:1] == ("match",) else None)
        coders = coders[1:] if self._rows == "match" else coders
        self._dedup = self._rows is not None
        if quant:
            if eb is None:
                raise ValueError(f"codec {recipe!r} is lossy: give an error bound eb")
            self._bound = ErrorBound(eb, mode)
            self.eb, self.mode = self._bound.value, self._bound.mode
            self._quantizer = LinearQuantizer(dtype)
            self.dtype = dtype
        elif eb is not None:
            raise ValueError(f"codec {recipe!r} is lossless: pass eb=None")
        else:
            self._quantizer = None
        if len({c for c in coders if c in LEVELED}) > 1:
            raise ValueError(f"recipe {recipe!r} chains {' and '.join(c for c in coders if c in LEVELED)}: "
                             "one level cannot serve both; keep one leveled back-end")
        if any(c in LEVELED for c in coders):
            self.level = LEVELED[next(c for c in coders if c in LEVELED)] if level is None else int(level)
        elif level is not None:
            raise ValueError(f"codec {recipe!r} has no stage with a level")
        self._coders = [make_coder(c, getattr(self, "level", None)) for c in coders]
        # the compiled path: lossy, one coder of ours
        self._kernel = None
        if quant and len(self._coders) == 1 and isinstance(self._coders[0], entropy._LaneCoder):
            self._kernel = ({None: _NONE, "dedup": _DEDUP, "match": _MATCH}[self._rows], self._coders[0])

    @property
    def name(self) -> str:
        return self._recipe

    def get_config(self) -> dict:
        """As :meth:`Codec.get_config` (built once: a codec does not change after construction)."""
        if "_config" not in self.__dict__:
            self._config = super().get_config()
        return dict(self._config)

    @property
    def lossy(self) -> bool:  # type: ignore[override]
        return self._quantizer is not None

    @property
    def dtypes(self):  # type: ignore[override]
        return ErrorBoundedCodec.dtypes if self.lossy else None

    def resolve_bound(self, x):
        return self._bound.resolve(x) if self.lossy else None

    # -- coder chain over one stream ---------------------------------------------------------
    def _code(self, a: np.ndarray) -> bytes:
        if not self._coders:
            return pack_array(a)
        buf = b""
        for stage in self._coders:
            buf = stage.encode(a)
            a = np.frombuffer(buf, dtype=np.uint8)
        return buf

    def _uncode(self, buf, max_bytes: int) -> np.ndarray:
        """Run the coder chain backwards; no stage may produce more than ``max_bytes``."""
        if not self._coders:
            return unpack_array(buf)
        for stage in reversed(self._coders):
            a = stage.decode(buf, max_bytes)
            buf = as_bytes(np.ascontiguousarray(a))
        return a

    def _row_streams(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The row stage: (distinct rows, inverse or matches)."""
        unique, inverse = dedup_rows(rows)
        return (unique, matches_of(inverse)) if self._rows == "match" else (unique, inverse)

    # -- the codec ---------------------------------------------------------------------------
    def encode(self, x) -> bytes:
        """Compress ``x`` into a self-describing frame (the range of x is found once)."""
        x = self.check_input(x)
        if self._kernel is None or x.size == 0:
            return super().encode(x)
        lo, hi = _value_range(x)
        eb_abs = self._bound.value if self._bound.mode == "abs" else float(self._bound.value * (hi - lo))
        return pack_parts(self._header_head(x), eb_abs, self.encode_payload(x, eb_abs, (lo, hi)))

    def _header_head(self, x: np.ndarray) -> bytes:
        """frame.header_head of this codec for x's dtype and shape, kept (a codec codes few shapes)."""
        key = (x.dtype, x.shape)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= 64:
                self._heads.clear()
            head = self._heads[key] = header_head(self.get_config(), x.dtype, x.shape)
        return head

    def encode_payload(self, x: np.ndarray, eb_abs: float | None, value_range: tuple[float, float] | None = None):
        """The payload of x at ``eb_abs`` (``value_range``: x's finite range, when known)."""
        if self._kernel is not None and x.size and x.dtype in ErrorBoundedCodec.dtypes:
            payload = self._encode_compiled(x, eb_abs, value_range)
            if payload is not None:
                return payload
        if not self.lossy:
            streams = self._row_streams(x.reshape(-1, row_width(x.shape))) if self._dedup else (x,)
            return join_sections([self._code(s) for s in streams])
        if self._dedup:
            q, streams = self._quantize_distinct_rows(x, eb_abs)
        else:
            q = self._quantizer.quantize(x, eb_abs)
            streams = (q.codes,)
        return join_sections([LinearQuantizer.pack_side(q)] + [self._code(s) for s in streams])

    def _encode_compiled(self, x: np.ndarray, eb_abs: float, value_range) -> bytes | None:
        lo, hi = _value_range(x) if value_range is None else value_range
        grid = Grid.for_range(lo, hi, eb_abs)
        cdt = self._quantizer.code_dtype(grid, lo, hi)
        qmax, esc = code_limits(cdt)
        flat = x.reshape(-1)
        row_stage, coder = self._kernel
        ws = entropy._workspace
        out, end = _encode_table(flat, flat.size // row_width(x.shape), grid.base, grid.step, float(eb_abs),
                                 float(qmax), esc & (0xFF if cdt.itemsize == 1 else 0xFFFF),
                                 np.empty(flat.size, np.uint8 if cdt.itemsize == 1 else np.uint16), row_stage,
                                 coder._coder, coder.lanes,
                                 coder.chunk, ws.counts, ws.enc, ws.henc)
        return out[:end].tobytes() if end >= 0 else None

    def _quantize_distinct_rows(self, x: np.ndarray, eb_abs: float) -> tuple[Quantized, tuple]:
        """Quantize only the distinct rows of x (rows that repeat exactly share their codes), then
        dedup the codes: the same streams as quantizing everything first, for a fraction of the work.
        Escapes are stored per element of x, so with any escape every row is quantized."""
        rows = x.reshape(-1, row_width(x.shape))
        distinct, first = dedup_rows(rows)
        q = self._quantizer.quantize(distinct, eb_abs, value_range=finite_range(x))
        if q.escapes.size:
            q = self._quantizer.quantize(x, eb_abs)
            return q, self._row_streams(q.codes.reshape(rows.shape))
        unique, second = dedup_rows(q.codes)
        inverse = second[first].astype(index_dtype(unique.shape[0]))
        return q, ((unique, matches_of(inverse)) if self._rows == "match" else (unique, inverse))

    def _dedup_streams(self, sections, header: FrameHeader) -> tuple[np.ndarray, np.ndarray]:
        """(unique rows [U, W], inverse [R]) decoded and checked against the frame's shape."""
        limit = output_limit(header)
        unique, inverse = self._uncode(sections[0], limit), self._uncode(sections[1], limit)
        width = row_width(header.shape)
        if unique.size % width or inverse.size != header.size // width or inverse.dtype.kind != "u":
            raise CorruptStreamError(f"{self.name}: {self._rows} streams do not match the frame shape")
        unique = unique.reshape(-1, width)
        if self._rows == "match":
            inverse = inverse_of(inverse, unique.shape[0])
            if inverse is None:
                raise CorruptStreamError(f"{self.name}: matches name rows not sent, or not every row sent")
        if inverse.size and (unique.shape[0] == 0 or int(inverse.max()) >= unique.shape[0]):
            raise CorruptStreamError(f"{self.name}: dedup index out of range")
        return unique, inverse

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        if codes.dtype not in CODE_DTYPES.values():
            raise CorruptStreamError(f"{self.name}: codes of dtype {codes.dtype}")
        return codes

    def decode_payload(self, payload, header: FrameHeader, out: np.ndarray | None = None) -> np.ndarray:
        """The array of a payload; ``out`` (the frame's dtype and shape, C-contiguous): where the
        compiled path writes it."""
        if self._kernel is not None and header.size and header.dtype in ErrorBoundedCodec.dtypes:
            out = np.empty(header.shape, header.dtype) if out is None else out
            row_stage, coder = self._kernel
            try:
                status = _decode_table(np.frombuffer(payload, np.uint8), row_stage, coder._coder,
                                       row_width(header.shape), output_limit(header), out.reshape(-1))
            except MemoryError:
                status = _UNSUPPORTED
            if status == _OK:
                return out
        return self._decode_staged(payload, header)

    def _decode_staged(self, payload, header: FrameHeader) -> np.ndarray:
        """Stage by stage, in numpy: any recipe, and the message of every error."""
        sections = split_sections(payload)
        n_expected = int(self.lossy) + (2 if self._dedup else 1)
        if len(sections) != n_expected:
            raise CorruptStreamError(f"{self.name}: {len(sections)} sections, expected {n_expected}")
        if self.lossy:
            grid, escapes = LinearQuantizer.unpack_side(sections[0], header.dtype)
            sections = sections[1:]
        if self._dedup:
            unique, inverse = self._dedup_streams(sections, header)
            if self.lossy and not escapes.size:  # dequantize while expanding the unique rows
                codes = self._check_codes(unique)
                return LinearQuantizer.dequantize_rows(codes, inverse, grid, header.dtype).reshape(header.shape)
            values = unique[inverse]
        else:
            values = self._uncode(sections[0], output_limit(header))
        if values.size != header.size:
            raise CorruptStreamError(f"{self.name}: {values.size} values decoded, frame says {header.size}")
        values = values.reshape(header.shape)
        if not self.lossy:
            return values
        return LinearQuantizer.dequantize(Quantized(self._check_codes(values), escapes, grid), header.dtype)

    # -- batches -------------------------------------------------------------------------------
    def encode_batch(self, xs, threads: int = 1) -> list[bytes]:
        """Arrays -> one frame each (the frames ``encode`` writes); ``threads`` > 1 codes the
        tables of a compiled recipe in parallel where they are large enough to pay
        (:data:`THREAD_MIN_ELEMENTS` on average): its kernels release the GIL. The library stages
        of the other recipes keep per-object state, so they code one table at a time."""
        xs = list(xs)
        parallel = self._kernel is not None and _worth_threads([np.size(x) for x in xs])
        return _map(self.encode, xs, threads if parallel else 1)

    def decode_batch(self, frames, threads: int = 1, out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Frames of this codec -> one array each; ``threads`` as in :meth:`encode_batch`.

        The compiled recipes write the arrays of a batch into ``out`` (arrays of the frames' dtypes
        and shapes, e.g. an all-to-all's receive buffers) or, by default, into views of one
        buffer, which the next batch on this thread reuses once none of these arrays is alive: a
        fresh allocation costs a page fault every 4 KiB (2.5 us each on the 2-core test machine,
        more than decoding at 8192 x 64 fp32 a table) or, with huge pages, compaction stalls."""
        if self._kernel is None:
            return _map(self.decode, frames, 1)
        parsed = [unpack(f) for f in frames]
        headers = [h for h, _ in parsed]
        if out is None:
            out = _shared_arrays(headers)
        elif len(out) != len(parsed) or any(not (o.dtype == h.dtype and o.shape == h.shape and o.flags.c_contiguous
                                                 and o.flags.writeable) for o, h in zip(out, headers)):
            raise ValueError("decode_batch: out needs one writable C-contiguous array a frame, of its dtype and shape")
        return _map(lambda i: decode_checked(_Into(self, out[i]), parsed[i][1], headers[i]), range(len(parsed)),
                    threads if _worth_threads([h.size for h in headers]) else 1)


class _Into:
    """What :func:`~dlrmcomp.codecs.base.decode_checked` calls: a pipeline decoding into ``out``."""

    def __init__(self, codec: Pipeline, out: np.ndarray):
        self.codec, self.out, self.name = codec, out, codec.name

    def decode_payload(self, payload, header: FrameHeader) -> np.ndarray:
        return self.codec.decode_payload(payload, header, self.out)


class _Spare(threading.local):
    """The last buffer :func:`_shared_arrays` handed out on this thread: reused once no array of it
    is alive (a batch decoded after the last one was let go writes into memory already mapped)."""

    buf: np.ndarray | None = None


_spare = _Spare()
SPARE_MAX_BYTES = 1 << 29  # a larger buffer is not kept


def _shared_arrays(headers) -> list[np.ndarray]:
    """Empty arrays of the headers' dtypes and shapes, as 64-byte aligned views of one buffer."""
    sizes = [h.size * h.dtype.itemsize for h in headers]
    starts = np.concatenate([[0], np.cumsum([-(-n // 64) * 64 for n in sizes])]).astype(np.int64)
    need = int(starts[-1]) + 64
    buf = _spare.buf
    # getrefcount: this name, the attribute and its own argument; any other is a live array of the buffer
    if buf is None or sys.getrefcount(buf) > 3 or not need <= buf.size <= 2 * need:
        buf = np.empty(need, np.uint8)
        _spare.buf = buf if need <= SPARE_MAX_BYTES else None
    base = -buf.ctypes.data % 64
    return [buf[base + a:base + a + n].view(h.dtype).reshape(h.shape)
            for a, n, h in zip(starts.tolist(), sizes, headers)]


_pools: dict[int, ThreadPoolExecutor] = {}
#: threads pay from tables of this many elements on (2 cores, 2026-12-01: at 128 x 64 a batch of 26
#: tables codes 0.6-0.75x as fast on 2 threads as on one, the Python around each table holding the
#: GIL; at 1024 x 64 1.1-1.35x, at 65536 x 64 1.65-1.7x)
THREAD_MIN_ELEMENTS = 1 << 15


def _worth_threads(sizes) -> bool:
    return len(sizes) > 1 and sum(sizes) >= THREAD_MIN_ELEMENTS * len(sizes)


def _map(fn, items, threads: int) -> list:
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        return [fn(a) for a in items]
    pool = _pools.get(threads)
    if pool is None:
        pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="dlrmcomp-codec")
    return list(pool.map(fn, items))
