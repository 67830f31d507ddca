"""The wire format on a CUDA GPU: all slices of one exchange encoded into one device buffer, and
decoded from one, with no payload byte on the host and no host sync.

:class:`DeviceWire` runs a fixed launch sequence per call whatever the number of slices:
range -> grid (each slice its own bound) -> quantize (+ code histogram) -> rANS tables -> rANS
encode -> sizes -> exclusive scan -> write (descriptor, stream, escapes); and to decode:
parse + validate (descriptors, stream headers, tables, lane ends, all on the device) -> rANS
decode -> dequantize -> escapes. Per call the host uploads one small parameter block (pointers and
bounds). Bad input sets a per-slice error code on the device; :meth:`DecodedWire.check` (one sync)
raises it as :class:`~dlrmcomp.errors.CorruptStreamError`. Layout-dependent buffers (codes, lane
scratch, tables) are kept per slice shape, so a training loop allocates them once.

The kernels are :mod:`dlrmcomp.codecs.gpu.kernels`; the bytes are :mod:`dlrmcomp.exchange.wire`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codecs.gpu.runtime import JOB, cp_module, ctype, grid_size, kernel, ord_init
from ..codecs.quantize import code_limits
from ..errors import CorruptStreamError
from . import wire

#: host mirror of the CUDA ``struct WireSlice`` (tests/test_gpu_layout.py checks the two agree)
WIRE_SLICE = np.dtype([("src", "<u8"), ("codes", "<u8"), ("rows", "<i8"), ("n", "<i8"), ("offset", "<i8"),
                       ("length", "<i8"), ("stream_len", "<i8"), ("esc_off", "<i8"), ("n_esc", "<i8"),
                       ("eb", "<f8"), ("dim", "<i4"), ("job", "<i4"), ("lanes", "<i4"), ("chunk", "<i4"),
                       ("code_bytes", "<i4"), ("value_bytes", "<i4"), ("mode", "<i4"), ("pad", "<i4")])
#: the device's per-slice error codes, in words
WIRE_ERRORS = {1: "slice offset or length outside the received buffer", 2: "descriptor magic, version or checksum",
               3: "descriptor dtype or shape differs from what the receiver expects",
               4: "entropy-stream header corrupt or trailing bytes", 5: "alphabet or frequency table corrupt",
               6: "lane offset table corrupt or truncated", 7: "rANS lane data corrupt",
               8: "escape count differs from the escape codes"}
LUT_SLOTS = 1 << 15
ESC_SEGMENTS = 128  # escapes are found and moved in this many segments of a slice, in parallel
_ALIGN = 256
_BLOCK = 256


def _aligned(sizes) -> tuple[np.ndarray, int]:
    """Offsets of consecutive regions of the given byte sizes, each aligned to 256."""
    padded = -(-np.maximum(np.asarray(sizes, np.int64), 1) // _ALIGN) * _ALIGN
    return np.concatenate([[0], np.cumsum(padded)[:-1]]).astype(np.int64), int(padded.sum())


def _ptr(x) -> int:
    return int(x.data_ptr()) if hasattr(x, "data_ptr") else int(x.data.ptr)


class _Upload:
    """One asynchronous host->device copy of several numpy arrays through pinned memory (torch's
    caching host allocator keeps the pinned block until the copy is done): no host sync.
    ``ptr(i)`` is the device address of array i."""

    def __init__(self, *arrays):
        import torch

        offs, total = _aligned([a.nbytes for a in arrays])
        host = torch.empty(total, dtype=torch.uint8, pin_memory=True)
        view = host.numpy()
        for a, o in zip(arrays, offs):
            view[o:o + a.nbytes] = a.reshape(-1).view(np.uint8)
        self.dev = host.to("cuda", non_blocking=True)
        self.offs = offs

    def ptr(self, i: int) -> np.uint64:
        return np.uint64(self.dev.data_ptr() + int(self.offs[i]))


@dataclass(frozen=True)
class _Layout:
    """Everything that depends only on the slices' shapes and the coder settings."""

    shapes: tuple
    n: np.ndarray          # elements per slice
    lanes: np.ndarray      # header lanes per slice
    n_lanes: np.ndarray    # (chunk, lane) pairs per slice
    cap: np.ndarray        # u16 words of scratch per lane

    @classmethod
    def of(cls, shapes, lanes: int, chunk: int) -> "_Layout":
        n = np.array([r * d for r, d in shapes], np.int64)
        hl = np.array([wire.header_lanes(int(k), lanes) for k in n], np.int64)
        nl = -(-n // chunk) * hl
        cap = -(-np.minimum(n, chunk) // np.maximum(hl, 1)) + 3
        return cls(tuple(shapes), n, hl, nl, cap)


class DeviceWire:
    """Encode / decode the slices of one exchange on the GPU in the wire format.

    ``mode``: "rel" or "abs" bounds; ``codes``: "auto" (int8 when the bounds guarantee it, see
    :func:`wire.code_dtype_for`), "int8" or "int16"; ``lanes``/``chunk``: the rANS lane layout.
    """

    def __init__(self, mode: str = "rel", codes: str = "auto", lanes: int = 128, chunk: int = 1 << 16, states: int = 1):
        if mode not in wire.MODES or codes not in ("auto", "int8", "int16") or states not in (1, 2, 4):
            raise ValueError(f"mode must be rel/abs, codes auto/int8/int16, states 1/2/4; got {mode!r}, {codes!r}, {states!r}")
        if not (1 <= lanes <= 0xFFFF and lanes <= chunk <= 0x7FFFFFFF):
            raise ValueError(f"need 1 <= lanes <= 65535 and lanes <= chunk < 2**31, got {lanes}, {chunk}")
        self.mode, self.codes, self.lanes, self.chunk, self.states = mode, codes, int(lanes), int(chunk), int(states)
        self._enc, self._dec = {}, {}

    # -- encode ------------------------------------------------------------------------------
    def _encoder(self, shapes, vdt: np.dtype, cdt: np.dtype):
        key = (tuple(shapes), vdt, cdt)
        if key not in self._enc:
            self._enc[key] = _Encoder(_Layout.of(shapes, self.lanes, self.chunk), vdt, cdt, self.chunk, self.states)
        return self._enc[key]

    def encode(self, xs, bounds, stages: StageTimes | None = None) -> "EncodedWire":
        """Slices (torch CUDA tensors or cupy arrays, each [rows, dim], one float dtype) and one bound
        each -> the packed wire buffer on the device, slice lengths and offsets on the device."""
        if len(xs) != len(bounds) or not xs:
            raise ValueError(f"need one bound per slice, got {len(xs)} slices and {len(bounds)} bounds")
        vdt = np.dtype(str(xs[0].dtype).replace("torch.", ""))
        shapes = []
        for x in xs:
            if len(x.shape) != 2 or np.dtype(str(x.dtype).replace("torch.", "")) != vdt or vdt not in wire.VALUE_DTYPES:
                raise ValueError(f"wire slices are 2-D float32/float64 arrays of one dtype, got {x.dtype} {tuple(x.shape)}")
            if not (x.is_contiguous() if hasattr(x, "is_contiguous") else x.flags.c_contiguous):
                raise ValueError("wire slices must be contiguous")
            shapes.append((int(x.shape[0]), int(x.shape[1])))
        cdt = wire.code_dtype_for(bounds, self.mode, self.codes)
        return self._encoder(shapes, vdt, cdt).run(xs, bounds, self.mode, stages or _NoStages)

    # -- decode ------------------------------------------------------------------------------
    def decode(self, buf, lengths, shapes, out, dtype=np.float32, stages: StageTimes | None = None) -> "DecodedWire":
        """The received buffer (uint8, device), host slice lengths, expected (rows, dim) per slice and
        one output per slice (device arrays/tensors of those shapes) -> outputs filled; call
        :meth:`DecodedWire.check` (one sync) to raise any CorruptStreamError."""
        vdt = np.dtype(dtype)
        key = (tuple(shapes), vdt)
        if key not in self._dec:
            self._dec[key] = _Decoder(_Layout.of(shapes, self.lanes, self.chunk), vdt, self.chunk, self.states)
        return self._dec[key].run(buf, lengths, out, stages or _NoStages)


class StageTimes:
    """CUDA events after each stage of a call (pass one to :meth:`DeviceWire.encode` / ``decode``);
    :meth:`seconds` reads them once the work is done. For profiles: it adds no sync to the call."""

    def __init__(self):
        self.events = []

    def mark(self, name: str) -> None:
        e = cp_module().cuda.Event()
        e.record()
        self.events.append((name, e))

    def seconds(self) -> dict:
        cp = cp_module()
        self.events[-1][1].synchronize()
        out = {}
        for (_, a), (name, b) in zip(self.events, self.events[1:]):
            out[name] = out.get(name, 0.0) + cp.cuda.get_elapsed_time(a, b) / 1e3
        return out


class _NoStages:
    @staticmethod
    def mark(name: str) -> None:
        return None


@dataclass
class EncodedWire:
    buffer: object          # torch uint8 CUDA tensor (capacity); the slices fill buffer[:total]
    lengths: object         # cupy int64 [S] slice lengths
    offsets: object         # cupy int64 [S] slice offsets (exclusive scan of lengths)
    _keep: tuple = ()


@dataclass
class DecodedWire:
    err: object             # cupy int32 [S] per-slice error codes, then the rANS lane flag
    n_slices: int
    _keep: tuple = ()

    def check(self) -> None:
        """One sync: raise CorruptStreamError naming the first bad slice, if any."""
        errs = cp_module().asnumpy(self.err)
        raise_errors(errs)


def raise_errors(errs: np.ndarray) -> None:
    """Per-slice error codes (+ the rANS lane flag last) -> CorruptStreamError for the first bad one."""
    bad = np.flatnonzero(errs[:-1])
    if bad.size:
        t = int(bad[0])
        raise CorruptStreamError(f"wire slice {t}: {WIRE_ERRORS.get(int(errs[t]), 'error ' + str(int(errs[t])))}"
                                 + (f" (and {bad.size - 1} more slices)" if bad.size > 1 else ""))
    if errs[-1]:
        raise CorruptStreamError(f"wire: {WIRE_ERRORS[7]}")


def _states_for(layout: _Layout, states: int) -> int:
    """rANS states per thread: ``states`` where it divides every slice's lanes, else 1 (same bytes)."""
    return states if all(int(l) % states == 0 for l in layout.lanes) else 1


class _Encoder:
    def __init__(self, layout: _Layout, vdt: np.dtype, cdt: np.dtype, chunk: int, states: int):
        cp = cp_module()
        import torch

        self.states = _states_for(layout, states)
        self.L, self.vdt, self.cdt, self.chunk = layout, vdt, cdt, chunk
        S, P = len(layout.n), cdt.itemsize
        self.S, self.P = S, P
        code_off, code_total = _aligned(layout.n * P)
        self.codes = cp.empty(max(code_total, 1), cp.uint8)
        code_ptrs = (self.codes.data.ptr + code_off).astype(np.uint64)
        J = S * P
        job_nl = np.repeat(layout.n_lanes, P)
        job_cap = np.repeat(layout.cap, P)
        lane_base = np.concatenate([[0], np.cumsum(job_nl)[:-1]]).astype(np.int64)
        scr_off, scr_total = _aligned(2 * job_cap * job_nl)
        self.scratch = cp.empty(max(scr_total, 2), cp.uint8)
        self.enc = cp.empty(J * 20 * 256, cp.uint8)
        self.tab = cp.empty(J * 9 * 256 + 16, cp.uint8)
        self.meta = cp.zeros(2 * J + 2, cp.int32)
        self.counts = cp.zeros(J * 256, cp.uint64)
        self.total_lanes = int(job_nl.sum())
        self.lane_sizes = cp.zeros(max(self.total_lanes, 1), cp.int64)
        self.tops = cp.zeros(max(self.total_lanes, 1), cp.int32)
        self.esc = cp.zeros(S, cp.uint64)
        self.rng0 = cp.asarray(ord_init(S, vdt))
        self.rng = cp.empty_like(self.rng0)
        self.params = cp.empty(4 * S, cp.float64)
        self.slice_len = cp.empty(S, cp.int64)
        self.seg_counts = cp.zeros(S * ESC_SEGMENTS, cp.int32)
        jobs = np.zeros(J, JOB)
        for t in range(S):
            for p in range(P):
                j = t * P + p
                jobs[j]["src"] = int(code_ptrs[t]) + p
                jobs[j]["n"], jobs[j]["width"], jobs[j]["stride"] = layout.n[t], 1, P
                jobs[j]["shift"], jobs[j]["mask"], jobs[j]["nbins"] = 0, 0xFF, 256
                jobs[j]["chunk"], jobs[j]["lanes"], jobs[j]["cap"] = chunk, layout.lanes[t], job_cap[j]
                jobs[j]["lane_base"] = lane_base[j]
                jobs[j]["scratch"] = self.scratch.data.ptr + scr_off[j]
                jobs[j]["table"] = self.enc.data.ptr + 20 * 256 * j
                jobs[j]["table2"] = self.meta.data.ptr + 8 * j
        self.static = _Upload(jobs, layout.n, code_ptrs, (self.counts.data.ptr + 8 * 256 * np.arange(J)).astype(np.uint64),
                              np.full(J, 256, np.int32), (self.tab.data.ptr + 9 * 256 * np.arange(J)).astype(np.uint64),
                              (self.enc.data.ptr + 20 * 256 * np.arange(J)).astype(np.uint64),
                              np.arange(0, J * 256, 256, dtype=np.int64))
        self.jobs, self.sizes, self.code_ptrs, self.cnt_ptrs, self.nbins, self.sym_ptrs, self.enc_ptrs, self.hist_off = (
            self.static.ptr(i) for i in range(8))
        self.job_sizes_max = int(job_nl.max()) if J else 1
        self.slices = np.zeros(S, WIRE_SLICE)
        self.slices["codes"], self.slices["rows"] = code_ptrs, [r for r, _ in layout.shapes]
        self.slices["n"], self.slices["dim"] = layout.n, [d for _, d in layout.shapes]
        self.slices["job"], self.slices["lanes"], self.slices["chunk"] = np.arange(S) * P, layout.lanes, chunk
        self.slices["code_bytes"], self.slices["value_bytes"] = P, vdt.itemsize
        # worst case of a slice: descriptor, stream head, per plane a full table and lane ends, every lane at
        # its scratch capacity, every value escaped, paddings
        worst = (wire.DESCRIPTOR_SIZE + 32 + P * (4 + 256 + 1 + 512 + 4 + 4 * layout.n_lanes + 2 * layout.cap * layout.n_lanes)
                 + layout.n * vdt.itemsize + 16)
        self.capacity = int(worst.sum())
        self.gx = grid_size(int(layout.n.max()), 64)
        self.torch = torch

    def run(self, xs, bounds, mode, stages) -> EncodedWire:
        cp, torch = cp_module(), self.torch
        S, P, T = self.S, self.P, ctype(self.vdt)
        ptrs = np.array([_ptr(x) for x in xs], np.uint64)
        self.slices["src"], self.slices["eb"], self.slices["mode"] = ptrs, bounds, wire.MODES.index(mode)
        up = _Upload(self.slices, ptrs)
        d_slices, d_ptrs = up.ptr(0), up.ptr(1)
        stages.mark("start")
        self.rng[...] = self.rng0
        self.esc.fill(0)
        self.counts.fill(0)
        kernel(f"range_kernel<{T}>")((self.gx, S), (_BLOCK,), (d_ptrs, self.sizes, self.rng))
        kernel(f"wire_grid<{T}>")((-(-S // 128),), (128,), (self.rng, d_slices, np.int32(S), self.params))
        stages.mark("range + grid")
        esc_code = np.int32(code_limits(self.cdt)[1])
        code_ptrs, jobs = self.code_ptrs, self.jobs
        if P == 1:  # int8: the histogram is counted inside the quantize kernel
            kernel(f"quantize_hist_kernel<{T}>")((self.gx, S), (_BLOCK,), (
                d_ptrs, self.sizes, self.params, code_ptrs, self.esc, esc_code, self.counts))
        else:
            kernel(f"quantize_kernel<{T},short>")((self.gx, S), (_BLOCK,), (
                d_ptrs, self.sizes, self.params, code_ptrs, self.esc, esc_code))
            splits = int(max(1, min(2048, -(-int(self.L.n.max()) // (_BLOCK * 16)))))
            kernel("histogram_kernel")((splits, S * P), (_BLOCK,), (jobs, self.counts, self.hist_off, np.int32(256), np.int32(splits)),
                                    shared_mem=4 * 256 * (_BLOCK // 32))
        stages.mark("quantize + histogram")
        kernel("build_tables")((S * P,), (1024,), (self.cnt_ptrs, self.nbins, self.enc_ptrs, self.sym_ptrs, self.meta))
        stages.mark("tables")
        if self.states == 1:
            kernel("rans_encode")((-(-self.job_sizes_max // 128), S * P), (128,), (jobs, self.lane_sizes, self.tops))
        else:
            kernel(f"rans_encode_multi<{self.states}>")((-(-(self.job_sizes_max // self.states) // 128), S * P), (128,),
                                                     (jobs, self.lane_sizes, self.tops))
        stages.mark("rans encode")
        lane_ends = cp.cumsum(self.lane_sizes)
        kernel("wire_sizes")((-(-S // 128),), (128,), (d_slices, np.int32(S), jobs, self.meta, lane_ends, self.esc, self.slice_len))
        offsets = cp.cumsum(self.slice_len) - self.slice_len
        buffer = torch.empty(self.capacity, dtype=torch.uint8, device="cuda")
        blocks = int(max(1, min(1024, -(-int(self.L.n_lanes.max()) // 16))))  # ~2 lanes a warp
        kernel("wire_write")((blocks, S), (_BLOCK,), (d_slices, jobs, self.meta, self.sym_ptrs, lane_ends,
                                                   self.tops, self.params, offsets, np.uint64(buffer.data_ptr())))
        self.seg_counts.fill(0)
        kernel("escape_counts")((ESC_SEGMENTS, S), (1024,), (d_slices, np.int32(ESC_SEGMENTS), self.seg_counts))
        kernel(f"escape_move<{T},true>")((ESC_SEGMENTS, S), (1024,), (d_slices, np.int32(ESC_SEGMENTS), self.seg_counts,
                                                                   np.uint64(buffer.data_ptr()), np.uint64(0), np.uint64(0),
                                                                   np.uint64(0)))
        stages.mark("sizes + write")
        return EncodedWire(buffer, self.slice_len.copy(), offsets, (up, lane_ends, xs))


class _Decoder:
    def __init__(self, layout: _Layout, vdt: np.dtype, chunk: int, states: int):
        cp = cp_module()
        self.L, self.vdt, self.chunk = layout, vdt, chunk
        self.states = _states_for(layout, states)
        S = len(layout.n)
        self.S = S
        code_off, code_total = _aligned(layout.n * 2)  # room for int16 codes
        self.codes = cp.empty(max(code_total, 1), cp.uint8)
        code_ptrs = (self.codes.data.ptr + code_off).astype(np.uint64)
        self.lut_sym = cp.empty(2 * S * LUT_SLOTS, cp.uint16)
        self.lut_fb = cp.empty(2 * S * LUT_SLOTS, cp.uint32)
        self.cum = cp.empty(2 * S * 65537, cp.uint32)
        self.params = cp.empty(2 * S, cp.float64)
        self.seg_counts = cp.zeros(S * ESC_SEGMENTS, cp.int32)
        self.flags = cp.zeros(2 * S + S + 1, cp.int32)  # found (u64 [S]), err [S], the rANS lane flag
        self.jobs = np.zeros(2 * S, JOB)
        self.jobs["chunk"] = chunk
        self.jobs["lanes"] = np.repeat(layout.lanes, 2)
        self.jobs["width"], self.jobs["stride"] = 1, 1
        self.slices = np.zeros(S, WIRE_SLICE)
        self.slices["codes"], self.slices["rows"] = code_ptrs, [r for r, _ in layout.shapes]
        self.slices["n"], self.slices["dim"] = layout.n, [d for _, d in layout.shapes]
        self.slices["job"], self.slices["lanes"], self.slices["chunk"] = np.arange(S) * 2, layout.lanes, chunk
        self.slices["value_bytes"] = vdt.itemsize
        self.max_lanes = int(max(1, layout.n_lanes.max()))
        self.gx = grid_size(int(layout.n.max()), 16)

    def run(self, buf, lengths, out, stages) -> DecodedWire:
        cp = cp_module()
        S, T = self.S, ctype(self.vdt)
        lengths = np.asarray(lengths, np.int64)
        if lengths.size != S:
            raise ValueError(f"{lengths.size} slice lengths for {S} slices")
        self.slices["offset"] = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.slices["length"] = lengths
        self.slices["src"] = [_ptr(o) for o in out]
        for o, (r, d) in zip(out, self.L.shapes):
            if tuple(o.shape) != (r, d) or np.dtype(str(o.dtype).replace("torch.", "")) != self.vdt:
                raise ValueError(f"output of shape {tuple(o.shape)} {o.dtype}, expected {(r, d)} {self.vdt}")
        up = _Upload(self.slices, self.jobs)
        d_slices, d_jobs = up.ptr(0), up.ptr(1)
        stages.mark("start")
        self.flags.fill(0)
        found = self.flags[:2 * S].view(cp.uint64)
        err, lane_err = self.flags[2 * S:3 * S], self.flags[3 * S:]
        nbytes = int(buf.numel()) if hasattr(buf, "numel") else int(buf.size)
        kernel("wire_parse")((S,), (256,), (d_slices, np.uint64(_ptr(buf)), np.int64(nbytes), d_jobs, self.lut_sym,
                                         self.lut_fb, self.cum, self.params, err))
        stages.mark("parse + tables")
        if self.states == 1:
            kernel("rans_decode")((-(-self.max_lanes // 128), 2 * S), (128,), (d_jobs, lane_err))
        else:
            kernel(f"rans_decode_multi<{self.states}>")((-(-(self.max_lanes // self.states) // 128), 2 * S), (128,),
                                                     (d_jobs, lane_err))
        stages.mark("rans decode")
        kernel(f"wire_dequant<{T}>")((self.gx, S), (_BLOCK,), (d_slices, self.params, found, err))
        self.seg_counts.fill(0)
        kernel("escape_counts")((ESC_SEGMENTS, S), (1024,), (d_slices, np.int32(ESC_SEGMENTS), self.seg_counts))
        kernel(f"escape_move<{T},false>")((ESC_SEGMENTS, S), (1024,), (d_slices, np.int32(ESC_SEGMENTS), self.seg_counts,
                                                                    np.uint64(_ptr(buf)), found, err, lane_err))
        stages.mark("dequantize + escapes")
        return DecodedWire(self.flags[2 * S:].copy(), S, (up, buf, out))
