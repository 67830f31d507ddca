"""nvcomp (``nvidia-nvcomp-cu12/13``) as codecs on the quantizer's codes: ANS, LZ4, Zstd, Bitcomp,
Cascaded, GDeflate. The quantizer runs on the GPU (our kernels); nvcomp codes the int8/int16 codes.
Frames: ``{"id": "nvcomp:<algo>", ...}`` with payload = [quantizer side info, shape-less
nvcomp NATIVE stream]; they need nvcomp to decode (there is no CPU nvcomp decoder).

nvcomp's Python API (checked against nvidia-nvcomp-cu13 6.0): ``Codec.encode`` takes one
``nvcomp.Array`` (``nvcomp.as_array``) or one ``nvcomp.BatchArray`` (``nvcomp.as_arrays(list)``),
not a Python list (that raised ``TypeError: incompatible function arguments`` in the first pass);
it returns the same kind, asynchronously on the codec's stream. A ``BatchArray`` has ``len()``,
indexing (which waits for the work) and ``buffer_sizes`` (compressed sizes in bytes).
"""
from __future__ import annotations

import numpy as np

from ...errorbound import ErrorBound
from ...errors import CorruptStreamError
from .. import frame as framing
from ..base import Codec
from ..quantize import LinearQuantizer, Quantized

ALGORITHMS = ("ANS", "LZ4", "Zstd", "Bitcomp", "Cascaded", "GDeflate")


def _nv():
    from nvidia import nvcomp

    return nvcomp


def nbytes(arr) -> int:
    """Size in bytes of an nvcomp output (Array or BatchArray: the sum over the batch)."""
    sizes = getattr(arr, "buffer_sizes", None)
    if sizes is not None:
        return int(sum(int(s) for s in sizes))
    size = getattr(arr, "buffer_size", None)
    if size is not None:
        return int(size)
    import cupy

    return int(cupy.asarray(arr).nbytes)


def make_codec(algorithm: str, stream_ptr: int | None = None, chunk: int = 65536, **options):
    """An ``nvcomp.Codec`` for one algorithm on the given CUDA stream (default: CuPy's current)."""
    import cupy

    nv = _nv()
    if stream_ptr is None:
        stream_ptr = cupy.cuda.get_current_stream().ptr
    kwargs = dict(algorithm=algorithm, uncomp_chunk_size=int(chunk), **options)
    if stream_ptr:  # nvcomp refuses stream 0 ("Invalid for stream to be 0"): then it makes its own
        kwargs["cuda_stream"] = int(stream_ptr)
    return nv.Codec(**kwargs)


def as_batch(codes: list, stream_ptr: int | None = None):
    """cupy arrays -> one ``nvcomp.BatchArray`` (zero-copy, 1-D byte views)."""
    nv = _nv()
    views = [c.reshape(-1).view(np.uint8) for c in codes]
    if stream_ptr:
        return nv.as_arrays(views, cuda_stream=int(stream_ptr))
    return nv.as_arrays(views)


def batch_to_cupy(batch) -> list:
    """Each entry of an nvcomp (Batch)Array as a cupy uint8 array (waits for nvcomp's work)."""
    import cupy

    items = [batch[i] for i in range(len(batch))] if hasattr(batch, "buffer_sizes") else [batch]
    return [cupy.asarray(a).view(cupy.uint8).reshape(-1) for a in items]


class NvcompCodec(Codec):
    """``quant`` + one nvcomp algorithm on the codes."""

    lossy = True
    dtypes = tuple(np.dtype(t) for t in ("float32", "float64"))

    def __init__(self, algorithm: str = "ANS", eb: float | None = None, mode: str = "rel", dtype: str = "auto",
                 chunk: int = 65536):
        if eb is None:
            raise ValueError("nvcomp codecs quantize first: give an error bound eb")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"nvcomp algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        self._bound = ErrorBound(eb, mode)
        self.algorithm, self.eb, self.mode, self.dtype, self.chunk = algorithm, self._bound.value, self._bound.mode, dtype, int(chunk)
        self._codecs = {}

    @property
    def name(self) -> str:
        return f"nvcomp:{self.algorithm.lower()}"

    def get_config(self) -> dict:
        return {"id": self.name, "eb": self.eb, "mode": self.mode, "dtype": self.dtype, "chunk": self.chunk}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        algo = config.pop("id").split(":", 1)[1]
        return cls(algorithm={a.lower(): a for a in ALGORITHMS}[algo], **config)

    def codec(self):
        """The nvcomp.Codec for CuPy's current stream (created once per stream)."""
        import cupy

        ptr = cupy.cuda.get_current_stream().ptr
        if ptr not in self._codecs:
            self._codecs[ptr] = make_codec(self.algorithm, ptr, self.chunk)
        return self._codecs[ptr]

    def resolve_bound(self, x):
        return self._bound.resolve(x)

    def compress_codes(self, codes: list):
        """cupy code arrays -> an nvcomp BatchArray of compressed buffers (one batched call)."""
        import cupy

        return self.codec().encode(as_batch(codes, cupy.cuda.get_current_stream().ptr))

    def decompress_codes(self, blobs) -> list:
        """An nvcomp BatchArray (or list of cupy byte arrays) -> list of cupy uint8 arrays."""
        import cupy

        if isinstance(blobs, list):
            blobs = as_batch(blobs, cupy.cuda.get_current_stream().ptr)
        return batch_to_cupy(self.codec().decode(blobs, data_type="|u1"))

    def encode_payload(self, x, eb_abs):
        import cupy

        q = LinearQuantizer(self.dtype).quantize(x, eb_abs)  # CPU quantizer (frames path only)
        (comp,) = batch_to_cupy(self.compress_codes([cupy.asarray(q.codes)]))
        body = cupy.asnumpy(comp).tobytes()
        side = LinearQuantizer.pack_side(q)
        return framing.join_sections([side, np.dtype(q.codes.dtype).str.encode(), body])

    def decode_payload(self, payload, header):
        import cupy

        side, cdt, body = framing.split_sections(payload)
        grid, escapes = LinearQuantizer.unpack_side(side, header.dtype)
        cdt = np.dtype(bytes(cdt).decode())
        try:
            (dec,) = self.decompress_codes([cupy.asarray(np.frombuffer(bytes(body), np.uint8))])
        except (RuntimeError, ValueError) as exc:
            raise CorruptStreamError(f"nvcomp could not decode the payload: {exc}") from exc
        codes = cupy.asnumpy(dec).view(cdt)
        if codes.size != header.size:
            raise CorruptStreamError("nvcomp payload size mismatch")
        return LinearQuantizer.dequantize(Quantized(codes.reshape(header.shape), escapes, grid), header.dtype)
