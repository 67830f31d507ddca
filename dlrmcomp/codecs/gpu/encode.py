"""Encoding on the GPU: the launch sequence of ``gpu:quant+ans`` / ``gpu:quant+dedup+ans`` (range ->
quantize (+ escapes) -> dedup -> histogram -> coder tables -> rANS encode -> gather) into a
device-resident :class:`EncodedBatch`, which writes CPU-format frames on request."""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .. import frame as framing
from .. import stream
from ..dedup import index_dtype
from ..entropy import Rans
from ..pipeline import row_width
from ..quantize import Grid, LinearQuantizer, Quantized, code_limits
from .plan import CodeViews, CodedStream, CoderTables, DevicePlane, choose_planes, grids_from
from .runtime import BLOCK, JOB, aligned_offsets, as_cupy, cp_module, ctype, grid_size, kernel, ord_decode, ord_init


@dataclass
class EncodedBatch:
    """Device-resident result of :meth:`GpuPipeline.encode_device`; :meth:`frames` makes bytes."""

    codec: object            # the GpuPipeline
    arrays: list
    bounds: list
    grids: list
    code_dtypes: list
    streams: list            # per table: list of CodedStream
    codes: list              # per table: cupy codes array (for escapes)
    esc_counts: np.ndarray
    tables: "CoderTables"        # per rANS job: present symbols and table bytes
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
        cp = cp_module()
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

    def _stream_bytes(self, s: CodedStream, ends: np.ndarray, data: np.ndarray) -> bytes:
        rans = Rans(self.codec.lanes, self.codec.chunk)
        parts = [rans.header(s.dtype, s.layout, s.n, stream.stream_lanes(s.n, self.codec.lanes))]
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
            pad = bytes(stream.pad_to_4(size + len(head) + len(table)))
            lb, nl = int(self.lane_base[j]), int(self.n_lanes[j])
            base = ends[lb - 1] if lb else 0
            lane_ends = (ends[lb:lb + nl] - base).astype("<u4").tobytes()
            body = data[self.data_off[j]:self.data_off[j] + self.data_size[j]].tobytes()
            for part in (head, table, pad, lane_ends, body):
                parts.append(part)
                size += len(part)
        return b"".join(parts)


