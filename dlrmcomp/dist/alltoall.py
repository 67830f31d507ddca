"""The (compressed) all-to-all of pooled embeddings and of their gradients.

Each rank sends, to each destination, one slice per table it owns ([rows, D]); the receiver
knows every slice's shape (it holds its samples' indices), so only compressed codecs need a
size exchange. With a codec: encode each slice (its own range and bound), exchange the int64
sizes with ``all_to_all_single``, then the bytes with ``all_to_all_single`` and variable splits,
then decode. Without one: one float ``all_to_all_single``. gloo (CPU) and NCCL (CUDA) both
provide ``all_to_all_single`` with uneven splits, so nothing else carries bytes.

With one rank (world size 1, no process group) the exchange is a local pass through the same
stages: ``encode_many`` -> ``decode_many`` with a codec, the tensors themselves without one.

A failing or silent peer surfaces as :class:`RankFailure` once the process group's timeout
passes (gloo raises on a closed connection at once, and on a stalled peer after the timeout).
"""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from .comms import CommCodec


class RankFailure(RuntimeError):
    """A collective failed or timed out: a peer rank died, stalled or broke the connection."""


_TIMEOUT_S: dict[str, float] = {"timeout": float("nan")}
_COMM_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout", "peer", "socket", "closed")


def is_comm_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from a collective (a backend error or a timeout), not from the model."""
    if isinstance(exc, RankFailure) or type(exc).__name__.startswith("Dist"):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _COMM_WORDS)


def set_timeout(seconds: float) -> None:
    _TIMEOUT_S["timeout"] = float(seconds)


@contextmanager
def guard(op: str):
    """Turn a backend error in ``op`` into a :class:`RankFailure` that says what happened."""
    t0 = time.perf_counter()
    try:
        yield
    except RankFailure:
        raise
    except Exception as exc:  # noqa: BLE001  - DistBackendError, RuntimeError, ... from the backend
        rank = dist.get_rank() if dist.is_initialized() else -1
        raise RankFailure(
            f"rank {rank}: {op} failed after {time.perf_counter() - t0:.1f} s (timeout "
            f"{_TIMEOUT_S['timeout']:g} s): a peer rank died, stalled or closed its connection "
            f"[{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}]") from exc


@dataclass
class CommStats:
    """One direction's counters since the last :meth:`take`: per table (global ids) bytes raw
    (fp32) and sent (payload), bytes of the size exchange, and encode / exchange / decode seconds."""

    num_tables: int
    bytes_raw: np.ndarray = field(init=False)
    bytes_sent: np.ndarray = field(init=False)
    size_bytes: int = 0
    encode_s: float = 0.0
    exchange_s: float = 0.0
    decode_s: float = 0.0
    calls: int = 0
    syncs: int = 0  # host syncs the exchange itself made (timing reads not counted)
    _clocks: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.bytes_raw = np.zeros(self.num_tables, np.int64)
        self.bytes_sent = np.zeros(self.num_tables, np.int64)

    def add_times(self, clock) -> None:
        """Stage marks (start, encoded, exchanged, decoded) of one exchange; read when needed."""
        self._clocks.append(clock)

    def resolve(self) -> None:
        """Fold the recorded stage times into encode_s / exchange_s / decode_s (waits for the GPU)."""
        for clock in self._clocks:
            enc, exc, dec = clock.seconds()
            self.encode_s += enc
            self.exchange_s += exc
            self.decode_s += dec
        self._clocks = []

    def take(self) -> dict:
        self.resolve()
        out = {"bytes_raw": self.bytes_raw.tolist(), "bytes_sent": self.bytes_sent.tolist(),
               "size_bytes": self.size_bytes, "encode_s": self.encode_s, "exchange_s": self.exchange_s,
               "decode_s": self.decode_s, "calls": self.calls, "syncs": self.syncs}
        self._reset()
        return out

    def split(self) -> "CommStats":
        """What was recorded since the last call, as its own CommStats whose times are read only
        when it is taken (no GPU wait now); this one starts again from zero."""
        out = copy.copy(self)
        self._reset()
        return out

    def _reset(self) -> None:
        self.__post_init__()
        self.size_bytes, self.encode_s, self.exchange_s, self.decode_s, self.calls, self.syncs = 0, 0.0, 0.0, 0.0, 0, 0
        self._clocks = []


def _a2a(out: torch.Tensor, inp: torch.Tensor, out_splits: list[int], in_splits: list[int], group, op: str):
    with guard(op):
        dist.all_to_all_single(out, inp, out_splits, in_splits, group=group)


class Clock:
    """Stage boundaries of one exchange (or step): CUDA events on a GPU (no host sync to take a time),
    ``perf_counter`` on the CPU. :meth:`seconds` waits for the last mark (once, when read)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.marks.append(e)
        else:
            self.marks.append(time.perf_counter())

    def seconds(self) -> list[float]:
        if self.cuda:
            self.marks[-1].synchronize()
            return [a.elapsed_time(b) / 1e3 for a, b in zip(self.marks, self.marks[1:])]
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def _splits(lengths: list[int], counts: list[int]) -> list[int]:
    """Per-rank byte counts from per-slice lengths (``counts[r]`` consecutive slices a rank)."""
    out, pos = [], 0
    for c in counts:
        out.append(int(sum(lengths[pos:pos + c])))
        pos += c
    return out


