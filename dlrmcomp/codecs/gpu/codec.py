"""``gpu:quant+ans`` and ``gpu:quant+dedup+ans``: the CPU recipes, run by batched CuPy kernels.

One call encodes a list of per-table arrays (numpy, cupy or torch CUDA tensors) with one launch
sequence: range -> quantize (+ escapes) -> dedup -> histogram -> rANS encode -> gather, with four
host syncs per batch (ranges; unique/escape counts; histograms -> rANS tables; final sizes), never
one per table. Frames are the CPU recipe's frames (see the package docstring).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ...errorbound import ErrorBound
from ...errors import CorruptStreamError
from .. import entropy, frame as framing
from ..base import Codec
from ..dedup import index_dtype
from ..pipeline import Pipeline, parse_recipe, row_width
from ..quantize import Grid, LinearQuantizer, Quantized, code_limits

_ALIGN = 256
_BLOCK = 256
_JOB = np.dtype([("src", "<u8"), ("table", "<u8"), ("table2", "<u8"), ("scratch", "<u8"), ("ends", "<u8"),
                 ("n", "<i8"), ("chunk", "<i8"), ("lane_base", "<i8"), ("lanes", "<i4"), ("width", "<i4"),
                 ("stride", "<i4"), ("shift", "<i4"), ("mask", "<u4"), ("cap", "<i4"), ("nbins", "<i4"),
                 ("pad", "<i4")])
_module = None


def _cp():
    import cupy

    return cupy


def kernels():
    """The compiled RawModule (compiled on first use, cached by CuPy on disk)."""
    global _module
    if _module is None:
        from .kernels import NAMES, SOURCE

        _module = _cp().RawModule(code=SOURCE, options=("-std=c++17",), name_expressions=NAMES)
    return _module


def _fn(name):
    return kernels().get_function(name)


def _ctype(dt: np.dtype) -> str:
    return {"float32": "float", "float64": "double", "int8": "signed char", "int16": "short"}[np.dtype(dt).name]


def as_cupy(x):
    """numpy / cupy / torch (CUDA or CPU) -> a C-contiguous cupy array (zero-copy where possible)."""
    cp = _cp()
    if isinstance(x, cp.ndarray):
        return cp.ascontiguousarray(x)
    if type(x).__module__.startswith("torch"):
        if not x.is_cuda:
            return cp.asarray(x.detach().numpy())
        return cp.ascontiguousarray(cp.from_dlpack(x.detach().contiguous()))
    return cp.asarray(np.ascontiguousarray(x))


def _grid_size(n: int, per_thread: int = 4) -> int:
    return int(max(1, min(4096, -(-n // (_BLOCK * per_thread)))))


def _ord_decode(u: np.ndarray, dt: np.dtype) -> np.ndarray:
    bits = 8 * dt.itemsize
    top = np.array(1 << (bits - 1), dtype=u.dtype)
    raw = np.where(u & top, u & ~top, ~u).astype(u.dtype)
    return raw.view(dt)


def _ord_init(t: int, dt: np.dtype) -> np.ndarray:
    u = np.dtype(f"u{dt.itemsize}")
    inf = np.array([np.inf, -np.inf], dt).view(u)
    top = u.type(1 << (8 * dt.itemsize - 1))
    enc = np.where(inf & top, ~inf, inf | top).astype(u)
    return np.tile(enc, t)


def _offsets(nbytes: list[int]) -> tuple[np.ndarray, int]:
    offs, pos = [], 0
    for n in nbytes:
        offs.append(pos)
        pos += -(-max(int(n), 1) // _ALIGN) * _ALIGN
    return np.array(offs, np.int64), pos


# -- host-side plane choice and tables (pure numpy: the CPU rule of entropy._choose_planes) ------
@dataclass
class _PlanePlan:
    counts: np.ndarray      # full histogram (256 or 65536)
    width: int              # alphabet width in bytes
    shift: int
    mask: int
    present: np.ndarray = field(init=False)

    def __post_init__(self):
        self.present = np.flatnonzero(self.counts)

    def cost_bits(self) -> float:
        return entropy._entropy_of_counts(self.counts) + 8.0 * self.present.size * (self.width + 2)


def _choose(counts: list[np.ndarray], w: int) -> tuple[int, list[_PlanePlan]]:
    """(layout, planes) from the histogram of a w-byte stream: counts = [whole] for w <= 2,
    else the w byte-plane histograms."""
    if w == 1:
        return entropy._WHOLE, [_PlanePlan(counts[0], 1, 0, 0xFF)]
    if w == 2:
        whole = _PlanePlan(counts[0], 2, 0, 0xFFFF)
        grid = counts[0].reshape(256, 256)
        planes = [_PlanePlan(grid.sum(axis=0), 1, 0, 0xFF), _PlanePlan(grid.sum(axis=1), 1, 8, 0xFF)]
        if whole.present.size <= entropy.MAX_WHOLE_ALPHABET and \
                whole.cost_bits() <= sum(p.cost_bits() for p in planes):
            return entropy._WHOLE, [whole]
        return entropy._BYTES, planes
    # w == 4 only holds dedup indices of > 65536 unique rows: > 2**15 values, so always bytes
    return entropy._BYTES, [_PlanePlan(c, 1, 8 * b, 0xFF) for b, c in enumerate(counts)]


@dataclass
class _DevPlane:
    """A plane whose histogram and table live on the device."""

    width: int
    shift: int
    mask: int
    counts_ptr: int     # device u64 histogram (nbins)
    nbins: int


class _Tables:
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
            cp = _cp()
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


class _Views:
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


def _grids_from(params: np.ndarray) -> tuple[list, list]:
    """(bounds, grids) from the device's grid_params rows (base, step, eb_abs, qmax)."""
    p = np.asarray(params, np.float64).reshape(-1, 4)
    return [float(r[2]) for r in p], [Grid(base=float(r[0]), step=float(r[1])) for r in p]


