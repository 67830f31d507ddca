"""DCT+Chop (HPDC'24, seed 002): a lossy compressor made of matrix multiplies, and its codecs.

Every 8x8 block of an image gets its orthonormal 2-D DCT-II; only the top-left ``cf x cf``
corner (the low frequencies) is kept, rounded to integers. Decompression zero-fills the rest
and inverts. Only ``matmul``, ``add`` and a cast are needed, so it runs on any torch device
(the seed's point: every AI accelerator multiplies matrices).

:class:`DctChop` compresses batches ``(N, C, H, W)`` in two forms that give the same numbers:

- ``"grown"``, the seed's reference: the 8x8 basis ``T`` grown onto the block diagonal ``D``
  and a 0/1 mask ``M`` keeping the first ``cf`` rows of every 8, per axis;
  ``coeffs = lhs @ (A - offset) @ rhs`` with ``lhs = M D`` (rows), ``rhs = D^T M^T`` (columns);
  decompression with the transposes. Dense matrices: O(H + W) work per value.
- ``"blockwise"`` (default): the same product block by block, ``T[:cf] @ block @ T[:cf]^T``, as
  two reshaped matmuls: O(8) work per value.

Coefficient layout, both forms (the seed's): ``(N, C, Hp/8*cf, Wp/8*cf)``, element
``(i*cf + k, j*cf + w)`` is frequency ``(k, w)`` of block ``(i, j)``. Options:

- ``fold``, the seed's Graphcore "diagonal fold": only ``k + w < cf`` of each corner is kept (a
  gather; ``cf(cf+1)/2`` values a block), layout ``(N, C, blocks, cf(cf+1)/2)``; restored by scatter.
- ``sfactor``, the seed's high-resolution option: each image is reshaped in memory into
  ``sfactor**2`` images of ``(H/s, W/s)`` first, so the grown matrices shrink ``s``-fold.
- What the seed leaves out: any ``H`` and ``W`` (edge-replicated up to multiples of
  ``8*sfactor``, recorded as ``Chopped.padded``), any float data (``offset`` and ``scale``
  recorded; the codecs map the finite range onto ``LEVELS`` steps, as the seed's 0-255 pixels
  minus 128), and true rounding (``rounding="seed"`` reproduces its ``+0.5`` then integer cast,
  which truncates negative coefficients toward zero).

Codecs writing our frames: ``dct`` (``cf``, ``fold``, ``dtype`` of the stored coefficients,
``sfactor``; no bound: the frame records the ``max_abs_err`` and ``psnr`` it achieved) and
``dct+quant`` (error-bounded: integer coefficients entropy-coded, then our quantizer and coder
on the residual). Frames are decoded by :func:`inverse_reproducible` (fixed-order float64
multiply-adds), so every machine reconstructs the same bits and the residual of ``dct+quant``
lands exactly where the encoder verified it.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..errorbound import finite_range
from ..errors import CorruptStreamError
from ._jit import njit
from .base import Codec, ErrorBoundedCodec
from .floats import VerifiedPayload
from .frame import FrameHeader, join_sections, split_sections
from .pipeline import Pipeline, parse_recipe

BLOCK = 8
#: integer steps the codecs map a field's finite range onto (an 8-bit image: 0..255)
LEVELS = 255
FORMS = ("blockwise", "grown")
ROUNDINGS = ("nearest", "seed", "none")
COEFF_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_COMPUTE = (torch.float32, torch.float64, torch.bfloat16)


def dct_basis(n: int = BLOCK) -> np.ndarray:
    """The orthonormal DCT-II matrix (n x n, float64), as the seed's ``generate_T``: row 0 is
    ``1/sqrt(n)``, row i is ``sqrt(2/n) cos((2j+1) i pi / 2n)``."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    t = np.sqrt(2 / n) * np.cos((2 * j + 1) * i * np.pi / (2 * n))
    t[0] = 1 / np.sqrt(n)
    return t


