"""Float compressors as peers: SZ3 (pysz) and ZFP (zfpy), with our bound guarantee added.

Neither library promises the bound on every element for every input (NaN, Inf, huge ranges),
so the encoder decodes its own output, and elements that miss the bound or are not finite are
stored verbatim by index (the escape path). Data they cannot take (empty, zero bound) is stored
losslessly with zstd. :class:`VerifiedPayload` is that machinery on its own, for any codec with a
``lib_compress`` / ``lib_decompress`` pair (DCT+Chop uses it too, with or without a bound).
"""
from __future__ import annotations

import struct

import numpy as np

from ..errors import CorruptStreamError
from .base import ErrorBoundedCodec
from .frame import FrameHeader, join_sections, split_sections
from .lossless import Zstd

_RAW, _LOSSY = 0, 1
_RAW_STAGE = Zstd(level=3)  # data the library cannot take is kept losslessly


class VerifiedPayload:
    """Payload halves for a codec with ``lib_compress`` / ``lib_decompress``: the encoder decodes
    its own stream and stores verbatim, by index, every element that misses ``eb_abs`` or is not
    finite. With ``eb_abs`` None (a codec without a bound) only non-finite elements escape."""

    def lib_compress(self, x: np.ndarray, eb_abs: float | None) -> bytes: ...

    def lib_decompress(self, buf, header: FrameHeader) -> np.ndarray: ...

    def nonfinite_fill(self, x: np.ndarray) -> float:
        """What the library sees in place of NaN / Inf (they escape anyway)."""
        return 0.0

    def encode_payload(self, x, eb_abs):
        if x.size == 0 or (eb_abs is not None and not (0 < eb_abs < np.inf)):
            return struct.pack("<B", _RAW) + _RAW_STAGE.compress(x.tobytes())
        finite = np.isfinite(x)
        work = x if finite.all() else np.where(finite, x, self.nonfinite_fill(x)).astype(x.dtype)
        try:
            stream = self.lib_compress(work, eb_abs)
            y = self.lib_decompress(stream, FrameHeader({}, x.dtype, x.shape, eb_abs))
        except Exception:  # the library refused this input: keep it losslessly
            return struct.pack("<B", _RAW) + _RAW_STAGE.compress(x.tobytes())
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(x.astype(np.float64) - y.astype(np.float64))
            bad = ~(err <= eb_abs) if eb_abs is not None else ~np.isfinite(err)
        index = np.flatnonzero(bad.reshape(-1)).astype(np.uint64)
        return struct.pack("<B", _LOSSY) + join_sections([stream, index.tobytes(), x.reshape(-1)[index].tobytes()])

    def decode_payload(self, payload, header):
        if len(payload) < 1:
            raise CorruptStreamError(f"{self.name}: empty payload")
        kind, body = payload[0], payload[1:]
        if kind == _RAW:
            raw = _RAW_STAGE.decompress(body, header.size * header.dtype.itemsize)
            return np.frombuffer(raw, dtype=header.dtype).reshape(header.shape)
        if kind != _LOSSY:
            raise CorruptStreamError(f"{self.name}: unknown payload kind {kind}")
        stream, index, values = split_sections(body)
        index = np.frombuffer(index, dtype=np.uint64)
        values = np.frombuffer(values, dtype=header.dtype)
        if index.size != values.size or (index.size and int(index.max()) >= header.size):
            raise CorruptStreamError(f"{self.name}: escape table corrupt")
        out = np.array(self.lib_decompress(stream, header), dtype=header.dtype).reshape(-1)
        out[index.astype(np.intp)] = values
        return out.reshape(header.shape)


class VerifiedFloatCodec(VerifiedPayload, ErrorBoundedCodec):
    """Base for library float compressors with a bound: ``lib_compress`` / ``lib_decompress`` + escapes."""


class SZ3(VerifiedFloatCodec):
    """SZ3 through pysz, absolute bound = the resolved bound (relative bounds resolved first)."""

    codec_id = "sz3"

    def lib_compress(self, x, eb_abs):
        from pysz import sz, szConfig, szErrorBoundMode

        cfg = szConfig(*(x.shape or (1,)))
        cfg.errorBoundMode = szErrorBoundMode.ABS
        cfg.absErrorBound = eb_abs
        data, _ = sz.compress(np.ascontiguousarray(x.reshape(x.shape or (1,))), cfg)
        return data.tobytes()

    def lib_decompress(self, buf, header):
        from pysz import sz

        out, _ = sz.decompress(np.frombuffer(buf, dtype=np.uint8), header.dtype, header.shape or (1,))
        return np.asarray(out).reshape(header.shape)


class ZFP(VerifiedFloatCodec):
    """ZFP fixed-accuracy mode through zfpy (tolerance = the resolved bound); 1-4 dims."""

    codec_id = "zfp"

    def lib_compress(self, x, eb_abs):
        import zfpy

        return zfpy.compress_numpy(np.ascontiguousarray(x.reshape(_zfp_shape(x.shape))), tolerance=eb_abs)

    def lib_decompress(self, buf, header):
        import zfpy

        return zfpy.decompress_numpy(bytes(buf)).reshape(header.shape)


def _zfp_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """ZFP takes 1-4 dims: fold leading axes of higher-rank arrays."""
    if len(shape) == 0:
        return (1,)
    if len(shape) <= 4:
        return shape
    return (int(np.prod(shape[:-3])),) + tuple(shape[-3:])