def exchange(send: list[list[torch.Tensor]], send_tables: list[list[int]], recv_rows: list[list[int]],
             recv_tables: list[list[int]], dim: int, codec: CommCodec | None = None, iteration: int = 0,
             stats: CommStats | None = None, group=None,
             raw_rows: list[list[int]] | None = None) -> list[list[torch.Tensor]]:
    """All-to-all of per-table slices.

    ``send[d][j]``: [rows, dim] for destination rank ``d`` and table ``send_tables[d][j]``;
    ``recv_rows[s][j]``: rows of the slice that rank ``s`` sends of table ``recv_tables[s][j]``.
    Returns ``recv[s][j]`` float32 [recv_rows[s][j], dim] on the send tensors' device.
    ``raw_rows[d][j]`` (default: the slices' rows) are the rows the uncompressed, un-deduplicated
    payload would have: ``bytes_raw`` counts them at 4 bytes a value.

    With a codec: one ``encode_many`` call for every slice, the slice lengths exchanged on the
    device, then the one host sync of the exchange (the split sizes the collective needs; it also
    reads the error flags of earlier device decodes), the bytes, one ``decode_many`` call. A
    codec that makes no bytes (``simulate``) changes the slices, then the floats move.

    ``len(send) == 1`` (one rank) needs no process group: with a codec the bytes go from
    ``encode_many`` straight to ``decode_many`` and are counted; without one (fp32, simulate)
    the slices are returned as they are and nothing is counted, as nothing was encoded or sent.
    """
    world = len(send)
    device = next((x.device for row in send for x in row), torch.device("cpu"))
    local = world == 1
    floats = codec is None or not codec.makes_bytes
    if stats is not None:
        stats.calls += 1
        for d in range(world if not (local and floats) else 0):
            for j, t in enumerate(send_tables[d]):
                stats.bytes_raw[t] += (send[d][j].shape[0] if raw_rows is None else raw_rows[d][j]) * dim * 4
    clock = Clock(device)
    clock.mark()
    if floats:  # raw fp32 (or simulate's reconstruction): one all-to-all, no sizes
        if codec is not None:
            send = [[codec.simulate(x, t, iteration) for x, t in zip(send[d], send_tables[d])] for d in range(world)]
        if local:
            for _ in range(3):  # encoded (simulated), exchanged, decoded
                clock.mark()
            if stats is not None:
                stats.add_times(clock)
            return [list(send[0])]
        flat = [x.reshape(-1) for d in range(world) for x in send[d]]
        inp = torch.cat(flat) if flat else torch.empty(0, device=device)
        in_splits = [sum(x.numel() for x in send[d]) for d in range(world)]
        out_splits = [sum(recv_rows[s]) * dim for s in range(world)]
        out = torch.empty(sum(out_splits), dtype=torch.float32, device=device)
        clock.mark()
        _a2a(out, inp.float().contiguous(), out_splits, in_splits, group, "all-to-all (fp32)")
        clock.mark()
        clock.mark()
        if stats is not None:
            stats.add_times(clock)
            for d in range(world):
                for j, t in enumerate(send_tables[d]):
                    stats.bytes_sent[t] += send[d][j].numel() * 4
        pieces = iter(out.split([r * dim for s in range(world) for r in recv_rows[s]]))
        return [[next(pieces).view(r, dim) for r in recv_rows[s]] for s in range(world)]

    n_send, n_recv = [len(send_tables[d]) for d in range(world)], [len(recv_rows[s]) for s in range(world)]
    flat_tables = [t for d in range(world) for t in send_tables[d]]
    buf, lengths = codec.encode_many([x.detach().float().contiguous() for d in range(world) for x in send[d]],
                                     flat_tables, iteration)
    clock.mark()
    flat_rows = [r for s in range(world) for r in recv_rows[s]]
    if codec.fixed:
        send_lens = [codec.encoded_size(send[d][j].shape[0], dim) for d in range(world) for j in range(n_send[d])]
        recv_lens = [codec.encoded_size(r, dim) for r in flat_rows]
    else:
        got = lengths
        if not local:
            got = torch.empty(sum(n_recv), dtype=torch.int64, device=device)
            _a2a(got, lengths, n_recv, n_send, group, "all-to-all (sizes)")
        checks = codec.take_checks()
        host = torch.cat([lengths, got] + [c.to(torch.int64) for c in checks]).cpu().numpy()  # the one host sync
        if stats is not None:
            stats.syncs += 1
            stats.size_bytes += 0 if local else lengths.numel() * 8
        send_lens, recv_lens = host[:len(flat_tables)].tolist(), host[len(flat_tables):len(flat_tables) + len(flat_rows)].tolist()
        tail = host[len(flat_tables) + len(flat_rows):]
        codec.raise_checks(np.split(tail, np.cumsum([c.numel() for c in checks])[:-1]) if checks else [])
    if local:
        out = buf[:sum(send_lens)]
    else:
        out = torch.empty(sum(recv_lens), dtype=torch.uint8, device=device)
        _a2a(out, buf[:sum(send_lens)], _splits(recv_lens, n_recv), _splits(send_lens, n_send), group,
             f"all-to-all ({codec.name})")
    clock.mark()
    flat_recv_tables = [t for s in range(world) for t in recv_tables[s]]
    decoded = iter(codec.decode_many(out, recv_lens, flat_rows, dim, flat_recv_tables))
    clock.mark()
    if stats is not None:
        stats.add_times(clock)
        for t, n in zip(flat_tables, send_lens):
            stats.bytes_sent[t] += int(n)
    return [[next(decoded) for _ in range(n_recv[s])] for s in range(world)]


