"""Codecs for the embedding all-to-all, and the forward/backward config (torchrec's QCommsConfig).

A :class:`CommCodec` turns one slice ``x`` [rows, D] (float32, any device) into a 1-D uint8
tensor and back. Baselines (TorchRec's quantized comms, fbgemm's ``quantize_comm.py``):

- ``fp16``: clamped cast (2x), ``bf16``: cast (2x),
- ``int8``: row-wise 8-bit with an fp32 scale and bias per row (``FloatToFused8BitRowwise``).

``fp32`` / ``None`` is the uncompressed baseline (no codec; the all-to-all moves floats).
``simulate`` is the seeds' mode: each slice is quantized and dequantized at its table's bound
(what a quantizer codec reconstructs) and the all-to-all moves the floats; no bytes are made.
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
    #: False for a codec that only changes the floats (:meth:`simulate`); the exchange then moves
    #: floats and counts no compressed bytes
    makes_bytes = True

    def encoded_size(self, rows: int, dim: int) -> int:
        raise NotImplementedError

    def encode(self, x: torch.Tensor, table: int, iteration: int) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, buf: torch.Tensor, rows: int, dim: int, table: int) -> torch.Tensor:
        raise NotImplementedError

    # -- one call per exchange (codecs with a batched path override these) ------------------
    def encode_many(self, xs: list[torch.Tensor], tables: list[int], iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Slices in send order -> (one uint8 buffer of the encoded slices back to back, int64
        lengths [len(xs)] on the buffer's device)."""
        bufs = [self.encode(x, t, iteration) for x, t in zip(xs, tables)]
        device = xs[0].device if xs else torch.device("cpu")
        buf = torch.cat(bufs) if bufs else torch.empty(0, dtype=torch.uint8, device=device)
        return buf, torch.tensor([b.numel() for b in bufs], dtype=torch.int64, device=device)

    def decode_many(self, buf: torch.Tensor, lengths: list[int], rows: list[int], dim: int,
                    tables: list[int]) -> list[torch.Tensor]:
        """The received buffer + host slice lengths -> one [rows, dim] float32 tensor a slice."""
        pieces = buf.split(lengths)
        return [self.decode(p, r, dim, t) for p, r, t in zip(pieces, rows, tables)]

    def take_checks(self) -> list[torch.Tensor]:
        """Device flags of decodes not yet checked (read at the next host sync, then
        :meth:`raise_checks`)."""
        return []

    def raise_checks(self, values: list[np.ndarray]) -> None:
        """Raise CorruptStreamError if the flags of :meth:`take_checks` (host copies, same order)
        say a decode failed."""

    def check(self) -> None:
        """Check every decode not yet checked (one host sync where there are any)."""

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
    """The codec ``name`` at relative bound ``eb`` (a lossless codec ignores the bound)."""
    from .. import codecs

    return codecs.get(name, eb=eb, mode="rel") if codecs.is_lossy(name) else codecs.get(name)


def quantize_dequantize_torch(x: torch.Tensor, eb: float, codes: str = "auto") -> torch.Tensor:
    """:func:`~dlrmcomp.codecs.quantize.quantize_dequantize` of ``x`` at relative bound ``eb``,
    on ``x``'s device with no host sync: the same grid (``Grid.for_range``), rounding, code range
    and escapes (values that miss the bound, overflow the codes or are not finite stay as they
    are), in float64 like the CPU kernel. Equal to the CPU function bit for bit."""
    if x.numel() == 0:
        return x.detach().clone()
    x64 = x.detach().to(torch.float64)
    finite = torch.isfinite(x64)
    big = torch.finfo(torch.float64).max
    any_finite = finite.any()
    lo = torch.where(any_finite, torch.where(finite, x64, big).amin(), 0.0)
    hi = torch.where(any_finite, torch.where(finite, x64, -big).amax(), 0.0)
    eb_abs = eb * (hi - lo)
    step = 2.0 * eb_abs
    mid = 0.5 * lo + 0.5 * hi
    k = mid / step + 0.5
    ok_grid = torch.isfinite(step) & (step > 0) & torch.isfinite(1.0 / step) & torch.isfinite(k)
    base = torch.floor(k) * step
    base = torch.where(ok_grid, torch.where(torch.isfinite(base), base, mid), mid)
    step = torch.where(ok_grid, step, 0.0)
    if codes == "auto":
        safe = torch.where(step > 0, step, 1.0)
        max_code = torch.maximum(((lo - base) / safe).abs(), ((hi - base) / safe).abs())
        qmax = torch.where((step == 0) | (max_code <= 127), 127.0, 32767.0)
    else:
        qmax = {"int8": 127.0, "int16": 32767.0}[codes]
    inv = torch.where(step > 0, 1.0 / torch.where(step > 0, step, 1.0), 0.0)
    q = torch.floor((x64 - base) * inv + 0.5)
    recon = (base + q * step).to(x.dtype)
    keep = ((x64 - recon.to(torch.float64)).abs() <= eb_abs) & (q.abs() <= qmax)
    return torch.where(keep, recon, x.detach())


def _gpu_codecs():
    try:
        from ..codecs import gpu  # noqa: F401  (optional; written for CuPy machines)
    except Exception:  # noqa: BLE001  - absent or unusable: CPU path
        return None
    return gpu


