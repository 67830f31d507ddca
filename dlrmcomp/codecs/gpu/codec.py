"""``gpu:quant+ans`` and ``gpu:quant+dedup+ans``: the CPU recipes, run by batched CuPy kernels.

One call encodes a list of per-table arrays (numpy, cupy or torch CUDA tensors) with one launch
sequence (:mod:`.encode`), with at most four host syncs per batch, never one per table; frames
are the CPU recipe's frames. Decoding is :mod:`.decode`. The stages: :mod:`.plan` (host-side
planning), :mod:`.encode`, :mod:`.decode`; the all-to-all's device path is
:mod:`dlrmcomp.exchange.device`.
"""
from __future__ import annotations

import numpy as np

from ...errorbound import ErrorBound
from .. import frame as framing
from ..base import Codec
from ..entropy import Rans
from ..pipeline import Pipeline, parse_recipe
from ..quantize import LinearQuantizer
from .decode import decode_plan, run_decode
from .encode import EncodedBatch, encode_device
from .runtime import as_cupy, cp_module


class GpuPipeline(Codec):
    """``quant+ans`` / ``quant+dedup+ans`` on a CUDA GPU through CuPy; CPU-format frames.

    ``lanes``/``chunk`` set the rANS lane layout (the CPU defaults give byte-identical frames;
    other values still decode on the CPU, as the stream header carries them).
    """

    lossy = True
    dtypes = tuple(np.dtype(t) for t in ("float32", "float64"))

    def __init__(self, recipe: str = "quant+dedup+ans", eb: float | None = None, mode: str = "rel",
                 dtype: str = "auto", lanes: int = 32, chunk: int = 1 << 18, tables: str = "device",
                 fused: bool = True, states: int = 1):
        quant, dedup, coders = parse_recipe(recipe)
        if not quant or coders != ("ans",):
            raise ValueError(f"GPU recipes are quant+ans and quant+dedup+ans, got {recipe!r}")
        if eb is None:
            raise ValueError(f"codec {recipe!r} is lossy: give an error bound eb")
        self._recipe, self._dedup = recipe, dedup
        self._bound = ErrorBound(eb, mode)
        self.eb, self.mode = self._bound.value, self._bound.mode
        LinearQuantizer(dtype)  # validates
        self.dtype = dtype
        Rans(lanes, chunk)  # validates
        self.lanes, self.chunk = int(lanes), int(chunk)
        if tables not in ("device", "host"):
            raise ValueError(f"tables must be 'device' or 'host', got {tables!r}")
        self.tables = tables
        # fused: grid parameters computed on the device (no host sync between range and quantize) and, for
        # quant+ans with int8 codes, the code histogram counted inside the quantize kernel. Needs a fixed code
        # dtype (int8/int16): "auto" picks it from the ranges on the host. states: rANS lanes per thread (interleaved
        # states; same bytes). Default 1: on an H200, 4 was slower to encode in every layout and slower to decode
        # except L256 on the Zipf payload (RESULTS.md, GPU section).
        if int(states) not in (1, 2, 4):
            raise ValueError(f"states must be 1, 2 or 4, got {states!r}")
        self.fused, self.states = bool(fused), int(states)
        self.profile = None  # a dict to collect per-stage seconds of encode_device (adds syncs)

    @property
    def dedup(self) -> bool:
        return self._dedup

    @property
    def name(self) -> str:
        return f"gpu:{self._recipe}"

    def frame_config(self) -> dict:
        """The config written into frames: the CPU recipe's, so any machine decodes them."""
        return Pipeline(self._recipe, eb=self.eb, mode=self.mode, dtype=self.dtype).get_config()

    def resolve_bound(self, x):
        return self._bound.resolve(x)

    # -- Codec interface (one array) ------------------------------------------------------
    def encode(self, x) -> bytes:
        return self.encode_batch([x])[0]

    def decode(self, frame):
        """Frame -> numpy array (decoded on the GPU)."""
        return cp_module().asnumpy(self.decode_batch([frame])[0])

    def encode_payload(self, x, eb_abs) -> bytes:
        """The payload of x's frame, encoded on the GPU (the bound is resolved there, bit for bit
        as :meth:`resolve_bound`; a different ``eb_abs`` is an error)."""
        header, payload = framing.unpack(self.encode(x))
        if eb_abs is not None and header.eb_abs != eb_abs:
            raise ValueError(f"{self.name} resolves its bound on the device ({header.eb_abs}), not {eb_abs}")
        return bytes(payload)

    def decode_payload(self, payload, header) -> np.ndarray:
        """A frame's payload -> its array, decoded on the GPU."""
        return self.decode(framing.pack(header, bytes(payload)))

    # -- batched API ----------------------------------------------------------------------
    def encode_batch(self, xs) -> list[bytes]:
        """A list of arrays/tensors -> a list of frames (bytes); one launch sequence per dtype."""
        xs = [as_cupy(x) for x in xs]
        out = [None] * len(xs)
        for dt in {np.dtype(x.dtype) for x in xs}:
            sel = [i for i, x in enumerate(xs) if np.dtype(x.dtype) == dt]
            for i, f in zip(sel, self.encode_device([xs[i] for i in sel]).frames()):
                out[i] = f
        return out

    def decode_batch(self, frames, out: str = "cupy") -> list:
        """A list of frames -> a list of cupy arrays (``out="torch"``: torch CUDA tensors)."""
        plan = decode_plan(list(frames))
        arrays = run_decode(plan, self.states)
        if out == "torch":
            import torch

            return [torch.from_dlpack(a) for a in arrays]
        return arrays

    def encode_device(self, xs, stream=None) -> EncodedBatch:
        """Encode on the current (or given) CuPy stream; results stay on the device."""
        cp = cp_module()
        if stream is not None:
            with cp.cuda.Stream(null=False) if stream == "new" else stream:
                return encode_device(self, xs)
        return encode_device(self, xs)
