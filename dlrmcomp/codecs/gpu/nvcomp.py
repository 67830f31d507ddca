"""nvcomp (``nvidia-nvcomp-cu12/13``) as codecs on the quantizer's codes: ANS, LZ4, Zstd, Bitcomp,
Cascaded, GDeflate. The quantizer runs on the GPU (our kernels); nvcomp codes the int8/int16 codes.
Frames: ``{"id": "nvcomp:<algo>", ...}`` with payload = [quantizer side info, shape-less
nvcomp NATIVE stream]; they need nvcomp to decode (there is no CPU nvcomp decoder).
"""
from __future__ import annotations

import numpy as np

from ...errorbound import ErrorBound
from ...errors import CorruptStreamError
from .. import frame as framing
from ..base import Codec
from ..quantize import Grid, LinearQuantizer, Quantized, code_limits


def _nv():
    from nvidia import nvcomp

    return nvcomp


def nbytes(arr) -> int:
    """Size of an nvcomp output array in bytes."""
    size = getattr(arr, "buffer_size", None)
    if size is not None:
        return int(size)
    import cupy

    return int(cupy.asarray(arr).nbytes)


class NvcompCodec(Codec):
    """``quant`` (GPU) + one nvcomp algorithm on the codes."""

    lossy = True
    dtypes = tuple(np.dtype(t) for t in ("float32", "float64"))

    def __init__(self, algorithm: str = "ANS", eb: float | None = None, mode: str = "rel", dtype: str = "auto",
                 chunk: int = 65536):
        if eb is None:
            raise ValueError("nvcomp codecs quantize first: give an error bound eb")
        self._bound = ErrorBound(eb, mode)
        self.algorithm, self.eb, self.mode, self.dtype, self.chunk = algorithm, self._bound.value, self._bound.mode, dtype, int(chunk)
        self._codec = None

    @property
    def name(self) -> str:
        return f"nvcomp:{self.algorithm.lower()}"

    def get_config(self) -> dict:
        return {"id": self.name, "eb": self.eb, "mode": self.mode, "dtype": self.dtype, "chunk": self.chunk}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        algo = config.pop("id").split(":", 1)[1]
        return cls(algorithm={a.lower(): a for a in ("ANS", "LZ4", "Zstd", "Bitcomp", "Cascaded", "GDeflate")}[algo], **config)

    def codec(self):
        """The nvcomp.Codec (created once; stream = CuPy's current stream)."""
        if self._codec is None:
            import cupy

            nv = _nv()
            self._codec = nv.Codec(algorithm=self.algorithm, uncomp_chunk_size=self.chunk,
                                   cuda_stream=cupy.cuda.get_current_stream().ptr)
        return self._codec

    def resolve_bound(self, x):
        return self._bound.resolve(x)

    def compress_codes(self, codes: list):
        """cupy code arrays -> nvcomp arrays (one batched call)."""
        nv = _nv()
        return self.codec().encode([nv.as_array(c.reshape(-1).view(np.uint8)) for c in codes])

    def decompress_codes(self, blobs: list) -> list:
        return self.codec().decode(blobs)

    def encode_payload(self, x, eb_abs):
        import cupy

        q = LinearQuantizer(self.dtype).quantize(x, eb_abs)  # CPU quantizer (frames path only)
        comp = self.compress_codes([cupy.asarray(q.codes)])[0]
        body = cupy.asnumpy(cupy.asarray(comp).view(cupy.uint8)).tobytes()
        side = LinearQuantizer.pack_side(q)
        return framing.join_sections([side, np.dtype(q.codes.dtype).str.encode(), body])

    def decode_payload(self, payload, header):
        import cupy

        nv = _nv()
        side, cdt, body = framing.split_sections(payload)
        grid, escapes = LinearQuantizer.unpack_side(side, header.dtype)
        cdt = np.dtype(bytes(cdt).decode())
        dec = self.decompress_codes([nv.as_array(cupy.asarray(np.frombuffer(body, np.uint8)))])[0]
        codes = cupy.asnumpy(cupy.asarray(dec)).view(cdt)
        if codes.size != header.size:
            raise CorruptStreamError("nvcomp payload size mismatch")
        return LinearQuantizer.dequantize(Quantized(codes.reshape(header.shape), escapes, grid), header.dtype)
