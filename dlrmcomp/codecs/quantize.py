"""The error-bounded linear quantizer (SZ3's ``LinearQuantizer`` without prediction).

``q = round((x - base) / step)`` with ``step = 2 * eb_abs`` and ``base`` a multiple of ``step``
near the middle of the range, so the reconstruction grid is the seeds' ``round(x/2eb)*2eb``
while the codes stay centred. Every element is checked after reconstruction *in the output
dtype*; elements that miss the bound, overflow the code range or are not finite get the escape
code and are stored verbatim, in order.
"""
from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass

import numpy as np

from ..errorbound import finite_range
from ..errors import CorruptStreamError
from ._jit import njit
from .frame import join_sections, split_sections

CODE_DTYPES = {"int8": np.dtype(np.int8), "int16": np.dtype(np.int16)}


@functools.lru_cache(maxsize=None)
def code_limits(code_dtype: np.dtype) -> tuple[int, int]:
    """(largest usable |code|, escape code) for int8 / int16 codes."""
    info = np.iinfo(code_dtype)
    return int(info.max), int(info.min)


@dataclass(frozen=True)
class Grid:
    """Reconstruction grid: value = base + code * step (float64), cast to the data dtype."""

    base: float
    step: float

    @classmethod
    def for_range(cls, lo: float, hi: float, eb_abs: float) -> "Grid":
        step = 2.0 * eb_abs
        mid = 0.5 * lo + 0.5 * hi
        if not (math.isfinite(step) and step > 0 and math.isfinite(1.0 / step)):
            return cls(base=mid, step=0.0)  # degenerate: only exact values are kept
        k = mid / step + 0.5
        if not math.isfinite(k):  # the grid cannot reach the data: every value escapes
            return cls(base=mid, step=0.0)
        base = math.floor(k) * step
        return cls(base=base if math.isfinite(base) else mid, step=step)

    def max_code(self, lo: float, hi: float) -> float:
        if self.step == 0.0:
            return 0.0
        return max(abs((lo - self.base) / self.step), abs((hi - self.base) / self.step))


def _quantizer_for(value_type):
    """The quantize kernel of one input dtype (``value_type``: np.float32 / np.float64)."""

    @njit(cache=True, nogil=True)
    def quantize(flat, base, step, eb_abs, qmax, esc, codes):
        inv = 1.0 / step if step > 0.0 else 0.0
        n_esc = 0
        for i in range(flat.size):
            x = np.float64(flat[i])
            q = np.floor((x - base) * inv + 0.5)
            recon = np.float64(value_type(base + q * step))
            ok = (abs(x - recon) <= eb_abs) & (abs(q) <= qmax)
            # choosing before the int conversion (a code or the escape, both in range) vectorises
            codes[i] = np.int32(q if ok else esc)
            n_esc += np.int64(not ok)
        return n_esc

    return quantize


_quantize_f32, _quantize_f64 = _quantizer_for(np.float32), _quantizer_for(np.float64)


@njit(cache=True, nogil=True)
def _quantize_kernel(flat, base, step, eb_abs, qmax, esc, codes):
    """codes[i] = round((x - base) / step), or ``esc`` where the reconstruction, rounded to
    x's dtype, misses the bound, the code overflows or x is not finite. Returns the escape count.
    One branch-free loop a dtype, so it vectorises. ``codes`` may be the unsigned view of the
    code dtype (``esc`` then is the escape code's bits)."""
    if flat.itemsize == 4:
        return _quantize_f32(flat, base, step, eb_abs, qmax, esc, codes)
    return _quantize_f64(flat, base, step, eb_abs, qmax, esc, codes)


@njit(cache=True, nogil=True)
def _dequantize_kernel(codes, base, step, out):
    """out = base + codes * step, rounded to out's dtype (the same expression as the encoder's)."""
    for i in range(codes.size):
        out[i] = base + codes[i] * step


@njit(cache=True, nogil=True)
def _gather_rows_kernel(rows, inverse, out):
    """out[r] = rows[inverse[r]] for 2-D rows (a row copy the compiler vectorises)."""
    for r in range(inverse.size):
        u = inverse[r]
        for j in range(rows.shape[1]):
            out[r, j] = rows[u, j]