class SimulateCodec(CommCodec):
    """The seeds' ``simulate`` mode as a codec: each slice quantized and dequantized at its
    table's relative bound (``schedule``), exactly what ``quant+*`` codecs reconstruct; the
    all-to-all then moves the floats and counts no compressed bytes. Gradients pass straight
    through unless the backward direction has a codec too. On CUDA tensors the quantizer runs
    on the device (:func:`quantize_dequantize_torch`); on the CPU it is the CPU kernel.
    ``encode``/``decode`` give the reconstruction's fp32 bytes, for callers that want bytes."""

    name = "simulate"
    makes_bytes = False

    def __init__(self, schedule: EBSchedule | None = None, codes: str = "auto"):
        self.schedule, self.codes = schedule or EBSchedule(), codes

    def bound(self, table: int, iteration: int) -> float:
        return self.schedule.bound(table, iteration)

    def simulate(self, x: torch.Tensor, table: int, iteration: int) -> torch.Tensor:
        """The reconstruction of slice ``x`` (same shape, dtype and device)."""
        from ..codecs.quantize import quantize_dequantize
        from ..errorbound import ErrorBound

        eb = self.bound(table, iteration)
        if x.device.type != "cpu":
            return quantize_dequantize_torch(x, eb, self.codes)
        a = x.detach().numpy()
        return torch.from_numpy(quantize_dequantize(a, ErrorBound(eb, "rel").resolve(a), self.codes))

    def encoded_size(self, rows: int, dim: int) -> int:
        return rows * dim * 4

    def encode(self, x, table, iteration):
        return self.simulate(x.float(), table, iteration).contiguous().view(-1).view(torch.uint8)

    def decode(self, buf, rows, dim, table):
        return buf.contiguous().view(torch.float32).view(rows, dim)


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


class WireCodec(FrameCodec):
    """``quant+ans`` in the wire format (:mod:`dlrmcomp.exchange.wire`), one call per exchange.

    On CUDA tensors every slice of an exchange is encoded into one device buffer and decoded
    straight into one output tensor (:class:`dlrmcomp.exchange.device.DeviceWire`): no payload
    byte on the host, no host sync (the decode's error flags are read at the exchange's next
    sync, or by :meth:`check`). On CPU tensors the CPU stages write the same bytes.
    """

    def __init__(self, name: str = "quant+ans", schedule: EBSchedule | None = None, codes: str = "auto",
                 lanes: int = 128, chunk: int = 1 << 16):
        if name not in WIRE_CODECS:
            raise ValueError(f"wire codecs are {', '.join(WIRE_CODECS)}, got {name!r}")
        self.name, self.schedule = name, schedule or EBSchedule()
        self.codes, self.lanes, self.chunk = codes, int(lanes), int(chunk)
        self._pending: list = []
        self._device_wire = None

    def _device(self):
        if self._device_wire is None:
            from ..exchange.device import DeviceWire

            self._device_wire = DeviceWire("rel", self.codes, self.lanes, self.chunk)
        return self._device_wire

    def encode_many(self, xs, tables, iteration):
        from ..exchange import wire

        bounds = [self.bound(t, iteration) for t in tables]
        if xs and xs[0].is_cuda:
            enc = self._device().encode([x.detach().contiguous() for x in xs], bounds)
            return enc.buffer, torch.from_dlpack(enc.lengths)
        buf, lengths = wire.encode_slices([x.detach().cpu().numpy() for x in xs], bounds, "rel", self.codes,
                                          self.lanes, self.chunk)
        return torch.frombuffer(bytearray(buf), dtype=torch.uint8), torch.tensor(lengths, dtype=torch.int64)

    def decode_many(self, buf, lengths, rows, dim, tables):
        from ..exchange import wire

        if buf.is_cuda:
            out = torch.empty(sum(rows), dim, dtype=torch.float32, device=buf.device)
            views = list(out.split(list(rows)))
            self._pending.append(self._device().decode(buf, lengths, [(r, dim) for r in rows], views).err)
            return views
        arrays = wire.decode_slices(buf.numpy(), lengths, [(r, dim) for r in rows])
        return [torch.from_numpy(a) for a in arrays]

    def encode(self, x, table, iteration):
        buf, lengths = self.encode_many([x], [table], iteration)
        return buf[:int(lengths[0])]

    def decode(self, buf, rows, dim, table):
        out = self.decode_many(buf, [buf.numel()], [rows], dim, [table])[0]
        self.check()
        return out

    def take_checks(self):
        pending, self._pending = self._pending, []
        return [torch.from_dlpack(p) for p in pending]

    def raise_checks(self, values):
        from ..exchange.device import raise_errors

        for flags in values:
            raise_errors(np.asarray(flags))

    def check(self) -> None:
        """Read the flags of every decode not yet checked (one sync); raise CorruptStreamError."""
        checks = self.take_checks()
        if checks:
            self.raise_checks([c.cpu().numpy() for c in checks])


WIRE_CODECS = ("quant+ans", "gpu:quant+ans")


def get_comm_codec(spec: str | None, schedule: EBSchedule | None = None) -> CommCodec | None:
    """``None``/``fp32`` -> None (raw floats); ``simulate`` (quantize-dequantize, floats moved);
    ``fp16``/``bf16``/``int8`` baselines; ``quant+ans`` / ``gpu:quant+ans``: the batched wire
    codec (GPU path on CUDA tensors); else a frame codec."""
    if spec is None or spec in ("", "fp32", "none"):
        return None
    if spec == "simulate":
        return SimulateCodec(schedule)
    if spec == "fp16":
        return CastCodec(torch.float16)
    if spec == "bf16":
        return CastCodec(torch.bfloat16)
    if spec == "int8":
        return Int8RowwiseCodec()
    if spec in WIRE_CODECS:
        return WireCodec(spec, schedule)
    return FrameCodec(spec, schedule)


@dataclass
class QCommsConfig:
    """Forward (pooled embeddings) and backward (their gradients) codecs; fp32 = none.

    ``forward``/``backward``: ``fp32`` | ``simulate`` | ``fp16`` | ``bf16`` | ``int8`` | a dlrmcomp
    codec name.
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
