"""The compression hook on the embedding all-to-all payload (and, optionally, its gradient).

Modes: ``none``; ``simulate`` (the seeds' quantize-dequantize of ``.data`` in place, with
:func:`~dlrmcomp.codecs.quantize.quantize_dequantize`, so gradients pass straight through);
``codec`` (a real encode to a frame and decode with any registered codec, counting the bytes).
For quantizer codecs the two modes give identical tensors. Bounds come from an
:class:`~dlrmcomp.errorbound.EBSchedule` per table and iteration.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .. import codecs, decompress
from ..codecs.quantize import quantize_dequantize
from ..errorbound import EBSchedule, ErrorBound

MODES = ("none", "simulate", "codec")


@lru_cache(maxsize=256)
def _codec(name: str, eb: float) -> codecs.Codec:
    """The codec ``name`` at relative bound ``eb`` (a lossless codec ignores the bound)."""
    return codecs.get(name, eb=eb, mode="rel") if codecs.is_lossy(name) else codecs.get(name)


class Direction:
    """One direction (forward payload or backward gradient): codec name, schedule, byte counts."""

    def __init__(self, mode: str, codec: str, schedule: EBSchedule, num_tables: int, quant_dtype: str = "auto"):
        self.mode, self.codec, self.schedule, self.quant_dtype = mode, codec, schedule, quant_dtype
        self.bytes_raw = np.zeros(num_tables, dtype=np.int64)
        self.bytes_comp = np.zeros(num_tables, dtype=np.int64)

    def apply(self, table: int, iteration: int, x: torch.Tensor) -> torch.Tensor:
        """Compressed-and-restored copy of ``x`` [B, D] (same dtype and device)."""
        eb = self.schedule.bound(table, iteration)
        a = x.detach().cpu().numpy()
        if self.mode == "simulate":
            y = quantize_dequantize(a, ErrorBound(eb, "rel").resolve(a), self.quant_dtype)
        else:
            frame = _codec(self.codec, eb).encode(a)
            y = decompress(frame)
            self.bytes_raw[table] += a.nbytes
            self.bytes_comp[table] += len(frame)
        return torch.from_numpy(y).to(x.device)

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """Bytes (raw, compressed) per table since the last call, then reset."""
        out = self.bytes_raw.copy(), self.bytes_comp.copy()
        self.bytes_raw[:] = 0
        self.bytes_comp[:] = 0
        return out


class PayloadCompressor:
    """Callable hook ``pooled -> pooled`` for :class:`~dlrmcomp.models.DLRM` (set ``.iteration``).

    ``grad_codec`` / ``grad_schedule`` (optional) compress the payload's gradient in the
    backward all-to-all the same way, with their own codec and bounds.
    """

    def __init__(self, mode: str, num_tables: int, codec: str = "quant+ans", schedule: EBSchedule | None = None,
                 grad_codec: str | None = None, grad_schedule: EBSchedule | None = None, quant_dtype: str = "auto"):
        if mode not in MODES:
            raise ValueError(f"compression mode must be one of {MODES}, got {mode!r}")
        if mode == "codec":
            _codec(codec, 0.01)  # fail early on an unknown codec
        self.mode, self.num_tables, self.iteration = mode, num_tables, 0
        schedule = schedule or EBSchedule()
        self.forward = Direction(mode, codec, schedule, num_tables, quant_dtype)
        self.backward = None
        if grad_codec is not None and mode != "none":
            self.backward = Direction(mode, grad_codec, grad_schedule or schedule, num_tables, quant_dtype)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def bounds(self, iteration: int) -> list[float | None]:
        """Relative bound per table at ``iteration`` (None when not compressing)."""
        if not self.enabled:
            return [None] * self.num_tables
        return self.forward.schedule.bounds(self.num_tables, iteration)

    def __call__(self, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self.enabled:
            return pooled
        t = self.iteration
        for i, x in enumerate(pooled):
            x.data = self.forward.apply(i, t, x)
            if self.backward is not None and x.requires_grad:
                x.register_hook(lambda g, i=i: self.backward.apply(i, t, g))
        return pooled
