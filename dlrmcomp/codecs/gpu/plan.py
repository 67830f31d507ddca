"""Planning a GPU encode on the host: which planes a stream gets (the CPU's layout rule,
:func:`dlrmcomp.codecs.stream.choose_layout`), where each table's codes and coder tables live on
the device, and the per-stream bookkeeping the encoder and the frame writer share."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from .. import stream
from ..quantize import Grid
from .runtime import cp_module

@dataclass
class PlanePlan:
    """A plane of a stream coded with tables from the host: its histogram and how keys are read."""

    counts: np.ndarray      # full histogram (256 or 65536)
    width: int              # alphabet width in bytes
    shift: int
    mask: int
    present: np.ndarray = field(init=False)

    def __post_init__(self):
        self.present = np.flatnonzero(self.counts)


def choose_planes(counts: list[np.ndarray], w: int) -> tuple[int, list[PlanePlan]]:
    """(layout, planes) from the histogram of a w-byte stream by the CPU's rule
    (:func:`stream.choose_layout`): counts = [whole] for w <= 2, else the w byte-plane histograms."""
    if w == 1:
        return stream.WHOLE, [PlanePlan(counts[0], 1, 0, 0xFF)]
    if w == 2:
        grid = counts[0].reshape(256, 256)
        planes = [PlanePlan(grid.sum(axis=0), 1, 0, 0xFF), PlanePlan(grid.sum(axis=1), 1, 8, 0xFF)]
        if stream.choose_layout(2, counts[0], [p.counts for p in planes]) == stream.WHOLE:
            return stream.WHOLE, [PlanePlan(counts[0], 2, 0, 0xFFFF)]
        return stream.BYTES, planes
    # w == 4 only holds dedup indices of > 65536 unique rows: > 2**15 values, so always bytes
    return stream.BYTES, [PlanePlan(c, 1, 8 * b, 0xFF) for b, c in enumerate(counts)]


@dataclass
class DevicePlane:
    """A plane whose histogram and table live on the device."""

    width: int
    shift: int
    mask: int
    counts_ptr: int     # device u64 histogram (nbins)
    nbins: int


class CoderTables:
    """Encoder tables of a batch's rANS jobs: on the device (``meta`` set: K, M per job, symbols and
    frequencies in ``scratch``) or from the host (``heads``: (present, table bytes) per job)."""

    def __init__(self, enc, enc_off, meta, heads=None, scratch=None, scratch_off=None, nbins=None, keep=()):
        self.enc, self.enc_off, self.meta, self.heads = enc, enc_off, meta, heads
        self.scratch, self.scratch_off, self.nbins, self.keep = scratch, scratch_off, nbins, keep
        self.meta_host = None
        self._cache = {}

    def enc_ptr(self, j: int) -> int:
        return int(self.enc.data.ptr + self.enc_off[j])

    def k_ptr(self, j: int) -> int:
        return 0 if self.meta is None else int(self.meta.data.ptr + 8 * j)

    def head(self, j: int, width: int):
        """(present symbols, table bytes or None for a constant plane) of job j."""
        if self.heads is not None:
            return self.heads[j]
        if j not in self._cache:
            cp = cp_module()
            k, m = (int(v) for v in self.meta_host[j])
            base = int(self.scratch_off[j])
            nb = self.nbins[j]
            sym = cp.asnumpy(self.scratch[base:base + 4 * k].view(cp.uint32))
            present = sym.astype(f"u{width}")
            table = None
            if k >= 2:
                freq = cp.asnumpy(self.scratch[base + 4 * nb:base + 4 * nb + 4 * k].view(cp.uint32))
                table = struct.pack("<B", m) + freq.astype("<u2").tobytes()
            self._cache[j] = (present, table)
        return self._cache[j]


class CodeViews:
    """Per-table code arrays inside one buffer, made on first access (cupy views cost host time)."""

    def __init__(self, buf, offs, sizes, dtypes, shapes):
        self.buf, self.offs, self.sizes, self.dtypes, self.shapes = buf, offs, sizes, dtypes, shapes
        self._cache = {}

    def ptr(self, t: int) -> int:
        return int(self.buf.data.ptr + self.offs[t])

    def __len__(self):
        return len(self.offs)

    def __getitem__(self, t):
        if t not in self._cache:
            o, n, c = int(self.offs[t]), int(self.sizes[t]), self.dtypes[t]
            self._cache[t] = self.buf[o:o + n * c.itemsize].view(c).reshape(self.shapes[t])
        return self._cache[t]

    def __iter__(self):
        return (self[t] for t in range(len(self)))


def grids_from(params: np.ndarray) -> tuple[list, list]:
    """(bounds, grids) from the device's grid_params rows (base, step, eb_abs, qmax)."""
    p = np.asarray(params, np.float64).reshape(-1, 4)
    return [float(r[2]) for r in p], [Grid(base=float(r[0]), step=float(r[1])) for r in p]


@dataclass
class CodedStream:
    """One coded stream of one table: where its values live on the device and how it is coded."""

    ptr: int            # device pointer of the values
    load: int           # bytes loaded per value (1, 2 or 4)
    dtype: np.dtype     # stream dtype written in the header
    n: int
    layout: int = 0
    planes: list = field(default_factory=list)
    jobs: list = field(default_factory=list)  # encode job index per plane (None: constant plane)
    hist: list = field(default_factory=list)  # histogram job indices