@dataclass
class _Stream:
    """One coded stream of one table: where its values live on the device and how it is coded."""

    ptr: int            # device pointer of the values
    load: int           # bytes loaded per value (1, 2 or 4)
    dtype: np.dtype     # stream dtype written in the header
    n: int
    layout: int = 0
    planes: list = field(default_factory=list)
    jobs: list = field(default_factory=list)  # encode job index per plane (None: constant plane)
    hist: list = field(default_factory=list)  # histogram job indices


@dataclass
class EncodedBatch:
    """Device-resident result of :meth:`GpuPipeline.encode_device`; :meth:`frames` makes bytes."""

    codec: "GpuPipeline"
    arrays: list
    bounds: list
    grids: list
    code_dtypes: list
    streams: list            # per table: list of _Stream
    codes: list              # per table: cupy codes array (for escapes)
    esc_counts: np.ndarray
    tables: "_Tables"        # per rANS job: present symbols and table bytes
    ends: object             # cupy int64 global inclusive lane ends
    lane_base: np.ndarray
    n_lanes: np.ndarray
    data: object             # cupy uint8 output
    data_off: np.ndarray
    data_size: np.ndarray

    @property
    def nbytes_data(self) -> int:
        return int(self.data_size.sum())

    def frames(self) -> list[bytes]:
        cp = _cp()
        ends = cp.asnumpy(self.ends)
        data = cp.asnumpy(self.data)
        out = []
        for t, x in enumerate(self.arrays):
            codes = self.codes[t]
            if self.esc_counts[t]:
                esc = code_limits(self.code_dtypes[t])[1]
                idx = cp.flatnonzero(codes.reshape(-1) == esc)
                escapes = cp.asnumpy(x.reshape(-1)[idx])
            else:
                escapes = np.empty(0, x.dtype)
            sections = [LinearQuantizer.pack_side(Quantized(None, escapes, self.grids[t]))]
            for s in self.streams[t]:
                sections.append(self._stream_bytes(s, ends, data))
            header = framing.FrameHeader(self.codec.frame_config(), np.dtype(x.dtype), tuple(x.shape), self.bounds[t])
            out.append(framing.pack(header, framing.join_sections(sections)))
        return out

    def _stream_bytes(self, s: _Stream, ends: np.ndarray, data: np.ndarray) -> bytes:
        rans = entropy.Rans(self.codec.lanes, self.codec.chunk)
        parts = [rans._header(s.dtype, s.layout, s.n, entropy.stream_lanes(s.n, self.codec.lanes))]
        size = len(parts[0])
        if s.n == 0:
            return parts[0]
        for plane, j in zip(s.planes, s.jobs):
            if j is None:  # host tables: constant plane
                present, table = plane.present, None
            else:
                present, table = self.tables.head(j, plane.width)
            head = struct.pack("<I", present.size) + present.astype(f"<u{plane.width}").tobytes()
            if table is None:
                parts.append(head)
                size += len(head)
                continue
            pad = bytes(entropy._pad_to_4(size + len(head) + len(table)))
            lb, nl = int(self.lane_base[j]), int(self.n_lanes[j])
            base = ends[lb - 1] if lb else 0
            lane_ends = (ends[lb:lb + nl] - base).astype("<u4").tobytes()
            body = data[self.data_off[j]:self.data_off[j] + self.data_size[j]].tobytes()
            for part in (head, table, pad, lane_ends, body):
                parts.append(part)
                size += len(part)
        return b"".join(parts)


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
        entropy.Rans(lanes, chunk)  # validates
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
        return _cp().asnumpy(self.decode_batch([frame])[0])

    def encode_payload(self, x, eb_abs):  # pragma: no cover - encode() is overridden
        raise NotImplementedError

    def decode_payload(self, payload, header):  # pragma: no cover - decode() is overridden
        raise NotImplementedError

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
        cp = _cp()
        if stream is not None:
            with cp.cuda.Stream(null=False) if stream == "new" else stream:
                return self._encode_device(xs)
        return self._encode_device(xs)

    def _encode_device(self, xs) -> EncodedBatch:
        cp = _cp()
        prof = getattr(self, "_profile", None)  # a dict: stage -> seconds (adds syncs)

        def stamp(stage, _t=[0.0]):
            if prof is not None:
                import time
                cp.cuda.runtime.deviceSynchronize()
                now = time.perf_counter()
                if stage != "start":
                    prof[stage] = prof.get(stage, 0.0) + now - _t[0]
                _t[0] = now
        stamp("start")
        arrays = [as_cupy(x) for x in xs]
        if not arrays:
            raise ValueError("encode_batch needs at least one array")
        dt = np.dtype(arrays[0].dtype)
        for a in arrays:
            if np.dtype(a.dtype) != dt or dt not in self.dtypes:
                raise ValueError(f"{self.name}: all arrays must share one dtype of float32/float64, got {a.dtype}")
        T = len(arrays)
        sizes = np.array([a.size for a in arrays], np.int64)
        d_ptrs = cp.asarray(np.array([a.data.ptr for a in arrays], np.uint64))
        d_sizes = cp.asarray(sizes)
        fast = self.fused and self.dtype in ("int8", "int16")
        grid_x = _grid_size(int(sizes.max()), 64 if fast else 4)
        # 1. ranges
        d_rng = cp.asarray(_ord_init(T, dt))
        _fn(f"range_kernel<{_ctype(dt)}>")((grid_x, T), (_BLOCK,), (d_ptrs, d_sizes, d_rng))
        bounds, grids, cdts, params = [], [], [], np.zeros((T, 4), np.float64)
        d_params = None
        if fast:  # grid parameters on the device: no sync; bounds and grids come back with a later sync
            cdts = [np.dtype(np.int8 if self.dtype == "int8" else np.int16)] * T
            d_params = cp.empty(4 * T, cp.float64)
            _fn(f"grid_params<{_ctype(dt)}>")((-(-T // 128),), (128,), (
                d_rng, np.int32(T), np.float64(self.eb), np.int32(self.mode == "abs"),
                np.float64(code_limits(cdts[0])[0]), d_params))
            rng = np.zeros((0, 2))
        else:
            rng = _ord_decode(cp.asnumpy(d_rng), dt).reshape(T, 2).astype(np.float64)
        stamp("range")
        for t in range(len(rng)):
            lo, hi = (float(rng[t, 0]), float(rng[t, 1])) if rng[t, 0] <= rng[t, 1] else (0.0, 0.0)
            if self.mode == "abs":
                eb_abs = self.eb
            else:
                with np.errstate(over="ignore"):
                    eb_abs = float(self.eb * (np.float64(hi) - np.float64(lo)))
            grid = Grid.for_range(lo, hi, eb_abs)
            cdt = LinearQuantizer(self.dtype).code_dtype(grid, lo, hi)
            bounds.append(eb_abs), grids.append(grid), cdts.append(cdt)
            params[t] = (grid.base, grid.step, eb_abs, float(code_limits(cdt)[0]))
        # 2. quantize, one launch per code dtype
        code_off, code_total = _offsets([int(s) * c.itemsize for s, c in zip(sizes, cdts)])
        code_buf = cp.empty(code_total, cp.uint8)
        codes = _Views(code_buf, code_off, sizes, cdts, [a.shape for a in arrays])
        d_esc = cp.zeros(T, cp.uint64)
        fused_hist = fast and not self._dedup and cdts[0].itemsize == 1
        d_counts = None
        if fast:
            d_cptr = cp.asarray((code_off + code_buf.data.ptr).astype(np.uint64))
            esc_code = np.int32(code_limits(cdts[0])[1])
            if fused_hist:
                d_counts = cp.zeros(256 * T, cp.uint64)
                _fn(f"quantize_hist_kernel<{_ctype(dt)}>")((grid_x, T), (_BLOCK,), (
                    d_ptrs, d_sizes, d_params, d_cptr, d_esc, esc_code, d_counts))
            else:
                _fn(f"quantize_kernel<{_ctype(dt)},{_ctype(cdts[0])}>")((grid_x, T), (_BLOCK,), (
                    d_ptrs, d_sizes, d_params, d_cptr, d_esc, esc_code))
        for cdt in ([] if fast else sorted(set(cdts), key=lambda d: d.itemsize)):
            sel = [t for t in range(T) if cdts[t] == cdt]
            args = (cp.asarray(np.array([arrays[t].data.ptr for t in sel], np.uint64)),
                    cp.asarray(sizes[sel]), cp.asarray(params[sel]),
                    cp.asarray(np.array([codes[t].data.ptr for t in sel], np.uint64)),
                    d_esc[sel[0]:] if sel == list(range(sel[0], sel[0] + len(sel))) else None)
            esc_out = args[4]
            if esc_out is None:  # non-contiguous selection: count into a temporary
                esc_out = cp.zeros(len(sel), cp.uint64)
            _fn(f"quantize_kernel<{_ctype(dt)},{_ctype(cdt)}>")(
                (grid_x, len(sel)), (_BLOCK,), (*args[:4], esc_out, np.int32(code_limits(cdt)[1])))
            if args[4] is None:
                d_esc[cp.asarray(np.array(sel))] = esc_out
        stamp("quantize")
        # 3. dedup
        streams: list[list[_Stream]] = []
        if self._dedup:
            widths = [row_width(a.shape) for a in arrays]
            rows = sizes // np.maximum(widths, 1)
            row_bytes = np.array([w * c.itemsize for w, c in zip(widths, cdts)], np.int32)
            if np.any(row_bytes % 4) or np.any(sizes == 0):
                raise ValueError(f"{self.name}: GPU dedup needs non-empty rows of a multiple of 4 bytes "
                                 f"(got row bytes {sorted(set(row_bytes.tolist()))})")
            caps = np.array([1 << max(1, int(2 * r - 1).bit_length()) for r in rows], np.int64)
            slot_off = np.concatenate([[0], np.cumsum(caps)[:-1]]).astype(np.int64)
            row_off = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
            slots = cp.full(int(caps.sum()), -1, cp.int32)
            row_slot = cp.empty(int(rows.sum()), cp.int32)
            flags = cp.empty(int(rows.sum()), cp.int32)
            d_codes = cp.asarray((code_off + code_buf.data.ptr).astype(np.uint64))
            d_rows, d_rb = cp.asarray(rows), cp.asarray(row_bytes)
            d_soff, d_caps, d_roff = cp.asarray(slot_off), cp.asarray(caps), cp.asarray(row_off)
            gx = _grid_size(int(rows.max()), 1)
            _fn("dedup_insert")((gx, T), (_BLOCK,), (d_codes, d_rows, d_rb, d_soff, d_caps, slots, row_slot, d_roff))
            _fn("dedup_flag")((gx, T), (_BLOCK,), (d_rows, d_soff, slots, row_slot, d_roff, flags))
            incl = cp.cumsum(flags, dtype=cp.int32)
            uniq_off, uniq_total = _offsets([int(s) * c.itemsize for s, c in zip(sizes, cdts)])
            uniq_buf = cp.empty(uniq_total, cp.uint8)
            inverse = cp.empty(int(rows.sum()), cp.uint32)
            d_uniq = cp.asarray((uniq_off + uniq_buf.data.ptr).astype(np.uint64))
            _fn("dedup_finish")((gx, T), (_BLOCK,), (d_codes, d_rows, d_rb, d_soff, slots, row_slot, d_roff, incl,
                                                     d_uniq, inverse))
            ends_idx = cp.asarray(row_off + rows - 1)
            parts = [incl[ends_idx].astype(cp.int64), d_esc.astype(cp.int64)]
            if d_params is not None:
                parts.append(d_params.view(cp.int64))
            host = cp.asnumpy(cp.concatenate(parts))  # sync 2 (the first one on the fused path)
            n_unique, esc_counts = host[:T], host[T:2 * T]
            if d_params is not None:
                bounds, grids = _grids_from(host[2 * T:].view(np.float64))
                d_params = None
            n_unique = n_unique - np.concatenate([[0], n_unique[:-1]])
            for t in range(T):
                u = int(n_unique[t])
                idt = index_dtype(u)
                streams.append([
                    _Stream(int(uniq_buf.data.ptr + uniq_off[t]), cdts[t].itemsize, cdts[t], u * int(widths[t])),
                    _Stream(int(inverse.data.ptr + 4 * row_off[t]), 4, idt, int(rows[t]))])
            keep = (slots, row_slot, flags, incl, uniq_buf, inverse)
        else:
            esc_counts = None  # read with the final sizes
            for t in range(T):
                streams.append([_Stream(codes.ptr(t), cdts[t].itemsize, cdts[t], int(sizes[t]))])
            keep = ()
        stamp("dedup")
        # 4. histograms of every stream (byte planes for 4-byte streams)
        hist_jobs, hist_nbins = [], []
        for ss in streams:
            for s in ss:
                w = s.dtype.itemsize
                specs = [(0, 0xFF if w == 1 else 0xFFFF)] if w <= 2 else [(8 * b, 0xFF) for b in range(4)]
                for shift, mask in specs:
                    s.hist.append(len(hist_jobs))
                    hist_jobs.append((s.ptr, s.n, s.load, shift, mask))
                    hist_nbins.append(mask + 1)
        hjobs = np.zeros(len(hist_jobs), _JOB)
        for i, (ptr, n, load, shift, mask) in enumerate(hist_jobs):
            hjobs[i]["src"], hjobs[i]["n"], hjobs[i]["width"], hjobs[i]["stride"] = ptr, n, load, load
            hjobs[i]["shift"], hjobs[i]["mask"], hjobs[i]["nbins"] = shift, mask, mask + 1
        hist_off = np.concatenate([[0], np.cumsum(hist_nbins)[:-1]]).astype(np.int64)
        if d_counts is None:
            d_counts = cp.zeros(int(sum(hist_nbins)), cp.uint64)
        else:  # counted by quantize_hist_kernel: table t's int8 codes at 256 t
            assert hist_nbins == [256] * T and list(hist_off) == [256 * t for t in range(T)]
        nb_arr = np.array(hist_nbins)
        for small in ((True, False) if not fused_hist else ()):  # one launch per class: 256 bins (per-warp copies) / 65536 bins (windows)
            sel = np.flatnonzero((nb_arr <= 256) == small)
            if not sel.size:
                continue
            n_max = max(int(hist_jobs[i][1]) for i in sel)
            win = 256 if small else 8192
            splits = int(max(1, min(2048, -(-n_max // (_BLOCK * 16)))))
            nwin = -(-int(nb_arr[sel].max()) // win)
            smem = 4 * win * ((_BLOCK // 32) if small else 1)
            _fn("histogram_kernel")((nwin * splits, sel.size), (_BLOCK,),
                                    (cp.asarray(hjobs[sel].view(np.uint8)), d_counts, cp.asarray(hist_off[sel]),
                                     np.int32(win), np.int32(splits)), shared_mem=smem)
        stamp("histogram")
        if self.tables == "host":
            enc_jobs, tab = self._host_tables(streams, d_counts, hist_off, hist_nbins)
            stamp("tables (host)")
        else:
            enc_jobs, tab = self._device_tables(streams, d_counts, hist_off, hist_nbins)
            stamp("tables (device)")
        # 5. rANS encode + gather
        job_lanes = np.array([entropy.stream_lanes(s.n, self.lanes) for s, _ in enc_jobs], np.int64)
        caps = np.array([-(-min(s.n, self.chunk) // int(l)) + 3 for (s, _), l in zip(enc_jobs, job_lanes)], np.int64)
        n_lanes = np.array([-(-s.n // self.chunk) for s, _ in enc_jobs], np.int64) * job_lanes
        lane_base = np.concatenate([[0], np.cumsum(n_lanes)[:-1]]).astype(np.int64)
        scratch_off, scratch_total = _offsets([2 * int(c) * int(n) for c, n in zip(caps, n_lanes)])
        data_off, data_total = _offsets([2 * s.n + 4 * int(n) for (s, _), n in zip(enc_jobs, n_lanes)])
        scratch = cp.empty(max(scratch_total, 2), cp.uint8)
        data = cp.empty(max(data_total, 1), cp.uint8)
        jobs = np.zeros(len(enc_jobs), _JOB)
        for i, (s, plane) in enumerate(enc_jobs):
            jobs[i]["src"], jobs[i]["n"], jobs[i]["width"], jobs[i]["stride"] = s.ptr, s.n, s.load, s.load
            jobs[i]["shift"], jobs[i]["mask"] = plane.shift, plane.mask
            jobs[i]["table"] = tab.enc_ptr(i)
            jobs[i]["table2"] = tab.k_ptr(i)
            jobs[i]["scratch"] = scratch.data.ptr + scratch_off[i]
            jobs[i]["chunk"], jobs[i]["lanes"], jobs[i]["cap"] = self.chunk, job_lanes[i], caps[i]
            jobs[i]["lane_base"] = lane_base[i]
        total_lanes = int(n_lanes.sum())
        d_sizes_l = cp.zeros(max(total_lanes, 1), cp.int64)
        tops = cp.zeros(max(total_lanes, 1), cp.int32)
        ends = d_sizes_l
        data_size = np.zeros(len(enc_jobs), np.int64)
        if enc_jobs:
            d_jobs = cp.asarray(jobs.view(np.uint8))
            S = self.states if np.all(job_lanes % self.states == 0) else 1
            if S == 1:
                _fn("rans_encode")((int(-(-n_lanes.max() // 128)), len(enc_jobs)), (128,), (d_jobs, d_sizes_l, tops))
            else:
                _fn(f"rans_encode_multi<{S}>")((int(-(-(n_lanes.max() // S) // 128)), len(enc_jobs)), (128,),
                                               (d_jobs, d_sizes_l, tops))
            stamp("rans_encode")
            ends = cp.cumsum(d_sizes_l)
            _fn("rans_gather")((int(min(1024, -(-n_lanes.max() // 8))), len(enc_jobs)), (_BLOCK,),
                               (d_jobs, ends, tops, cp.asarray(data_off), data))
            last = cp.asarray(lane_base + n_lanes - 1)
            first = cp.asarray(np.maximum(lane_base - 1, 0))
            e_last, e_first = ends[last], ends[first]
            size_d = e_last - cp.where(cp.asarray(lane_base) > 0, e_first, 0)
            tail = [size_d.astype(cp.int64)]
            if esc_counts is None:
                tail.append(d_esc.astype(cp.int64))
            if tab.meta is not None:
                tail.append(tab.meta.astype(cp.int64))
            n_meta = 0 if tab.meta is None else int(tab.meta.size)
            if d_params is not None:
                tail.append(d_params.view(cp.int64))
            host = cp.asnumpy(cp.concatenate(tail))  # sync 4 (the only one on the fused int8 quant+ans path)
            data_size, pos = host[:len(enc_jobs)], len(enc_jobs)
            if esc_counts is None:
                esc_counts, pos = host[pos:pos + T], pos + T
            if tab.meta is not None:
                tab.meta_host = host[pos:pos + n_meta].reshape(-1, 2)
                pos += n_meta
            if d_params is not None:
                bounds, grids = _grids_from(host[pos:pos + 4 * T].view(np.float64))
                d_params = None
        if esc_counts is None:
            esc_counts = cp.asnumpy(d_esc).astype(np.int64)
        if d_params is not None:  # no rANS job ran (empty streams)
            bounds, grids = _grids_from(cp.asnumpy(d_params))
        stamp("gather")
        batch = EncodedBatch(self, arrays, bounds, grids, cdts, streams, codes, esc_counts, tab, ends,
                             lane_base, n_lanes, data, data_off, data_size)
        batch._keep = (keep, scratch, tab, code_buf)
        return batch

    def _host_tables(self, streams, d_counts, hist_off, hist_nbins):
        """The first pass's tables: histograms to the host, numpy plane choice and normalisation."""
        cp = _cp()
        counts = cp.asnumpy(d_counts).astype(np.int64)  # sync 3
        rans = entropy.Rans(self.lanes, self.chunk)
        enc_jobs, heads, enc_tables = [], [], []
        for ss in streams:
            for s in ss:
                if s.n == 0:
                    continue
                hists = [counts[hist_off[h]:hist_off[h] + hist_nbins[h]] for h in s.hist]
                s.layout, s.planes = _choose(hists, s.dtype.itemsize)
                for plane in s.planes:
                    if plane.present.size == 1:
                        s.jobs.append(None)
                        continue
                    table, rows_enc = rans._code_table(plane.counts[plane.present])
                    enc = np.zeros((plane.counts.size, 5), np.uint32)
                    enc[plane.present] = rows_enc.astype(np.uint32)
                    s.jobs.append(len(enc_jobs))
                    heads.append((plane.present, table))
                    enc_tables.append(enc)
                    enc_jobs.append((s, plane))
        table_off, table_total = _offsets([e.nbytes for e in enc_tables])
        host_tables = np.zeros(max(table_total, 1), np.uint8)
        for e, o in zip(enc_tables, table_off):
            host_tables[o:o + e.nbytes] = e.view(np.uint8).reshape(-1)
        d_tables = cp.asarray(host_tables)
        return enc_jobs, _Tables(d_tables, table_off, None, heads=heads)

    def _device_tables(self, streams, d_counts, hist_off, hist_nbins):
        """Tables built on the device (``build_tables``: the CPU's normalisation, bit for bit). The host
        only decides whole vs byte planes for 2-byte streams, from 4 numbers a stream (one small sync);
        where the device's float64 costs are within 1e-6 of a tie it re-decides on the exact counts."""
        cp = _cp()
        live = [s for ss in streams for s in ss if s.n]
        two = [s for s in live if s.dtype.itemsize == 2]
        plane_buf = cp.empty(max(1, 512 * len(two)), cp.uint64)
        pos2 = {id(s): i for i, s in enumerate(two)}
        if two:
            d_cnt = cp.asarray(np.array([d_counts.data.ptr + 8 * hist_off[s.hist[0]] for s in two], np.uint64))
            d_pl = cp.asarray(np.array([plane_buf.data.ptr + 8 * 512 * i for i in range(len(two))], np.uint64))
            costs = cp.empty(4 * len(two), cp.float64)
            ks = cp.empty(3 * len(two), cp.int32)
            _fn("plane_costs")((len(two),), (1024,), (d_cnt, d_pl, costs, ks))
            h = cp.asnumpy(costs).reshape(-1, 4)  # sync 3 (only for 2-byte streams: int16 codes, dedup indices)
            k = cp.asnumpy(ks).reshape(-1, 3)
        for s in live:
            w = s.dtype.itemsize
            if w == 1:
                s.layout, s.planes = entropy._WHOLE, [_DevPlane(1, 0, 0xFF, d_counts.data.ptr + 8 * hist_off[s.hist[0]], 256)]
            elif w == 4:
                s.layout = entropy._BYTES
                s.planes = [_DevPlane(1, 8 * b, 0xFF, d_counts.data.ptr + 8 * hist_off[s.hist[b]], 256) for b in range(4)]
            else:
                i = pos2[id(s)]
                whole = h[i, 0] + 8.0 * k[i, 0] * 4
                planes = h[i, 1] + 8.0 * k[i, 1] * 3 + h[i, 2] + 8.0 * k[i, 2] * 3
                if abs(whole - planes) <= 1e-6 * max(whole, planes, 1.0):  # near tie: the exact host rule
                    full = cp.asnumpy(d_counts[hist_off[s.hist[0]]:hist_off[s.hist[0]] + 65536]).astype(np.int64)
                    use_whole = _choose([full], 2)[0] == entropy._WHOLE
                else:
                    use_whole = k[i, 0] <= entropy.MAX_WHOLE_ALPHABET and whole <= planes
                base = plane_buf.data.ptr + 8 * 512 * i
                if use_whole:
                    s.layout = entropy._WHOLE
                    s.planes = [_DevPlane(2, 0, 0xFFFF, d_counts.data.ptr + 8 * hist_off[s.hist[0]], 65536)]
                else:
                    s.layout = entropy._BYTES
                    s.planes = [_DevPlane(1, 0, 0xFF, base, 256), _DevPlane(1, 8, 0xFF, base + 8 * 256, 256)]
        enc_jobs = []
        for s in live:
            for plane in s.planes:
                s.jobs.append(len(enc_jobs))
                enc_jobs.append((s, plane))
        nb = [p.nbins for _, p in enc_jobs]
        enc_off, enc_total = _offsets([20 * n for n in nb])
        scr_off, scr_total = _offsets([9 * n for n in nb])
        enc = cp.empty(max(enc_total, 4), cp.uint8)
        scr = cp.empty(max(scr_total, 4), cp.uint8)
        meta = cp.zeros(max(2 * len(enc_jobs), 2), cp.int32)
        if enc_jobs:
            _fn("build_tables")((len(enc_jobs),), (1024,), (
                cp.asarray(np.array([p.counts_ptr for _, p in enc_jobs], np.uint64)), cp.asarray(np.array(nb, np.int32)),
                cp.asarray((enc_off + enc.data.ptr).astype(np.uint64)), cp.asarray((scr_off + scr.data.ptr).astype(np.uint64)),
                meta))
        return enc_jobs, _Tables(enc, enc_off, meta, scratch=scr, scratch_off=scr_off, nbins=nb, keep=(plane_buf,))


# -- decoding -------------------------------------------------------------------------------
@dataclass
class DecodePlan:
    """Host-parsed frames with their lane data staged on the device, ready for :func:`run_decode`."""

    headers: list
    grids: list
    escapes: list
    outputs: list       # per frame: list of cupy stream arrays
    dedup: list
    jobs: object        # cupy job array (rANS)
    n_jobs: int
    fill: object
    n_fill: int
    max_lanes: int
    max_n: int
    staging: object
    expected_n: list
    lanes: tuple = ()   # lanes of every rANS job (run_decode's lanes-per-thread must divide them all)


def _parse_stream(buf) -> tuple:
    """Header + planes of an entropy stream (host; the CPU reader's checks)."""
    data = np.frombuffer(framing.as_bytes(buf), np.uint8)
    reader = entropy._Reader(data)
    head = reader.take(entropy._HEADER.size).tobytes()
    magic, version, code, layout, lanes, chunk, n = entropy._HEADER.unpack(head)
    if reader.unpack(entropy._HEADER_CHECK)[0] != __import__("zlib").crc32(head):
        raise CorruptStreamError("entropy-stream header checksum mismatch")
    if magic != entropy.Rans.magic or version != entropy.VERSION:
        raise CorruptStreamError("not a Rans v1 stream")
    if code >= len(entropy.DTYPES) or layout not in (entropy._WHOLE, entropy._BYTES) or lanes < 1 or chunk < 1:
        raise CorruptStreamError("corrupt entropy-stream header")
    dtype = entropy.DTYPES[code]
    w = dtype.itemsize
    planes = []
    if n:
        rans = entropy.Rans()
        widths = [w] if layout == entropy._WHOLE else [1] * w
        if layout == entropy._WHOLE and w > 2:
            raise CorruptStreamError("GPU decoder: whole layout of a wide dtype")  # never written for our streams
        planes = [rans._read_plane(reader, width, n, chunk, lanes) for width in widths]
    if reader.pos != data.size:
        raise CorruptStreamError(f"{data.size - reader.pos} trailing bytes")
    return dtype, layout, lanes, chunk, n, planes


def decode_plan(frames: list) -> DecodePlan:
    cp = _cp()
    headers, grids, escapes, outputs, dedups, expected = [], [], [], [], [], []
    rans_jobs, fill_jobs, blobs = [], [], []  # blobs: host arrays to stage
    for fr in frames:
        header, payload = framing.unpack(fr)
        cid = header.codec.get("id")
        if cid not in ("quant+ans", "quant+dedup+ans"):
            raise ValueError(f"the GPU decoder reads quant+ans / quant+dedup+ans frames, not {cid!r}")
        dedup = cid == "quant+dedup+ans"
        sections = framing.split_sections(payload)
        if len(sections) != 2 + dedup:
            raise CorruptStreamError(f"{cid}: {len(sections)} sections, expected {2 + dedup}")
        grid, esc = LinearQuantizer.unpack_side(sections[0], header.dtype)
        outs = []
        for sec in sections[1:]:
            dtype, layout, lanes, chunk, n, planes = _parse_stream(sec)
            out = cp.empty(n, dtype)
            outs.append(out)
            w = dtype.itemsize
            for b, (alphabet, table, ends, body, lane_max) in enumerate(planes):
                base = out.data.ptr + (0 if layout == entropy._WHOLE else b)
                width = w if layout == entropy._WHOLE else 1
                if table is None:
                    fill_jobs.append((base, n, width, w, int(alphabet[0])))
                    continue
                scale_bits, lut_sym, lut_fb = entropy.Rans()._decoder_tables(table, alphabet)
                words = np.zeros(body.size // 2 + lane_max + 2, np.uint16)
                words.view(np.uint8)[:body.size] = body
                k = len(blobs)
                blobs += [words.view(np.uint8), ends.astype("<u4").view(np.uint8),
                          lut_sym.astype(np.uint16).view(np.uint8), lut_fb.astype(np.uint32).view(np.uint8)]
                rans_jobs.append((base, n, width, w, chunk, lanes, scale_bits, k, ends.size))
        headers.append(header), grids.append(grid), escapes.append(esc), outputs.append(outs), dedups.append(dedup)
        expected.append(header.size)
    offs, total = _offsets([b.size for b in blobs])
    host = np.zeros(max(total, 1), np.uint8)
    for b, o in zip(blobs, offs):
        host[o:o + b.size] = b
    staging = cp.asarray(host)
    ptr = staging.data.ptr
    jobs = np.zeros(len(rans_jobs), _JOB)
    max_lanes = max_n = 1
    for i, (base, n, width, stride, chunk, lanes, m, k, nl) in enumerate(rans_jobs):
        jobs[i]["src"], jobs[i]["n"], jobs[i]["width"], jobs[i]["stride"] = base, n, width, stride
        jobs[i]["scratch"], jobs[i]["ends"] = ptr + offs[k], ptr + offs[k + 1]
        jobs[i]["table"], jobs[i]["table2"] = ptr + offs[k + 2], ptr + offs[k + 3]
        jobs[i]["chunk"], jobs[i]["lanes"], jobs[i]["cap"] = chunk, lanes, m
        max_lanes = max(max_lanes, nl)
    fills = np.zeros(len(fill_jobs), _JOB)
    for i, (base, n, width, stride, value) in enumerate(fill_jobs):
        fills[i]["src"], fills[i]["n"], fills[i]["width"], fills[i]["stride"], fills[i]["mask"] = base, n, width, stride, value
        max_n = max(max_n, n)
    return DecodePlan(headers, grids, escapes, outputs, dedups, cp.asarray(jobs.view(np.uint8)), len(rans_jobs),
                      cp.asarray(fills.view(np.uint8)), len(fill_jobs), max_lanes, max_n, staging, expected,
                      tuple(int(j[5]) for j in rans_jobs))


def run_decode(plan: DecodePlan, states: int = 1) -> list:
    """Run the decode kernels of a plan; returns one cupy array per frame (one sync at the end).
    ``states``: rANS lanes decoded per thread (interleaved states), where it divides every job's lanes."""
    cp = _cp()
    err = cp.zeros(1, cp.int32)
    if plan.n_jobs:
        S = states if states in (2, 4) and all(lanes % states == 0 for lanes in plan.lanes) else 1
        if S == 1:
            _fn("rans_decode")((-(-plan.max_lanes // 128), plan.n_jobs), (128,), (plan.jobs, err))
        else:
            _fn(f"rans_decode_multi<{S}>")((-(-(plan.max_lanes // S) // 128), plan.n_jobs), (128,), (plan.jobs, err))
    if plan.n_fill:
        _fn("fill_kernel")((_grid_size(plan.max_n), plan.n_fill), (_BLOCK,), (plan.fill,))
    results, groups = [], {}
    for f, h in enumerate(plan.headers):
        outs = plan.outputs[f]
        codes = outs[0]
        if codes.dtype not in (np.dtype(np.int8), np.dtype(np.int16)):
            raise CorruptStreamError(f"codes of dtype {codes.dtype}")
        width = row_width(h.shape)
        if plan.dedup[f]:
            unique, inverse = outs
            if unique.size % width or inverse.size != h.size // width or inverse.dtype.kind != "u":
                raise CorruptStreamError("dedup streams do not match the frame shape")
            n_rows = inverse.size
        else:
            if codes.size != h.size:
                raise CorruptStreamError(f"{codes.size} values decoded, frame says {h.size}")
            inverse, n_rows = None, h.size // width if width else 0
        out = cp.empty(h.shape, h.dtype)
        results.append(out)
        groups.setdefault((np.dtype(h.dtype), codes.dtype), []).append((f, codes, inverse, out, width, n_rows))
    esc_found = cp.zeros(len(plan.headers), cp.uint64)
    bad = cp.zeros(1, cp.int32)
    for (dt, cdt), items in groups.items():
        sel = np.array([it[0] for it in items])
        args = (cp.asarray(np.array([it[1].data.ptr for it in items], np.uint64)),
                cp.asarray(np.array([it[2].data.ptr if it[2] is not None else 0 for it in items], np.uint64)),
                cp.asarray(np.array([it[2].dtype.itemsize if it[2] is not None else 0 for it in items], np.int32)),
                cp.asarray(np.array([it[3].data.ptr for it in items], np.uint64)),
                cp.asarray(np.array([(plan.grids[i].base, plan.grids[i].step) for i in sel], np.float64)),
                cp.asarray(np.array([it[5] for it in items], np.int64)),
                cp.asarray(np.array([it[4] for it in items], np.int64)))
        nuniq = cp.asarray(np.array([it[1].size // max(it[4], 1) for it in items], np.int64))
        found = cp.zeros(len(items), cp.uint64)
        n_max = max(int(it[3].size) for it in items)
        _fn(f"dequantize_kernel<{_ctype(dt)},{_ctype(cdt)}>")(
            (_grid_size(n_max), len(items)), (_BLOCK,), (*args, found, np.int32(code_limits(cdt)[1]), nuniq, bad))
        esc_found[cp.asarray(sel)] = found
    host = cp.asnumpy(cp.concatenate([err.astype(cp.int64), bad.astype(cp.int64), esc_found.astype(cp.int64)]))
    if host[0]:
        raise CorruptStreamError("rANS lane data corrupt")
    if host[1]:
        raise CorruptStreamError("dedup index out of range")
    for f, out in enumerate(results):
        esc = plan.escapes[f]
        if int(host[2 + f]) != esc.size:
            raise CorruptStreamError(f"escape count mismatch ({int(host[2 + f])} escape codes, {esc.size} values)")
        if esc.size:
            outs = plan.outputs[f]
            e = code_limits(outs[0].dtype)[1]
            width = row_width(plan.headers[f].shape)
            if plan.dedup[f]:
                mask = (outs[0].reshape(-1, width) == e)[outs[1].astype(cp.int64)].reshape(-1)
            else:
                mask = outs[0] == e
            out.reshape(-1)[cp.flatnonzero(mask)] = cp.asarray(esc)
    return results