class Comm:
    """The plan's view from one rank: who owns which table, and the two directions' codecs."""

    def __init__(self, plan: list[list[int]], rank: int, dim: int, num_tables: int,
                 forward: CommCodec | None = None, backward: CommCodec | None = None, group=None):
        self.plan, self.rank, self.world, self.dim, self.group = plan, rank, len(plan), dim, group
        self.forward_codec, self.backward_codec = forward, backward
        self.fwd_stats, self.bwd_stats = CommStats(num_tables), CommStats(num_tables)
        self.iteration, self.record = 0, True

    def split_stats(self) -> dict[str, CommStats]:
        """Each direction's counters since the last call (times read when taken: no GPU wait)."""
        return {"forward": self.fwd_stats.split(), "backward": self.bwd_stats.split()}

    @contextmanager
    def uncompressed(self):
        """Inside: fp32 both ways and nothing recorded (evaluation: the seeds test uncompressed)."""
        saved = self.forward_codec, self.backward_codec, self.record
        self.forward_codec, self.backward_codec, self.record = None, None, False
        try:
            yield
        finally:
            self.forward_codec, self.backward_codec, self.record = saved

    def check(self) -> None:
        """Check the device decodes not yet checked (their flags are otherwise read at the next exchange)."""
        for codec in (self.forward_codec, self.backward_codec):
            if codec is not None:
                codec.check()


class PooledAllToAll(torch.autograd.Function):
    """Forward: send ``send[d][j]`` (this rank's table ``j``) to rank d; backward: the received
    slices' gradients go back to the table owners with the backward codec, scaled by
    ``grad_scale`` (1/world: the training loss is a mean over ranks)."""

    @staticmethod
    def forward(ctx, comm: Comm, send_rows: list[list[int]], recv_rows: list[list[int]], grad_scale: float,
                raw: tuple | None, *tensors):
        ctx.comm, ctx.send_rows, ctx.recv_rows, ctx.grad_scale, ctx.raw = comm, send_rows, recv_rows, grad_scale, raw
        w, mine = comm.world, comm.plan[comm.rank]
        it = iter(tensors)
        send = [[next(it) for _ in mine] for _ in range(w)]
        recv = exchange(send, [mine] * w, recv_rows, comm.plan, comm.dim, comm.forward_codec, comm.iteration,
                        comm.fwd_stats if comm.record else None, comm.group, raw and raw[0])
        return tuple(x for s in recv for x in s)

    @staticmethod
    def backward(ctx, *grads):
        comm = ctx.comm
        w, mine, dim = comm.world, comm.plan[comm.rank], comm.dim
        it = iter(grads)
        dev = next((g.device for g in grads if g is not None), torch.device("cpu"))
        send = [[_grad(next(it), r, dim, dev) for r in ctx.recv_rows[s]] for s in range(w)]
        back = exchange(send, comm.plan, ctx.send_rows, [mine] * w, dim, comm.backward_codec, comm.iteration,
                        comm.bwd_stats if comm.record else None, comm.group, ctx.raw and ctx.raw[1])
        scale = ctx.grad_scale
        return (None, None, None, None, None, *[x * scale if scale != 1 else x for d in back for x in d])


def _grad(g: torch.Tensor | None, rows: int, dim: int, device) -> torch.Tensor:
    return torch.zeros(rows, dim, device=device) if g is None else g.contiguous()


def pooled_all_to_all(comm: Comm, send: list[list[torch.Tensor]], recv_rows: list[list[int]],
                      grad_scale: float = 1.0, raw: tuple | None = None) -> list[list[torch.Tensor]]:
    """Differentiable :func:`exchange` of ``send[d][j]`` (this rank's tables) -> ``recv[s][j]``;
    ``raw`` = (forward raw_rows, backward raw_rows) when the slices are deduplicated."""
    send_rows = [[x.shape[0] for x in row] for row in send]
    flat = PooledAllToAll.apply(comm, send_rows, recv_rows, grad_scale, raw, *[x for row in send for x in row])
    it = iter(flat)
    return [[next(it) for _ in recv_rows[s]] for s in range(comm.world)]
