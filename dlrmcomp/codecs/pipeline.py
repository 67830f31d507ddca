"""A compressor is a recipe of small stages (SZ3's generic compressor), named by joining them.

``"quant+dedup+ans"`` = linear quantizer -> vector dedup -> rANS on each resulting stream.
Stages, in the order a recipe may use them:

- ``quant`` (first, lossy): :class:`~dlrmcomp.codecs.quantize.LinearQuantizer`
- ``dedup``: :func:`~dlrmcomp.codecs.dedup.dedup_rows` over rows of the last axis
- coders, chained: ``ans``, ``huffman`` (ours, :mod:`~dlrmcomp.codecs.entropy`), then byte
  back-ends ``zstd``, ``lz4``, ``zlib`` (:mod:`~dlrmcomp.codecs.lossless`)

Payload = sections: [quantizer side info] + one coded section per stream.
"""
from __future__ import annotations

import numpy as np

from ..errorbound import ErrorBound, finite_range
from ..errors import CorruptStreamError
from . import lossless
from .base import Codec, ErrorBoundedCodec
from .dedup import dedup_rows, index_dtype
from .frame import FrameHeader, as_bytes, join_sections, pack_array, split_sections, unpack_array
from .quantize import CODE_DTYPES, LinearQuantizer, Quantized

CODERS = ("ans", "huffman", "zstd", "lz4", "zlib")
LEVELED = {"zstd": 1, "zlib": 6}


def make_coder(name: str, level: int | None):
    """A coder stage by recipe name (``level`` for zstd / zlib)."""
    if name in ("ans", "huffman"):
        from . import entropy

        return entropy.Rans() if name == "ans" else entropy.Huffman()
    if name == "lz4":
        return lossless.Lz4()
    stage = lossless.Zstd if name == "zstd" else lossless.Zlib
    return stage(LEVELED[name] if level is None else level)


def parse_recipe(recipe: str) -> tuple[bool, bool, tuple[str, ...]]:
    """'quant+dedup+ans' -> (quantize, dedup, coders); ValueError for an invalid order."""
    stages = recipe.split("+")
    quant = stages[0] == "quant"
    rest = stages[1:] if quant else stages
    dedup = bool(rest) and rest[0] == "dedup"
    coders = tuple(rest[1:] if dedup else rest)
    bad = [s for s in coders if s not in CODERS]
    if bad or not (quant or dedup or coders):
        raise ValueError(f"invalid recipe {recipe!r}: use [quant+][dedup+]coder[+coder...] "
                         f"with coders from {CODERS}")
    return quant, dedup, coders


def row_width(shape: tuple[int, ...]) -> int:
    """Row length used by dedup: the last axis for >= 2-D arrays, else 1."""
    return shape[-1] if len(shape) >= 2 and shape[-1] > 0 else 1


def output_limit(header: FrameHeader) -> int:
    """Most bytes any stage may decode to for this frame (8 per element plus tables and headers):
    a forged length inside a stream is an error, not a huge allocation."""
    return 8 * header.size + (1 << 16)


class Pipeline(Codec):
    """A recipe codec. Lossy iff it starts with ``quant``; then ``eb``/``mode`` are required."""

    def __init__(self, recipe: str, eb: float | None = None, mode: str = "rel", dtype: str = "auto",
                 level: int | None = None):
        quant, dedup, coders = parse_recipe(recipe)
        self._recipe, self._dedup = recipe, dedup
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

    @property
    def name(self) -> str:
        return self._recipe

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

    # -- the codec ---------------------------------------------------------------------------
    def encode_payload(self, x: np.ndarray, eb_abs: float | None) -> bytes:
        if not self.lossy:
            streams = dedup_rows(x.reshape(-1, row_width(x.shape))) if self._dedup else (x,)
            return join_sections([self._code(s) for s in streams])
        if self._dedup:
            q, streams = self._quantize_distinct_rows(x, eb_abs)
        else:
            q = self._quantizer.quantize(x, eb_abs)
            streams = (q.codes,)
        return join_sections([LinearQuantizer.pack_side(q)] + [self._code(s) for s in streams])

    def _quantize_distinct_rows(self, x: np.ndarray, eb_abs: float) -> tuple[Quantized, tuple]:
        """Quantize only the distinct rows of x (rows that repeat exactly share their codes), then
        dedup the codes: the same streams as quantizing everything first, for a fraction of the work.
        Escapes are stored per element of x, so with any escape every row is quantized."""
        rows = x.reshape(-1, row_width(x.shape))
        distinct, first = dedup_rows(rows)
        q = self._quantizer.quantize(distinct, eb_abs, value_range=finite_range(x))
        if q.escapes.size:
            q = self._quantizer.quantize(x, eb_abs)
            return q, dedup_rows(q.codes.reshape(rows.shape))
        unique, second = dedup_rows(q.codes)
        return q, (unique, second[first].astype(index_dtype(unique.shape[0])))

    def _dedup_streams(self, sections, header: FrameHeader) -> tuple[np.ndarray, np.ndarray]:
        """(unique rows [U, W], inverse [R]) decoded and checked against the frame's shape."""
        limit = output_limit(header)
        unique, inverse = self._uncode(sections[0], limit), self._uncode(sections[1], limit)
        width = row_width(header.shape)
        if unique.size % width or inverse.size != header.size // width or inverse.dtype.kind != "u":
            raise CorruptStreamError(f"{self.name}: dedup streams do not match the frame shape")
        unique = unique.reshape(-1, width)
        if inverse.size and (unique.shape[0] == 0 or int(inverse.max()) >= unique.shape[0]):
            raise CorruptStreamError(f"{self.name}: dedup index out of range")
        return unique, inverse

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        if codes.dtype not in CODE_DTYPES.values():
            raise CorruptStreamError(f"{self.name}: codes of dtype {codes.dtype}")
        return codes

    def decode_payload(self, payload, header: FrameHeader) -> np.ndarray:
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
