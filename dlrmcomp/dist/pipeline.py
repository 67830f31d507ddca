"""EcoRec's table-wise pipeline: the lookups of table group i overlap the all-to-all of group i-1.

Each rank's tables are cut into ``groups`` groups (the same count on every rank: a collective
a group). Forward: compute group i's pooled rows, hand their :func:`~dlrmcomp.dist.alltoall.exchange`
to a communication thread (its own CUDA stream on a GPU), compute group i+1 meanwhile. Backward,
in reverse: every group's gradient all-to-all is queued at once (last group first) and group i's
backward through the tables runs as soon as its gradients arrive, while group i-1's are in flight.

``reorder`` puts each rank's cheap tables first (EcoRec reverses its greedy, costly-first
plan); ``skew`` in [0, 1] makes the group sizes a linear ramp (``partition_number``) that
shrinks in the forward order, so the last, exposed forward all-to-all is small and so is the
first backward one. Costs are unique indices per table (:func:`unique_costs`).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..data.batch import Batch
from .alltoall import Comm, _grad, exchange


@dataclass(frozen=True)
class PipelineConfig:
    """``groups`` table groups a rank (0: no pipeline); ``overlap`` False runs the same groups in
    sequence (the baseline); ``reorder``: cheap tables first; ``skew``: slope of the group sizes."""

    groups: int = 0
    overlap: bool = True
    reorder: bool = True
    skew: float = 0.0


def unique_costs(batch: Batch) -> list[int]:
    """EcoRec's per-table cost: the number of unique indices in ``batch``."""
    return [int(torch.unique(i).numel()) for i in batch.indices]


def group_sizes(n: int, groups: int, skew: float = 0.0) -> list[int]:
    """``n`` tables in ``groups`` groups: equal for ``skew`` 0, a ramp from ``2n/g - 1`` down to 1
    at ``skew`` 1 (slope ``skew * 2(n-g) / (g(g-1))``), rounded to integers that sum to ``n``."""
    if n <= groups:
        return [1] * n + [0] * (groups - n)
    slope = skew * 2 * (n - groups) / (groups * (groups - 1)) if groups > 1 else 0.0
    ideal = np.array([n / groups + slope * ((groups - 1) / 2 - i) for i in range(groups)])
    sizes = np.maximum(np.floor(ideal).astype(int), 1)
    for i in np.argsort(-(ideal - np.floor(ideal)), kind="stable")[:n - sizes.sum()]:
        sizes[i] += 1
    return sizes.tolist()


