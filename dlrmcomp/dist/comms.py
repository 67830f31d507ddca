"""Codecs for the embedding all-to-all, and the forward/backward config (torchrec's QCommsConfig).

A :class:`CommCodec` turns one slice ``x`` [rows, D] (float32, any device) into a 1-D uint8
tensor and back. Baselines (TorchRec's quantized comms, fbgemm's ``quantize_comm.py``):

- ``fp16``: clamped cast (2x), ``bf16``: cast (2x),
- ``int8``: row-wise 8-bit with an fp32 scale and bias per row (``FloatToFused8BitRowwise``).

``fp32`` / ``None`` is the uncompressed baseline (no codec; the all-to-all moves floats).
Any other name is a dlrmcomp codec (``quant+ans``, ``quant+dedup+zstd``, ...): each slice is
encoded to a self-describing frame with its own range and the table's relative bound from an
:class:`~dlrmcomp.errorbound.EBSchedule` at the current iteration, so the frame's size is what
goes over the wire. On CUDA tensors the GPU codecs (``dlrmcomp.codecs.gpu``) are used when
present, else bytes go through the CPU codecs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from ..errorbound import EBSchedule

BASELINES = ("fp32", "fp16", "bf16", "int8")
FP16_MAX = 65504.0


class CommCodec:
    """Encode a [rows, D] float32 slice to uint8 bytes; ``fixed_size`` when the size is known."""

    name = "?"
    #: True when ``encoded_size(rows, dim)`` is exact (no size exchange is needed)
    fixed = True

    def encoded_size(self, rows: int, dim: int) -> int:
        raise NotImplementedError

    def encode(self, x: torch.Tensor, table: int, iteration: int) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, buf: torch.Tensor, rows: int, dim: int, table: int) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class CastCodec(CommCodec):
    """fp16 (clamped) or bf16 cast: 2 bytes a value."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.name = "fp16" if dtype == torch.float16 else "bf16"

    def encoded_size(self, rows: int, dim: int) -> int:
        return rows * dim * 2

    def encode(self, x, table, iteration):
        if self.dtype == torch.float16:
            x = x.clamp(-FP16_MAX, FP16_MAX)
        return x.to(self.dtype).contiguous().view(-1).view(torch.uint8)

    def decode(self, buf, rows, dim, table):
        return buf.view(self.dtype).view(rows, dim).float()


class Int8RowwiseCodec(CommCodec):
    """fbgemm's fused 8-bit row-wise: per row, ``q = round((x - min) / scale)``, scale =
    ``(max - min) / 255``; the row's codes then fp32 scale and bias (D + 8 bytes a row)."""

    name = "int8"

    def encoded_size(self, rows: int, dim: int) -> int:
        return rows * (dim + 8)

    def encode(self, x, table, iteration):
        lo = x.amin(dim=1, keepdim=True)
        scale = (x.amax(dim=1, keepdim=True) - lo) / 255.0
        inv = torch.where(scale > 0, 1.0 / scale, torch.zeros_like(scale))
        q = torch.round((x - lo) * inv).clamp_(0, 255).to(torch.uint8)
        side = torch.cat([scale, lo], dim=1).contiguous().view(torch.uint8)  # [rows, 8]
        return torch.cat([q, side], dim=1).reshape(-1)

    def decode(self, buf, rows, dim, table):
        b = buf.view(rows, dim + 8)
        side = b[:, dim:].contiguous().view(torch.float32)  # [rows, 2]
        return b[:, :dim].float() * side[:, :1] + side[:, 1:2]


@lru_cache(maxsize=512)
def _frame_codec(name: str, eb: float):
    from .. import codecs

    return codecs.get(name, eb=eb, mode="rel")


def _gpu_codecs():
    try:
        from ..codecs import gpu  # noqa: F401  (optional; written for CuPy machines)
    except Exception:  # noqa: BLE001  - absent or unusable: CPU path
        return None
    return gpu


class FrameCodec(CommCodec):
    """A dlrmcomp error-bounded codec by name; bounds from ``schedule`` (table, iteration)."""

    fixed = False

    def __init__(self, name: str, schedule: EBSchedule | None = None):
        _frame_codec(name, 0.01)  # unknown names fail here
        self.name, self.schedule = name, schedule or EBSchedule()

    def bound(self, table: int, iteration: int) -> float:
        return self.schedule.bound(table, iteration)

    def encode(self, x, table, iteration):
        codec = _frame_codec(self.name, self.bound(table, iteration))
        if self.name.startswith("gpu:") and x.is_cuda:  # CuPy codec straight from the device tensor
            frame = codec.encode(x.detach())
        else:
            frame = codec.encode(x.detach().cpu().numpy())
        out = torch.frombuffer(bytearray(frame), dtype=torch.uint8)
        return out.to(x.device) if x.device.type != "cpu" else out

    def decode(self, buf, rows, dim, table):
        from .. import decompress

        if self.name.startswith("gpu:") and buf.is_cuda:
            out = _frame_codec(self.name, 0.01).decode_batch([buf.cpu().numpy().tobytes()], out="torch")[0]
            return out.float().view(rows, dim)
        a = decompress(buf.cpu().numpy().tobytes())
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).view(rows, dim).to(buf.device)


def get_comm_codec(spec: str | None, schedule: EBSchedule | None = None) -> CommCodec | None:
    """``None``/``fp32`` -> None (raw floats); ``fp16``/``bf16``/``int8`` baselines; else a frame codec."""
    if spec is None or spec in ("", "fp32", "none"):
        return None
    if spec == "fp16":
        return CastCodec(torch.float16)
    if spec == "bf16":
        return CastCodec(torch.bfloat16)
    if spec == "int8":
        return Int8RowwiseCodec()
    return FrameCodec(spec, schedule)


@dataclass
class QCommsConfig:
    """Forward (pooled embeddings) and backward (their gradients) codecs; fp32 = none.

    ``forward``/``backward``: ``fp32`` | ``fp16`` | ``bf16`` | ``int8`` | a dlrmcomp codec name.
    ``dedup``: index-aware dedup of the forward payload (send each distinct row once).
    """

    forward: str = "fp32"
    backward: str = "fp32"
    forward_schedule: EBSchedule | None = field(default=None, repr=False)
    backward_schedule: EBSchedule | None = field(default=None, repr=False)
    dedup: bool = False

    def __post_init__(self):
        self.forward = self.forward or "fp32"
        self.backward = self.backward or "fp32"
        for spec, sched in ((self.forward, self.forward_schedule), (self.backward, self.backward_schedule)):
            get_comm_codec(spec, sched)  # validates

    def codecs(self) -> tuple[CommCodec | None, CommCodec | None]:
        return (get_comm_codec(self.forward, self.forward_schedule),
                get_comm_codec(self.backward, self.backward_schedule or self.forward_schedule))