def encode_device(codec, xs) -> EncodedBatch:
    cp = cp_module()
    prof = codec.profile  # a dict: stage -> seconds (adds syncs)

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
        if np.dtype(a.dtype) != dt or dt not in codec.dtypes:
            raise ValueError(f"{codec.name}: all arrays must share one dtype of float32/float64, got {a.dtype}")
    T = len(arrays)
    sizes = np.array([a.size for a in arrays], np.int64)
    d_ptrs = cp.asarray(np.array([a.data.ptr for a in arrays], np.uint64))
    d_sizes = cp.asarray(sizes)
    fast = codec.fused and codec.dtype in ("int8", "int16")
    grid_x = grid_size(int(sizes.max()), 64 if fast else 4)
    # 1. ranges
    d_rng = cp.asarray(ord_init(T, dt))
    kernel(f"range_kernel<{ctype(dt)}>")((grid_x, T), (BLOCK,), (d_ptrs, d_sizes, d_rng))
    bounds, grids, cdts, params = [], [], [], np.zeros((T, 4), np.float64)
    d_params = None
    if fast:  # grid parameters on the device: no sync; bounds and grids come back with a later sync
        cdts = [np.dtype(np.int8 if codec.dtype == "int8" else np.int16)] * T
        d_params = cp.empty(4 * T, cp.float64)
        kernel(f"grid_params<{ctype(dt)}>")((-(-T // 128),), (128,), (
            d_rng, np.int32(T), np.float64(codec.eb), np.int32(codec.mode == "abs"),
            np.float64(code_limits(cdts[0])[0]), d_params))
        rng = np.zeros((0, 2))
    else:
        rng = ord_decode(cp.asnumpy(d_rng), dt).reshape(T, 2).astype(np.float64)
    stamp("range")
    for t in range(len(rng)):
        lo, hi = (float(rng[t, 0]), float(rng[t, 1])) if rng[t, 0] <= rng[t, 1] else (0.0, 0.0)
        if codec.mode == "abs":
            eb_abs = codec.eb
        else:
            with np.errstate(over="ignore"):
                eb_abs = float(codec.eb * (np.float64(hi) - np.float64(lo)))
        grid = Grid.for_range(lo, hi, eb_abs)
        cdt = LinearQuantizer(codec.dtype).code_dtype(grid, lo, hi)
        bounds.append(eb_abs), grids.append(grid), cdts.append(cdt)
        params[t] = (grid.base, grid.step, eb_abs, float(code_limits(cdt)[0]))
    # 2. quantize, one launch per code dtype
    code_off, code_total = aligned_offsets([int(s) * c.itemsize for s, c in zip(sizes, cdts)])
    code_buf = cp.empty(code_total, cp.uint8)
    codes = CodeViews(code_buf, code_off, sizes, cdts, [a.shape for a in arrays])
    d_esc = cp.zeros(T, cp.uint64)
    fused_hist = fast and not codec.dedup and cdts[0].itemsize == 1
    d_counts = None
    if fast:
        d_cptr = cp.asarray((code_off + code_buf.data.ptr).astype(np.uint64))
        esc_code = np.int32(code_limits(cdts[0])[1])
        if fused_hist:
            d_counts = cp.zeros(256 * T, cp.uint64)
            kernel(f"quantize_hist_kernel<{ctype(dt)}>")((grid_x, T), (BLOCK,), (
                d_ptrs, d_sizes, d_params, d_cptr, d_esc, esc_code, d_counts))
        else:
            kernel(f"quantize_kernel<{ctype(dt)},{ctype(cdts[0])}>")((grid_x, T), (BLOCK,), (
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
        kernel(f"quantize_kernel<{ctype(dt)},{ctype(cdt)}>")(
            (grid_x, len(sel)), (BLOCK,), (*args[:4], esc_out, np.int32(code_limits(cdt)[1])))
        if args[4] is None:
            d_esc[cp.asarray(np.array(sel))] = esc_out
    stamp("quantize")
    # 3. dedup
    streams: list[list[CodedStream]] = []
    if codec.dedup:
        widths = [row_width(a.shape) for a in arrays]
        rows = sizes // np.maximum(widths, 1)
        row_bytes = np.array([w * c.itemsize for w, c in zip(widths, cdts)], np.int32)
        if np.any(row_bytes % 4) or np.any(sizes == 0):
            raise ValueError(f"{codec.name}: GPU dedup needs non-empty rows of a multiple of 4 bytes "
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
        gx = grid_size(int(rows.max()), 1)
        kernel("dedup_insert")((gx, T), (BLOCK,), (d_codes, d_rows, d_rb, d_soff, d_caps, slots, row_slot, d_roff))
        kernel("dedup_flag")((gx, T), (BLOCK,), (d_rows, d_soff, slots, row_slot, d_roff, flags))
        incl = cp.cumsum(flags, dtype=cp.int32)
        uniq_off, uniq_total = aligned_offsets([int(s) * c.itemsize for s, c in zip(sizes, cdts)])
        uniq_buf = cp.empty(uniq_total, cp.uint8)
        inverse = cp.empty(int(rows.sum()), cp.uint32)
        d_uniq = cp.asarray((uniq_off + uniq_buf.data.ptr).astype(np.uint64))
        kernel("dedup_finish")((gx, T), (BLOCK,), (d_codes, d_rows, d_rb, d_soff, slots, row_slot, d_roff, incl,
                                                 d_uniq, inverse))
        ends_idx = cp.asarray(row_off + rows - 1)
        parts = [incl[ends_idx].astype(cp.int64), d_esc.astype(cp.int64)]
        if d_params is not None:
            parts.append(d_params.view(cp.int64))
        host = cp.asnumpy(cp.concatenate(parts))  # sync 2 (the first one on the fused path)
        n_unique, esc_counts = host[:T], host[T:2 * T]
        if d_params is not None:
            bounds, grids = grids_from(host[2 * T:].view(np.float64))
            d_params = None
        n_unique = n_unique - np.concatenate([[0], n_unique[:-1]])
        for t in range(T):
            u = int(n_unique[t])
            idt = index_dtype(u)
            streams.append([
                CodedStream(int(uniq_buf.data.ptr + uniq_off[t]), cdts[t].itemsize, cdts[t], u * int(widths[t])),
                CodedStream(int(inverse.data.ptr + 4 * row_off[t]), 4, idt, int(rows[t]))])
        keep = (slots, row_slot, flags, incl, uniq_buf, inverse)
    else:
        esc_counts = None  # read with the final sizes
        for t in range(T):
            streams.append([CodedStream(codes.ptr(t), cdts[t].itemsize, cdts[t], int(sizes[t]))])
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
    hjobs = np.zeros(len(hist_jobs), JOB)
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
        splits = int(max(1, min(2048, -(-n_max // (BLOCK * 16)))))
        nwin = -(-int(nb_arr[sel].max()) // win)
        smem = 4 * win * ((BLOCK // 32) if small else 1)
        kernel("histogram_kernel")((nwin * splits, sel.size), (BLOCK,),
                                (cp.asarray(hjobs[sel].view(np.uint8)), d_counts, cp.asarray(hist_off[sel]),
                                 np.int32(win), np.int32(splits)), shared_mem=smem)
    stamp("histogram")
    if codec.tables == "host":
        enc_jobs, tab = host_tables(codec, streams, d_counts, hist_off, hist_nbins)
        stamp("tables (host)")
    else:
        enc_jobs, tab = device_tables(codec, streams, d_counts, hist_off, hist_nbins)
        stamp("tables (device)")
    # 5. rANS encode + gather
    job_lanes = np.array([stream.stream_lanes(s.n, codec.lanes) for s, _ in enc_jobs], np.int64)
    caps = np.array([-(-min(s.n, codec.chunk) // int(l)) + 3 for (s, _), l in zip(enc_jobs, job_lanes)], np.int64)
    n_lanes = np.array([-(-s.n // codec.chunk) for s, _ in enc_jobs], np.int64) * job_lanes
    lane_base = np.concatenate([[0], np.cumsum(n_lanes)[:-1]]).astype(np.int64)
    scratch_off, scratch_total = aligned_offsets([2 * int(c) * int(n) for c, n in zip(caps, n_lanes)])
    data_off, data_total = aligned_offsets([2 * s.n + 4 * int(n) for (s, _), n in zip(enc_jobs, n_lanes)])
    scratch = cp.empty(max(scratch_total, 2), cp.uint8)
    data = cp.empty(max(data_total, 1), cp.uint8)
    jobs = np.zeros(len(enc_jobs), JOB)
    for i, (s, plane) in enumerate(enc_jobs):
        jobs[i]["src"], jobs[i]["n"], jobs[i]["width"], jobs[i]["stride"] = s.ptr, s.n, s.load, s.load
        jobs[i]["shift"], jobs[i]["mask"] = plane.shift, plane.mask
        jobs[i]["table"] = tab.enc_ptr(i)
        jobs[i]["table2"] = tab.k_ptr(i)
        jobs[i]["scratch"] = scratch.data.ptr + scratch_off[i]
        jobs[i]["chunk"], jobs[i]["lanes"], jobs[i]["cap"] = codec.chunk, job_lanes[i], caps[i]
        jobs[i]["lane_base"] = lane_base[i]
    total_lanes = int(n_lanes.sum())
    d_sizes_l = cp.zeros(max(total_lanes, 1), cp.int64)
    tops = cp.zeros(max(total_lanes, 1), cp.int32)
    ends = d_sizes_l
    data_size = np.zeros(len(enc_jobs), np.int64)
    if enc_jobs:
        d_jobs = cp.asarray(jobs.view(np.uint8))
        S = codec.states if np.all(job_lanes % codec.states == 0) else 1
        if S == 1:
            kernel("rans_encode")((int(-(-n_lanes.max() // 128)), len(enc_jobs)), (128,), (d_jobs, d_sizes_l, tops))
        else:
            kernel(f"rans_encode_multi<{S}>")((int(-(-(n_lanes.max() // S) // 128)), len(enc_jobs)), (128,),
                                           (d_jobs, d_sizes_l, tops))
        stamp("rans_encode")
        ends = cp.cumsum(d_sizes_l)
        kernel("rans_gather")((int(min(1024, -(-n_lanes.max() // 8))), len(enc_jobs)), (BLOCK,),
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
            bounds, grids = grids_from(host[pos:pos + 4 * T].view(np.float64))
            d_params = None
    if esc_counts is None:
        esc_counts = cp.asnumpy(d_esc).astype(np.int64)
    if d_params is not None:  # no rANS job ran (empty streams)
        bounds, grids = grids_from(cp.asnumpy(d_params))
    stamp("gather")
    batch = EncodedBatch(codec, arrays, bounds, grids, cdts, streams, codes, esc_counts, tab, ends,
                         lane_base, n_lanes, data, data_off, data_size)
    batch._keep = (keep, scratch, tab, code_buf)
    return batch

def host_tables(codec, streams, d_counts, hist_off, hist_nbins):
    """The first pass's tables: histograms to the host, numpy plane choice and normalisation."""
    cp = cp_module()
    counts = cp.asnumpy(d_counts).astype(np.int64)  # sync 3
    rans = Rans(codec.lanes, codec.chunk)
    enc_jobs, heads, enc_tables = [], [], []
    for ss in streams:
        for s in ss:
            if s.n == 0:
                continue
            hists = [counts[hist_off[h]:hist_off[h] + hist_nbins[h]] for h in s.hist]
            s.layout, s.planes = choose_planes(hists, s.dtype.itemsize)
            for plane in s.planes:
                if plane.present.size == 1:
                    s.jobs.append(None)
                    continue
                table, rows_enc = rans.code_table(plane.counts[plane.present])
                enc = np.zeros((plane.counts.size, 5), np.uint32)
                enc[plane.present] = rows_enc.astype(np.uint32)
                s.jobs.append(len(enc_jobs))
                heads.append((plane.present, table))
                enc_tables.append(enc)
                enc_jobs.append((s, plane))
    table_off, table_total = aligned_offsets([e.nbytes for e in enc_tables])
    host_tables = np.zeros(max(table_total, 1), np.uint8)
    for e, o in zip(enc_tables, table_off):
        host_tables[o:o + e.nbytes] = e.view(np.uint8).reshape(-1)
    d_tables = cp.asarray(host_tables)
    return enc_jobs, CoderTables(d_tables, table_off, None, heads=heads)

def device_tables(codec, streams, d_counts, hist_off, hist_nbins):
    """Tables built on the device (``build_tables``: the CPU's normalisation, bit for bit). The host
    only decides whole vs byte planes for 2-byte streams, from 4 numbers a stream (one small sync);
    where the device's float64 costs are within 1e-6 of a tie it re-decides on the exact counts."""
    cp = cp_module()
    live = [s for ss in streams for s in ss if s.n]
    two = [s for s in live if s.dtype.itemsize == 2]
    plane_buf = cp.empty(max(1, 512 * len(two)), cp.uint64)
    pos2 = {id(s): i for i, s in enumerate(two)}
    if two:
        d_cnt = cp.asarray(np.array([d_counts.data.ptr + 8 * hist_off[s.hist[0]] for s in two], np.uint64))
        d_pl = cp.asarray(np.array([plane_buf.data.ptr + 8 * 512 * i for i in range(len(two))], np.uint64))
        costs = cp.empty(4 * len(two), cp.float64)
        ks = cp.empty(3 * len(two), cp.int32)
        kernel("plane_costs")((len(two),), (1024,), (d_cnt, d_pl, costs, ks))
        h = cp.asnumpy(costs).reshape(-1, 4)  # sync 3 (only for 2-byte streams: int16 codes, dedup indices)
        k = cp.asnumpy(ks).reshape(-1, 3)
    for s in live:
        w = s.dtype.itemsize
        if w == 1:
            s.layout, s.planes = stream.WHOLE, [DevicePlane(1, 0, 0xFF, d_counts.data.ptr + 8 * hist_off[s.hist[0]], 256)]
        elif w == 4:
            s.layout = stream.BYTES
            s.planes = [DevicePlane(1, 8 * b, 0xFF, d_counts.data.ptr + 8 * hist_off[s.hist[b]], 256) for b in range(4)]
        else:
            i = pos2[id(s)]
            whole = h[i, 0] + 8.0 * k[i, 0] * 4
            planes = h[i, 1] + 8.0 * k[i, 1] * 3 + h[i, 2] + 8.0 * k[i, 2] * 3
            if abs(whole - planes) <= 1e-6 * max(whole, planes, 1.0):  # near tie: the exact host rule
                full = cp.asnumpy(d_counts[hist_off[s.hist[0]]:hist_off[s.hist[0]] + 65536]).astype(np.int64)
                use_whole = choose_planes([full], 2)[0] == stream.WHOLE
            else:
                use_whole = k[i, 0] <= stream.MAX_WHOLE_ALPHABET and whole <= planes
            base = plane_buf.data.ptr + 8 * 512 * i
            if use_whole:
                s.layout = stream.WHOLE
                s.planes = [DevicePlane(2, 0, 0xFFFF, d_counts.data.ptr + 8 * hist_off[s.hist[0]], 65536)]
            else:
                s.layout = stream.BYTES
                s.planes = [DevicePlane(1, 0, 0xFF, base, 256), DevicePlane(1, 8, 0xFF, base + 8 * 256, 256)]
    enc_jobs = []
    for s in live:
        for plane in s.planes:
            s.jobs.append(len(enc_jobs))
            enc_jobs.append((s, plane))
    nb = [p.nbins for _, p in enc_jobs]
    enc_off, enc_total = aligned_offsets([20 * n for n in nb])
    scr_off, scr_total = aligned_offsets([9 * n for n in nb])
    enc = cp.empty(max(enc_total, 4), cp.uint8)
    scr = cp.empty(max(scr_total, 4), cp.uint8)
    meta = cp.zeros(max(2 * len(enc_jobs), 2), cp.int32)
    if enc_jobs:
        kernel("build_tables")((len(enc_jobs),), (1024,), (
            cp.asarray(np.array([p.counts_ptr for _, p in enc_jobs], np.uint64)), cp.asarray(np.array(nb, np.int32)),
            cp.asarray((enc_off + enc.data.ptr).astype(np.uint64)), cp.asarray((scr_off + scr.data.ptr).astype(np.uint64)),
            meta))
    return enc_jobs, CoderTables(enc, enc_off, meta, scratch=scr, scratch_off=scr_off, nbins=nb, keep=(plane_buf,))