def grown_lhs(pixels: int, cf: int) -> np.ndarray:
    """The seed's ``lhs = M D`` for an axis of ``pixels`` (a multiple of 8): ``(cf*pixels/8, pixels)``.

    ``D`` is the basis on the block diagonal, ``M`` keeps rows ``0..cf-1`` of every block, so
    ``M D`` is ``T[:cf]`` on the block diagonal, built here without the dense ``D``.
    ``rhs = D^T M^T`` is its transpose.
    """
    if pixels % BLOCK:
        raise ValueError(f"grown matrices need a multiple of {BLOCK} pixels, got {pixels}")
    t = dct_basis()
    lhs = np.zeros((cf * (pixels // BLOCK), pixels))
    for b in range(pixels // BLOCK):
        lhs[b * cf:(b + 1) * cf, b * BLOCK:(b + 1) * BLOCK] = t[:cf]
    return lhs


def fold_index(cf: int) -> np.ndarray:
    """Positions ``k*cf + w`` with ``k + w < cf`` in a ``cf x cf`` corner, in the seed's order."""
    return np.array([k * cf + w for k in range(cf) for w in range(cf - k)], dtype=np.int64)


#: the blockwise form works on tiles of up to this many pixels per axis
TILE = 64


def _tile(pixels: int) -> int:
    """The largest of TILE, TILE/2, ..., 8 that divides ``pixels`` (a multiple of 8)."""
    tile = TILE
    while pixels % tile:
        tile //= 2
    return tile


@lru_cache(maxsize=64)
def _grown(pixels: int, cf: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M D, D^T M^T)`` for one axis, on a device."""
    lhs = torch.as_tensor(grown_lhs(pixels, cf), dtype=dtype, device=device)
    return lhs, lhs.T.contiguous()


@lru_cache(maxsize=64)
def _fold_index(cf: int, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(fold_index(cf), device=device)


@dataclass(frozen=True)
class Chopped:
    """Coefficients of a batch and what inverting them needs.

    ``coeffs``: ``(N, C, Hp/8*cf, Wp/8*cf)``, or folded ``(N, C, Hp*Wp/64, cf(cf+1)/2)``;
    ``shape``: the ``(N, C, H, W)`` compressed; ``padded``: ``(Hp, Wp)``, edge-replicated up to
    multiples of ``8*sfactor``; values were transformed as ``(x - offset) / scale``.
    """

    coeffs: torch.Tensor
    shape: tuple[int, int, int, int]
    padded: tuple[int, int]
    offset: float
    scale: float

    @property
    def nbytes(self) -> int:
        return self.coeffs.numel() * self.coeffs.element_size()


def range_map(x) -> tuple[float, float]:
    """``(offset, scale)`` putting the finite range of ``x`` on ``[-LEVELS/2, LEVELS/2]``."""
    if isinstance(x, torch.Tensor):
        lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    else:
        lo, hi = finite_range(x)
    offset = 0.5 * lo + 0.5 * hi
    scale = 2 * (0.5 * hi - 0.5 * lo) / LEVELS
    return offset, (scale if math.isfinite(scale) and scale > 0 else 1.0)


@dataclass(frozen=True)
class DctChop:
    """DCT+Chop over ``(N, C, H, W)`` float tensors on any torch device.

    ``cf`` 1..8: the kept corner; ``fold``: keep its upper-left triangle only; ``sfactor``: the
    seed's memory reshape; ``form``: "blockwise" (fast) or "grown" (the seed's matrices);
    ``rounding``: "nearest" (true rounding), "seed" (``+0.5`` then truncate) or "none";
    ``dtype``: of the coefficients, "float32" or "bfloat16" (the seed's two).

    >>> chop = DctChop(cf=8)
    >>> x = torch.rand(2, 3, 20, 12, dtype=torch.float64) * 255
    >>> bool((chop.decompress(chop.compress(x), torch.float64) - x).abs().max() < 0.5)
    True
    """

    cf: int = 4
    fold: bool = False
    sfactor: int = 1
    form: str = "blockwise"
    rounding: str = "nearest"
    dtype: str = "float32"

    def __post_init__(self):
        if isinstance(self.cf, bool) or not isinstance(self.cf, (int, np.integer)) or not 1 <= self.cf <= BLOCK:
            raise ValueError(f"chop factor cf must be an integer in 1..{BLOCK}, got {self.cf!r}")
        if isinstance(self.sfactor, bool) or not isinstance(self.sfactor, (int, np.integer)) or self.sfactor < 1:
            raise ValueError(f"sfactor must be an integer >= 1, got {self.sfactor!r}")
        if not isinstance(self.fold, (bool, np.bool_)):
            raise ValueError(f"fold must be true or false, got {self.fold!r}")
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        if self.dtype not in COEFF_DTYPES:
            raise ValueError(f"coefficient dtype must be one of {tuple(COEFF_DTYPES)}, got {self.dtype!r}")
        for name in ("cf", "sfactor"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "fold", bool(self.fold))

    @property
    def kept(self) -> int:
        """Coefficients kept per 8x8 block."""
        return self.cf * (self.cf + 1) // 2 if self.fold else self.cf * self.cf

    def padded_size(self, h: int, w: int) -> tuple[int, int]:
        m = BLOCK * self.sfactor
        return -(-h // m) * m, -(-w // m) * m

    def coeff_shape(self, shape: tuple[int, int, int, int]) -> tuple[int, ...]:
        """Shape of the coefficients of an ``(N, C, H, W)`` batch."""
        n, c, h, w = shape
        hp, wp = self.padded_size(h, w)
        if self.fold:
            return n, c, hp * wp // BLOCK ** 2, self.kept
        return n, c, hp // BLOCK * self.cf, wp // BLOCK * self.cf

    def ratio(self, in_dtype: torch.dtype = torch.float32) -> float:
        """Bytes in / bytes of coefficients for a batch whose sides are multiples of 8*sfactor."""
        out = torch.empty((), dtype=COEFF_DTYPES[self.dtype]).element_size()
        return BLOCK ** 2 * torch.empty((), dtype=in_dtype).element_size() / (self.kept * out)

    # -- compress / decompress -----------------------------------------------------------------
    def compress(self, x: torch.Tensor, offset: float | None = None, scale: float | None = None) -> Chopped:
        """``(N, C, H, W)`` floats -> :class:`Chopped` on x's device. ``offset`` / ``scale``
        default to :func:`range_map` of x (the seed uses 128 and 1 for 0-255 images)."""
        if x.dim() != 4 or not x.is_floating_point() or 0 in x.shape:
            raise ValueError(f"DctChop compresses non-empty float (N, C, H, W) tensors, got {x.dtype} {tuple(x.shape)}")
        if offset is None or scale is None:
            auto_offset, auto_scale = range_map(x)
            offset = auto_offset if offset is None else offset
            scale = auto_scale if scale is None else scale
        n, c, h, w = x.shape
        hp, wp = self.padded_size(h, w)
        s = self.sfactor
        work = x if x.dtype in _COMPUTE else x.float()
        if (hp, wp) != (h, w):
            work = F.pad(work, (0, wp - w, 0, hp - h), mode="replicate")
        work = work.reshape(n, c * s * s, hp // s, wp // s)
        coeffs = self._rounded(self._forward(work, float(offset), float(scale)))
        if self.fold:
            coeffs = self._fold(coeffs)
        coeffs = coeffs.to(COEFF_DTYPES[self.dtype]).reshape(self.coeff_shape((n, c, h, w)))
        return Chopped(coeffs, (n, c, h, w), (hp, wp), float(offset), float(scale))

    def decompress(self, chopped: Chopped, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """:class:`Chopped` -> ``(N, C, H, W)`` in ``dtype`` on the coefficients' device (bf16 and
        fp32 are the seed's; the matmuls run in ``dtype``, or fp32 for other dtypes)."""
        n, c, h, w = chopped.shape
        hp, wp = chopped.padded
        s, cf = self.sfactor, self.cf
        if chopped.coeffs.shape != self.coeff_shape(chopped.shape):
            raise ValueError(f"coefficients {tuple(chopped.coeffs.shape)} do not match {self} on {chopped.shape}")
        work = dtype if dtype in _COMPUTE else torch.float32
        coeffs = chopped.coeffs.to(work)
        sub = (hp // s // BLOCK, wp // s // BLOCK)  # blocks of one sub-image
        if self.fold:
            coeffs = self._unfold(coeffs.reshape(n, c * s * s, sub[0] * sub[1], self.kept), *sub)
        else:
            coeffs = coeffs.reshape(n, c * s * s, sub[0] * cf, sub[1] * cf)
        y = self._inverse(coeffs, chopped.offset, chopped.scale).reshape(n, c, hp, wp)
        if (hp, wp) != (h, w):
            y = y[..., :h, :w].contiguous()
        return y.to(dtype)

    # -- the two forms --------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
        n, c, h, w = x.shape
        cf = self.cf
        if self.form == "grown":
            rows, _ = _grown(h, cf, x.dtype, x.device)
            _, cols = _grown(w, cf, x.dtype, x.device)
            a = x - offset
            if scale != 1.0:
                a = a / scale
            return torch.matmul(rows, torch.matmul(a, cols))
        # columns: each tile of tw pixels of a row times the grown matrix of one tile (T[:cf]^T on
        # its block diagonal, / scale): one GEMM with K = tw; then rows: each tile of th rows from
        # the left, a batched GEMM. Tiles hold whole 8x8 blocks, so this is the same product as
        # the grown form at O(tile) instead of O(H + W) work per value.
        th, tw = _tile(h), _tile(w)
        rows, _ = _grown(th, cf, x.dtype, x.device)
        _, cols = _grown(tw, cf, x.dtype, x.device)
        half = torch.mm(x.reshape(-1, tw), cols / scale)  # (n*c*h*w/tw, tw/8*cf) = (n*c*h, w/8*cf)
        out = torch.matmul(rows, half.view(n * c * h // th, th, w // BLOCK * cf))  # (n*c*h/th, th/8*cf, w/8*cf)
        # the offset only moves each block's DC term (rows 1.. of T sum to 0, row 0 to sqrt(8)),
        # so it is taken off there, on the small side, instead of in a pass over the input
        out.view(-1, cf, w // BLOCK, cf)[:, 0, :, 0] -= offset * BLOCK / scale
        return out.view(n, c, h // BLOCK * cf, w // BLOCK * cf)

    def _inverse(self, coeffs: torch.Tensor, offset: float, scale: float) -> torch.Tensor:
        n, c, hc, wc = coeffs.shape
        cf = self.cf
        hb, wb = hc // cf, wc // cf
        if self.form == "grown":
            rows, _ = _grown(hb * BLOCK, cf, coeffs.dtype, coeffs.device)
            _, cols = _grown(wb * BLOCK, cf, coeffs.dtype, coeffs.device)
            y = torch.matmul(rows.T, torch.matmul(coeffs, cols.T))
            return (y * scale if scale != 1.0 else y) + offset
        th, tw = _tile(hb * BLOCK), _tile(wb * BLOCK)
        rows, _ = _grown(th, cf, coeffs.dtype, coeffs.device)
        _, cols = _grown(tw, cf, coeffs.dtype, coeffs.device)
        half = torch.matmul(rows.T, coeffs.reshape(n * c * hb * BLOCK // th, th // BLOCK * cf, wc))  # (.., th, wc)
        # the offset as a DC term of every row segment (T's row 0 is 1/sqrt(8)), on the fresh half
        half.view(-1, wb, cf)[:, :, 0] += offset * math.sqrt(BLOCK) / scale
        out = torch.mm(half.view(-1, tw // BLOCK * cf), cols.T * scale)  # (n*c*h*w/tw, tw)
        return out.view(n, c, hb * BLOCK, wb * BLOCK)

    def _rounded(self, coeffs: torch.Tensor) -> torch.Tensor:
        if self.rounding == "nearest":
            return coeffs.round_()
        if self.rounding == "seed":  # the seed's add(0.5).to(int32): truncation toward zero
            return coeffs.add_(0.5).trunc_()
        return coeffs

    def _fold(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(n, c, hb*cf, wb*cf) -> (n, c, hb*wb, kept): the gather of the seed's ``apply_diagonal_fold``."""
        n, c, hc, wc = coeffs.shape
        cf = self.cf
        blocks = coeffs.view(n, c, hc // cf, cf, wc // cf, cf).permute(0, 1, 2, 4, 3, 5)
        flat = blocks.reshape(n, c, (hc // cf) * (wc // cf), cf * cf)
        return flat.index_select(-1, _fold_index(cf, coeffs.device))

    def _unfold(self, values: torch.Tensor, hb: int, wb: int) -> torch.Tensor:
        """(n, c, hb*wb, kept) -> (n, c, hb*cf, wb*cf), zeros elsewhere (the seed's scatter)."""
        n, c, _, _ = values.shape
        cf = self.cf
        full = values.new_zeros((n, c, hb * wb, cf * cf))
        full.index_copy_(-1, _fold_index(cf, values.device), values)
        return full.view(n, c, hb, wb, cf, cf).permute(0, 1, 2, 4, 3, 5).reshape(n, c, hb * cf, wb * cf)


@njit(cache=True, nogil=True)
def _forward_kernel(x, t, offset, scale, out):
    """x (M, hb*8, wb*8) -> out (M, hb, cf, wb, cf): per block, ``(x - offset)`` times T[:cf]^T,
    then T[:cf] from the left, ``/ scale`` (the blockwise product, single-threaded)."""
    m, hb, cf, wb, _ = out.shape
    half = np.empty((8, cf))
    for i in range(m):
        for bi in range(hb):
            for bj in range(wb):
                for a in range(8):
                    for w in range(cf):
                        acc = 0.0
                        for b in range(8):
                            acc += (x[i, bi * 8 + a, bj * 8 + b] - offset) * t[w, b]
                        half[a, w] = acc
                for k in range(cf):
                    for w in range(cf):
                        acc = 0.0
                        for a in range(8):
                            acc += t[k, a] * half[a, w]
                        out[i, bi, k, bj, w] = acc / scale


@njit(cache=True, nogil=True)
def _inverse_kernel(c, t, scale, offset, out):
    """c (M, hb, cf, wb, cf) -> out (M, hb*8, wb*8): per block, rows of T^T C then times T, each
    sum in a fixed order, then ``* scale + offset``."""
    m, hb, cf, wb, _ = c.shape
    half = np.empty((cf, 8))
    for i in range(m):
        for bi in range(hb):
            for bj in range(wb):
                for k in range(cf):
                    for b in range(8):
                        acc = 0.0
                        for w in range(cf):
                            acc += c[i, bi, k, bj, w] * t[w, b]
                        half[k, b] = acc
                for a in range(8):
                    for b in range(8):
                        acc = 0.0
                        for k in range(cf):
                            acc += t[k, a] * half[k, b]
                        out[i, bi * 8 + a, bj * 8 + b] = acc * scale + offset


def inverse_reproducible(coeffs: np.ndarray, cf: int, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """``(M, hb*cf, wb*cf)`` coefficients -> ``(M, hb*8, wb*8)`` float64 values ``* scale + offset``.

    The blockwise inverse as fixed-order float64 multiply-adds in a compiled loop (no BLAS, no
    fused multiply-add, no reordering), so every machine gets the same bits: what frames decode with.
    """
    m, hc, wc = coeffs.shape
    c = np.ascontiguousarray(coeffs, dtype=np.float64).reshape(m, hc // cf, cf, wc // cf, cf)
    out = np.empty((m, hc // cf * BLOCK, wc // cf * BLOCK))
    _inverse_kernel(c, dct_basis(), float(scale), float(offset), out)
    return out


# -- codecs ------------------------------------------------------------------------------------
def image_view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """How a frame's array is read as images ``(N, H, W)``: the last two axes are H and W, the
    leading ones the batch; a 1-D array is one row, a scalar one pixel."""
    if len(shape) < 2:
        return 1, 1, (shape[0] if shape else 1)
    return math.prod(shape[:-2]), shape[-2], shape[-1]


_HEAD = struct.Struct("<2sdd")


def host_chop(chop: DctChop, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A frame's finite array -> (coefficients in ``chop.coeff_shape``, float64, rounded as
    ``chop.rounding`` says; offset; scale), its range on ``LEVELS`` steps. The same product as
    :class:`DctChop` on the CPU, by a single-threaded compiled loop (the CPU codecs' style)."""
    n, h, w = image_view(x.shape)
    offset, scale = range_map(x)
    hp, wp = chop.padded_size(h, w)
    s, cf = chop.sfactor, chop.cf
    work = np.asarray(x, dtype=np.float64).reshape(n, h, w)
    if (hp, wp) != (h, w):
        work = np.pad(work, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")
    work = np.ascontiguousarray(work).reshape(n * s * s, hp // s, wp // s)
    sub = (hp // s // BLOCK, wp // s // BLOCK)
    out = np.empty((n * s * s, sub[0], cf, sub[1], cf))
    _forward_kernel(work, dct_basis(), offset, scale, out)
    if chop.rounding == "nearest":
        np.rint(out, out=out)
    elif chop.rounding == "seed":
        np.trunc(out + 0.5, out=out)
    if chop.fold:
        out = out.transpose(0, 1, 3, 2, 4).reshape(n * s * s, sub[0] * sub[1], cf * cf)[..., fold_index(cf)]
    return np.ascontiguousarray(out).reshape(chop.coeff_shape((n, 1, h, w))), offset, scale


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """Finite float32 values -> bf16 bit patterns (uint16), rounded to nearest even as torch does."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """bf16 bit patterns -> float32 (bf16 is the top half of a float32)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def unchop_array(chop: DctChop, coeffs: np.ndarray, offset: float, scale: float, header: FrameHeader) -> np.ndarray:
    """Coefficients (float64, ``chop.coeff_shape``) -> the frame's array, by :func:`inverse_reproducible`."""
    n, h, w = image_view(header.shape)
    hp, wp = chop.padded_size(h, w)
    s, cf = chop.sfactor, chop.cf
    sub = (hp // s // BLOCK, wp // s // BLOCK)
    if chop.fold:
        full = np.zeros((n * s * s, sub[0] * sub[1], cf * cf))
        full[..., fold_index(cf)] = coeffs.reshape(n * s * s, sub[0] * sub[1], chop.kept)
        coeffs = full.reshape(n * s * s, *sub, cf, cf).transpose(0, 1, 3, 2, 4)
    y = inverse_reproducible(coeffs.reshape(n * s * s, sub[0] * cf, sub[1] * cf), cf, scale, offset)
    return y.reshape(n, hp, wp)[:, :h, :w].astype(header.dtype).reshape(header.shape)


def _head(buf) -> tuple[float, float]:
    if len(buf) != _HEAD.size:
        raise CorruptStreamError("dct: header corrupt")
    tag, offset, scale = _HEAD.unpack(buf)
    if tag != b"DC" or not (math.isfinite(offset) and math.isfinite(scale) and scale > 0):
        raise CorruptStreamError("dct: header corrupt")
    return offset, scale


def _sections(buf, count: int, name: str) -> list:
    sections = split_sections(buf)
    if len(sections) != count:
        raise CorruptStreamError(f"{name}: {len(sections)} sections, expected {count}")
    return sections


class _DctCodec(VerifiedPayload):
    """What both DCT codecs share: the chop, the frame's shape as images, non-finite fill."""

    dtypes = ErrorBoundedCodec.dtypes

    def nonfinite_fill(self, x):
        return range_map(x)[0]  # the middle of the finite range: NaN/Inf disturb their block least

    def coeff_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        n, h, w = image_view(shape)
        return self._chop.coeff_shape((n, 1, h, w))


class Dct(_DctCodec, Codec):
    """``dct``: DCT+Chop coefficients stored as ``dtype`` (the seed's representation; ratio
    ``64/cf^2`` x bytes per value / bytes per coefficient, ``cf(cf+1)/2`` with ``fold``).

    No bound: the frame records the ``max_abs_err`` and ``psnr`` it achieved
    (``dlrmcomp info`` shows them). NaN and Inf are kept exactly (escapes).
    """

    codec_id = "dct"
    lossy = True

    def __init__(self, cf: int = 4, fold: bool = False, dtype: str = "float32", sfactor: int = 1):
        self._chop = DctChop(cf=cf, fold=fold, sfactor=sfactor, dtype=dtype)
        self.cf, self.fold, self.dtype, self.sfactor = self._chop.cf, self._chop.fold, self._chop.dtype, self._chop.sfactor

    def lib_compress(self, x, eb_abs):
        coeffs, offset, scale = host_chop(self._chop, x)
        raw = to_bfloat16_bits(coeffs) if self.dtype == "bfloat16" else coeffs.astype("<f4")
        return join_sections([_HEAD.pack(b"DC", offset, scale), raw.tobytes()])

    def lib_decompress(self, buf, header):
        head, raw = _sections(buf, 2, self.name)
        offset, scale = _head(head)
        shape = self.coeff_shape(header.shape)
        if len(raw) != math.prod(shape) * (2 if self.dtype == "bfloat16" else 4):
            raise CorruptStreamError(f"{self.name}: {len(raw)} coefficient bytes do not fit {shape}")
        if self.dtype == "bfloat16":
            coeffs = from_bfloat16_bits(np.frombuffer(raw, "<u2"))
        else:
            coeffs = np.frombuffer(raw, "<f4")
        return unchop_array(self._chop, coeffs.astype(np.float64), offset, scale, header)

    def frame_stats(self, x, payload):
        from ..api import verify
        from ..io import to_jsonable

        report = verify(x, self.decode_payload(payload, FrameHeader(self.get_config(), x.dtype, x.shape, None)))
        return to_jsonable({"max_abs_err": report["max_abs_err"], "psnr": report["psnr"]})


class DctQuant(_DctCodec, ErrorBoundedCodec):
    """``dct+quant``: error-bounded DCT+Chop. The rounded coefficients are coded as integers by
    the ``residual`` recipe's coders, the residual ``x - prediction`` (in x's dtype) by that
    recipe (our quantizer + coder) at the frame's bound; elements still off (float rounding) or
    not finite are stored verbatim, so every element meets the bound. ``cf`` 2 (the default) was the best
    single choice on the real fields at bounds 1e-2..1e-4; smooth fields gain from 3-4.
    """

    codec_id = "dct+quant"

    def __init__(self, eb: float | None = None, mode: str = "rel", cf: int = 2, fold: bool = False,
                 residual: str = "quant+ans"):
        super().__init__(eb, mode)
        quant, _, coders = parse_recipe(residual)
        if not quant or not coders:
            raise ValueError(f"residual must be a lossy recipe quant+...+coder, got {residual!r}")
        self._chop = DctChop(cf=cf, fold=fold)
        self.cf, self.fold, self.residual = self._chop.cf, self._chop.fold, residual
        self._residual = Pipeline(residual, eb=1.0, mode="abs")  # encode_payload takes the frame's bound
        self._coefficients = Pipeline("+".join(coders))

    def _prediction(self, codes: np.ndarray, offset: float, scale: float, header: FrameHeader) -> np.ndarray:
        f64 = FrameHeader({}, np.dtype(np.float64), header.shape, None)
        return unchop_array(self._chop, codes.astype(np.float64), offset, scale, f64)

    def lib_compress(self, x, eb_abs):
        coeffs, offset, scale = host_chop(self._chop, x)
        codes = coeffs.astype(np.int16 if np.abs(coeffs).max() <= np.iinfo(np.int16).max else np.int32)
        header = FrameHeader({}, x.dtype, x.shape, eb_abs)
        # the residual in x's dtype (the quantizer's kernels for it are the ones quant+* use); what
        # float rounding moves past the bound is caught by the final check and stored verbatim
        residual = (x.astype(np.float64) - self._prediction(codes, offset, scale, header)).astype(x.dtype)
        return join_sections([_HEAD.pack(b"DC", offset, scale),
                              self._coefficients.encode_payload(codes, None),
                              self._residual.encode_payload(residual, eb_abs)])

    def lib_decompress(self, buf, header):
        head, coded, residual = _sections(buf, 3, self.name)
        offset, scale = _head(head)
        shape = self.coeff_shape(header.shape)
        codes = self._coefficients.decode_payload(coded, FrameHeader({}, np.dtype(np.int32), shape, None))
        if codes.dtype.kind != "i":
            raise CorruptStreamError(f"{self.name}: coefficients of dtype {codes.dtype}")
        prediction = self._prediction(codes, offset, scale, header)
        residual = self._residual.decode_payload(residual, FrameHeader({}, header.dtype, header.shape, None))
        return (prediction + residual).astype(header.dtype)
