"""Multi-process helpers for tests and checks: spawn N gloo ranks running a module-level function.

``spawn(fn, world, *args, timeout=...)`` starts ``fn(rank, world, port, *args)`` in ``world``
fresh processes and returns their exit codes (None: still running at the timeout, then killed).
Workers write their results to files the caller names.
"""
from __future__ import annotations

import os
import pickle
import socket
import time
import traceback

import numpy as np
import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(fn, rank, world, port, args):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    fn(rank, world, port, *args)


def spawn(fn, world: int, *args, timeout: float = 60.0, wait_ranks=None) -> list[int | None]:
    """Run ``fn(rank, world, port, *args)`` in ``world`` spawned processes; exit codes.
    ``wait_ranks``: wait only for these ranks, then kill the rest (a deliberately stalled one)."""
    ctx = torch.multiprocessing.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(fn, r, world, port, args), daemon=True) for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for r, p in enumerate(procs):
        if wait_ranks is None or r in wait_ranks:
            p.join(max(0.0, deadline - time.monotonic()))
    codes = [p.exitcode for p in procs]
    for p in procs:  # only our own children, by handle
        if p.is_alive():
            p.kill()
            p.join(5)
    return codes


def _dump(path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


# ---- workers ---------------------------------------------------------------------------------

def slice_for(src: int, dst: int, table: int, rows: int, dim: int) -> torch.Tensor:
    """The deterministic payload slice ``src`` sends ``dst`` for ``table`` (any rank can rebuild it)."""
    g = torch.Generator().manual_seed(1000 * src + 37 * dst + table)
    return torch.randn(rows, dim, generator=g) * (0.01 + 0.1 * table)


def alltoall_worker(rank, world, port, outdir, specs, num_tables=5, dim=16):
    """Exchange deterministic slices with each codec in ``specs``; record, per codec, whether
    every received slice equals the local reference and the per-table bytes vs frame sizes."""
    from ..codecs.quantize import quantize_dequantize
    from ..errorbound import EBSchedule, ErrorBound
    from .alltoall import CommStats, exchange
    from .comms import FrameCodec, get_comm_codec
    from .model import plan_tables
    from .train import init_process_group

    try:
        init_process_group("gloo", timeout=30, rank=rank, world=world, port=port)
        plan = plan_tables([1 + t % 3 for t in range(num_tables)], world)
        mine = plan[rank]
        rows = lambda s, d, t: 7 + 3 * d + t + s  # noqa: E731  - uneven on purpose
        schedule = EBSchedule.auto([10 ** (t % 4 + 2) for t in range(num_tables)])
        results = {}
        for spec in specs:
            codec = get_comm_codec(spec, schedule)
            send = [[slice_for(rank, d, t, rows(rank, d, t), dim) for t in mine] for d in range(world)]
            recv_rows = [[rows(s, rank, t) for t in plan[s]] for s in range(world)]
            stats = CommStats(num_tables)
            recv = exchange(send, [mine] * world, recv_rows, plan, dim, codec, iteration=3, stats=stats)
            exact, worst = True, 0.0
            for s in range(world):
                for j, t in enumerate(plan[s]):
                    x = slice_for(s, rank, t, rows(s, rank, t), dim)
                    if codec is None:
                        ref = x
                    elif isinstance(codec, FrameCodec):
                        a = x.numpy()
                        ref = torch.from_numpy(quantize_dequantize(a, ErrorBound(codec.bound(t, 3), "rel").resolve(a)))
                    else:
                        ref = codec.decode(codec.encode(x, t, 3), x.shape[0], dim, t)
                    exact &= bool(torch.equal(recv[s][j], ref))
                    worst = max(worst, float((recv[s][j] - x).abs().max()))
            frame_bytes = np.zeros(num_tables, np.int64)
            for d in range(world):
                for j, t in enumerate(mine):
                    frame_bytes[t] += codec.encode(send[d][j], t, 3).numel() if codec is not None \
                        else send[d][j].numel() * 4
            results[spec] = {"exact": exact, "max_err": worst, "bytes_sent": stats.bytes_sent.tolist(),
                             "frame_bytes": frame_bytes.tolist(), "bytes_raw": stats.bytes_raw.tolist(),
                             "size_bytes": stats.size_bytes}
        _dump(os.path.join(outdir, f"a2a.{rank}.pkl"), results)
        torch.distributed.destroy_process_group()
    except Exception:  # noqa: BLE001
        _dump(os.path.join(outdir, f"a2a.{rank}.pkl"), {"error": traceback.format_exc()})
        raise


def failure_worker(rank, world, port, outdir, mode, timeout):
    """Rank ``world - 1`` dies (``mode='die'``) or stalls (``'stall'``) before the all-to-all; the
    others record what the all-to-all raised and how long it took."""
    from .alltoall import RankFailure, exchange
    from .train import init_process_group

    init_process_group("gloo", timeout=timeout, rank=rank, world=world, port=port)
    send = [[torch.ones(4, 8)] for _ in range(world)]
    recv_rows = [[4] for _ in range(world)]
    plan = [[r] for r in range(world)]
    exchange(send, [[rank]] * world, recv_rows, plan, 8)  # one good round first
    if rank == world - 1:
        if mode == "die":
            os._exit(1)
        time.sleep(600)
    t0 = time.monotonic()
    try:
        exchange(send, [[rank]] * world, recv_rows, plan, 8)
        _dump(os.path.join(outdir, f"fail.{rank}.pkl"), {"error": None, "seconds": time.monotonic() - t0})
    except RankFailure as exc:
        _dump(os.path.join(outdir, f"fail.{rank}.pkl"), {"error": str(exc), "type": type(exc).__name__,
                                                         "seconds": time.monotonic() - t0})
    os._exit(0)