@dataclass(frozen=True)
class Quantized:
    """Output of :meth:`LinearQuantizer.quantize`: codes (x's shape), escapes, grid."""

    codes: np.ndarray
    escapes: np.ndarray
    grid: Grid


_HEAD = struct.Struct("<2sddQ")


class LinearQuantizer:
    """Float array + absolute bound -> integer codes + verbatim escapes (a pipeline stage).

    ``dtype`` is "int8", "int16" or "auto" (int8 when the code range fits, else int16).
    """

    def __init__(self, dtype: str = "auto"):
        if dtype not in ("auto", *CODE_DTYPES):
            raise ValueError(f"code dtype must be 'auto', 'int8' or 'int16', got {dtype!r}")
        self.dtype = dtype

    def code_dtype(self, grid: Grid, lo: float, hi: float) -> np.dtype:
        if self.dtype != "auto":
            return CODE_DTYPES[self.dtype]
        return CODE_DTYPES["int8"] if grid.max_code(lo, hi) <= code_limits(CODE_DTYPES["int8"])[0] else CODE_DTYPES["int16"]

    def quantize(self, x: np.ndarray, eb_abs: float, value_range: tuple[float, float] | None = None) -> Quantized:
        """Codes of x (x's shape); the grid comes from ``value_range`` (default: x's finite range)."""
        lo, hi = finite_range(x) if value_range is None else value_range
        grid = Grid.for_range(lo, hi, eb_abs)
        cdt = self.code_dtype(grid, lo, hi)
        qmax, esc = code_limits(cdt)
        flat = np.ascontiguousarray(x).reshape(-1)
        codes = np.empty(flat.size, dtype=cdt)
        n_esc = _quantize_kernel(flat, grid.base, grid.step, float(eb_abs), float(qmax), esc, codes)
        escapes = flat[codes == esc] if n_esc else flat[:0].copy()
        return Quantized(codes.reshape(x.shape), escapes, grid)

    @staticmethod
    def dequantize(q: Quantized, dtype: np.dtype) -> np.ndarray:
        codes = q.codes.reshape(-1)
        out = np.empty(codes.size, dtype=dtype)
        _dequantize_kernel(codes, q.grid.base, q.grid.step, out)
        if q.escapes.size or codes.size:
            at = np.flatnonzero(codes == code_limits(codes.dtype)[1])
            if at.size != q.escapes.size:
                raise CorruptStreamError(f"escape count mismatch ({at.size} escape codes, {q.escapes.size} values)")
            out[at] = q.escapes
        return out.reshape(q.codes.shape)

    @staticmethod
    def dequantize_rows(codes: np.ndarray, inverse: np.ndarray, grid: Grid, dtype: np.dtype) -> np.ndarray:
        """Escape-free unique code rows [U, W] + inverse [R] -> reconstruction [R, W] (= dequantize(codes[inverse]))."""
        rows = np.empty(codes.shape, dtype=dtype)
        _dequantize_kernel(codes.reshape(-1), grid.base, grid.step, rows.reshape(-1))
        out = np.empty((inverse.size, codes.shape[1]), dtype=dtype)
        _gather_rows_kernel(rows, inverse, out)
        return out

    # -- side information: grid + escapes; the codes travel through the coder stages -------
    @staticmethod
    def pack_side(q: Quantized) -> bytes:
        return join_sections([_HEAD.pack(b"LQ", q.grid.base, q.grid.step, q.escapes.size), q.escapes.tobytes()])

    @staticmethod
    def unpack_side(buf, dtype: np.dtype) -> tuple[Grid, np.ndarray]:
        head, esc = split_sections(buf)
        if len(head) != _HEAD.size:
            raise CorruptStreamError("quantizer header corrupt")
        tag, base, step, n = _HEAD.unpack(head)
        if tag != b"LQ" or n * dtype.itemsize != len(esc) or not step >= 0:
            raise CorruptStreamError("quantizer header corrupt")
        return Grid(base, step), np.frombuffer(esc, dtype=dtype)


def quantize_dequantize(x: np.ndarray, eb_abs: float, dtype: str = "auto") -> np.ndarray:
    """What a quantizer-based codec reconstructs for ``x`` (the ``simulate`` mode's operator)."""
    quantizer = LinearQuantizer(dtype)
    return quantizer.dequantize(quantizer.quantize(x, eb_abs), x.dtype)
