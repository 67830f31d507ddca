"""Decoding on the GPU: frames parsed on the host with the CPU reader's checks
(:class:`dlrmcomp.codecs.stream.StreamHeader`, ``Rans.read_plane``), lane data staged in one upload,
then rANS decode, fill and dequantize kernels (one sync at the end)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import CorruptStreamError
from .. import frame as framing
from .. import stream
from ..entropy import Rans
from ..pipeline import row_width
from ..quantize import LinearQuantizer, code_limits
from .runtime import BLOCK, JOB, aligned_offsets, cp_module, ctype, grid_size, kernel

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
    reader = stream.Reader(data)
    h = stream.StreamHeader.read(reader, Rans.magic, "Rans")
    planes = []
    if h.n:
        if h.layout == stream.WHOLE and h.dtype.itemsize > 2:
            raise CorruptStreamError("GPU decoder: whole layout of a wide dtype")  # never written for our streams
        rans = Rans()
        planes = [rans.read_plane(reader, width, h.n, h.chunk, h.lanes) for width in h.plane_widths]
    if reader.pos != data.size:
        raise CorruptStreamError(f"{data.size - reader.pos} trailing bytes")
    return h.dtype, h.layout, h.lanes, h.chunk, h.n, planes


def decode_plan(frames: list) -> DecodePlan:
    cp = cp_module()
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
                base = out.data.ptr + (0 if layout == stream.WHOLE else b)
                width = w if layout == stream.WHOLE else 1
                if table is None:
                    fill_jobs.append((base, n, width, w, int(alphabet[0])))
                    continue
                scale_bits, lut_sym, lut_fb = Rans().decoder_tables(table, alphabet)
                words = np.zeros(body.size // 2 + lane_max + 2, np.uint16)
                words.view(np.uint8)[:body.size] = body
                k = len(blobs)
                blobs += [words.view(np.uint8), ends.astype("<u4").view(np.uint8),
                          lut_sym.astype(np.uint16).view(np.uint8), lut_fb.astype(np.uint32).view(np.uint8)]
                rans_jobs.append((base, n, width, w, chunk, lanes, scale_bits, k, ends.size))
        headers.append(header), grids.append(grid), escapes.append(esc), outputs.append(outs), dedups.append(dedup)
        expected.append(header.size)
    offs, total = aligned_offsets([b.size for b in blobs])
    host = np.zeros(max(total, 1), np.uint8)
    for b, o in zip(blobs, offs):
        host[o:o + b.size] = b
    staging = cp.asarray(host)
    ptr = staging.data.ptr
    jobs = np.zeros(len(rans_jobs), JOB)
    max_lanes = max_n = 1
    for i, (base, n, width, stride, chunk, lanes, m, k, nl) in enumerate(rans_jobs):
        jobs[i]["src"], jobs[i]["n"], jobs[i]["width"], jobs[i]["stride"] = base, n, width, stride
        jobs[i]["scratch"], jobs[i]["ends"] = ptr + offs[k], ptr + offs[k + 1]
        jobs[i]["table"], jobs[i]["table2"] = ptr + offs[k + 2], ptr + offs[k + 3]
        jobs[i]["chunk"], jobs[i]["lanes"], jobs[i]["cap"] = chunk, lanes, m
        max_lanes = max(max_lanes, nl)
    fills = np.zeros(len(fill_jobs), JOB)
    for i, (base, n, width, stride, value) in enumerate(fill_jobs):
        fills[i]["src"], fills[i]["n"], fills[i]["width"], fills[i]["stride"], fills[i]["mask"] = base, n, width, stride, value
        max_n = max(max_n, n)
    return DecodePlan(headers, grids, escapes, outputs, dedups, cp.asarray(jobs.view(np.uint8)), len(rans_jobs),
                      cp.asarray(fills.view(np.uint8)), len(fill_jobs), max_lanes, max_n, staging, expected,
                      tuple(int(j[5]) for j in rans_jobs))


def run_decode(plan: DecodePlan, states: int = 1) -> list:
    """Run the decode kernels of a plan; returns one cupy array per frame (one sync at the end).
    ``states``: rANS lanes decoded per thread (interleaved states), where it divides every job's lanes."""
    cp = cp_module()
    err = cp.zeros(1, cp.int32)
    if plan.n_jobs:
        S = states if states in (2, 4) and all(lanes % states == 0 for lanes in plan.lanes) else 1
        if S == 1:
            kernel("rans_decode")((-(-plan.max_lanes // 128), plan.n_jobs), (128,), (plan.jobs, err))
        else:
            kernel(f"rans_decode_multi<{S}>")((-(-(plan.max_lanes // S) // 128), plan.n_jobs), (128,), (plan.jobs, err))
    if plan.n_fill:
        kernel("fill_kernel")((grid_size(plan.max_n), plan.n_fill), (BLOCK,), (plan.fill,))
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
        kernel(f"dequantize_kernel<{ctype(dt)},{ctype(cdt)}>")(
            (grid_size(n_max), len(items)), (BLOCK,), (*args, found, np.int32(code_limits(cdt)[1]), nuniq, bad))
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