def plan_groups(plan: list[list[int]], costs: Sequence[float], cfg: PipelineConfig) -> list[list[list[int]]]:
    """``groups[rank][i]``: the global table ids of group i on each rank, in execution order."""
    out = []
    for tables in plan:
        order = sorted(tables, key=lambda t: (float(costs[t]), t)) if cfg.reorder else list(tables)
        bounds = np.r_[0, np.cumsum(group_sizes(len(order), cfg.groups, cfg.skew))]
        out.append([order[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
    return out


class TableWisePipeline:
    """Runs one rank's grouped lookups and their all-to-alls (see the module docstring).
    ``model`` is a :class:`~dlrmcomp.dist.model.ShardedDLRM`: ``local_pooled(batch, js)``."""

    def __init__(self, comm: Comm, groups: list[list[list[int]]], overlap: bool = True,
                 device: torch.device | str = "cpu"):
        self.comm, self.groups, self.overlap, self.device = comm, groups, overlap, torch.device(device)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="a2a") if overlap else None
        self._stream = torch.cuda.Stream(self.device) if overlap and self.device.type == "cuda" else None

    def submit(self, fn, *args) -> Future:
        """``fn(*args)`` on the communication thread (after the work queued so far on the GPU), or now."""
        if self._pool is None:
            done = Future()
            done.set_result(fn(*args))
            return done
        ready = None
        if self._stream is not None:
            ready = torch.cuda.Event()
            ready.record()
        return self._pool.submit(self._run, ready, fn, *args)

    def _run(self, ready, fn, *args):
        if ready is None:
            return fn(*args)
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            self._stream.wait_event(ready)
            for x in _tensors(args):  # the main stream's tensors stay allocated until the exchange ran
                x.record_stream(self._stream)
            return fn(*args)

    def wait(self, future: Future):
        out = future.result()
        if self._stream is not None:
            main = torch.cuda.current_stream(self.device)
            main.wait_stream(self._stream)
            for x in _tensors(out):  # received on the communication stream, used on the main one
                x.record_stream(main)
        return out

    def __call__(self, model, batch: Batch, sizes: list[int]) -> list[torch.Tensor]:
        """Pooled rows of this rank's samples [sizes[rank], D] for every table (global order)."""
        params = [p for p in model.embedding_parameters() if p.requires_grad]
        return list(_Pipelined.apply(self, model, batch, sizes, torch.is_grad_enabled(), *params))


def _tensors(obj):
    """The CUDA tensors in nested lists / tuples."""
    if isinstance(obj, torch.Tensor):
        if obj.is_cuda:
            yield obj
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors(x)


class _Pipelined(torch.autograd.Function):
    """Forward and backward of :class:`TableWisePipeline`; the tables' parameters are inputs so
    the backward runs, and get their gradients from the groups' own graphs (re-entrant)."""

    @staticmethod
    def forward(ctx, pipe: TableWisePipeline, model, batch, sizes, grad, *params):
        comm = pipe.comm
        w, r, groups = comm.world, comm.rank, pipe.groups
        starts = np.r_[0, np.cumsum(sizes)]
        position = {t: j for j, t in enumerate(model.tables)}
        stats = comm.fwd_stats if comm.record else None
        pooled, pending = [], []
        for g, mine in enumerate(groups[r]):
            with torch.set_grad_enabled(grad):
                x = model.local_pooled(batch, [position[t] for t in mine])
            pooled.append(x)
            send = [[x[j, starts[d]:starts[d + 1]].detach() for j in range(len(mine))] for d in range(w)]
            recv_rows = [[sizes[r]] * len(groups[s][g]) for s in range(w)]
            pending.append(pipe.submit(exchange, send, [mine] * w, recv_rows, [groups[s][g] for s in range(w)],
                                       comm.dim, comm.forward_codec, comm.iteration, stats, comm.group))
        out: dict[int, torch.Tensor] = {}
        for g, future in enumerate(pending):
            recv = pipe.wait(future)
            for s in range(w):
                for j, t in enumerate(groups[s][g]):
                    out[t] = recv[s][j]
        ctx.pipe, ctx.pooled, ctx.sizes = pipe, pooled, sizes
        return tuple(out[t] for t in sorted(out))

    @staticmethod
    def backward(ctx, *grads):
        pipe, sizes = ctx.pipe, ctx.sizes
        comm = pipe.comm
        w, r, groups, dim = comm.world, comm.rank, pipe.groups, comm.dim
        stats = comm.bwd_stats if comm.record else None
        dev = next((g.device for g in grads if g is not None), pipe.device)
        pending = {}
        for g in reversed(range(len(groups[r]))):
            mine = groups[r][g]
            send = [[_grad(grads[t], sizes[r], dim, dev) for t in groups[s][g]] for s in range(w)]
            pending[g] = pipe.submit(exchange, send, [groups[s][g] for s in range(w)],
                                     [[sizes[d]] * len(mine) for d in range(w)], [mine] * w, dim,
                                     comm.backward_codec, comm.iteration, stats, comm.group)
        for g in reversed(range(len(groups[r]))):
            back = pipe.wait(pending[g])
            x = ctx.pooled[g]
            if not groups[r][g] or not x.requires_grad:
                continue
            grad_x = torch.stack([torch.cat([back[d][j] for d in range(w)]) for j in range(len(groups[r][g]))])
            torch.autograd.backward(x, grad_x / w if w > 1 else grad_x)
        ctx.pooled = None
        return (None,) * len(ctx.needs_input_grad)
