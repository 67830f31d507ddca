"""Model-parallel DLRM: tables sharded table-wise across ranks, MLPs data-parallel (DDP).

Every rank builds the same global batch (batch k is a pure function of (seed, k)), looks up its
own tables for all samples, and sends each rank the pooled rows of that rank's samples (the
forward all-to-all); the gradients come back the same way. Rank r's samples are the r-th of
``world`` near-equal contiguous chunks of the global batch.

Index-aware dedup (``dedup=True``): the receiver holds its samples' indices, so for table t the
owner sends each distinct row among them once (sorted by id, what ``torch.unique`` gives) and
the receiver rebuilds the pooled rows with ``embedding_bag(inverse, offsets, rows)``: exact for
one-hot bags, and the backward then carries one gradient row per distinct id.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch
from ..models import DLRM
from ..models.tt import TTEmbeddingBag, TTSparseArch, table_rows
from .alltoall import Comm, pooled_all_to_all
from .pipeline import TableWisePipeline, unique_costs


def plan_tables(costs: Sequence[float], world: int) -> list[list[int]]:
    """Table-wise sharding: greedy longest-processing-time on ``costs`` (sorted table ids per rank)."""
    load = [0.0] * world
    plan: list[list[int]] = [[] for _ in range(world)]
    for t in sorted(range(len(costs)), key=lambda t: (-float(costs[t]), t)):
        r = min(range(world), key=lambda r: (load[r], r))
        plan[r].append(t)
        load[r] += float(costs[t])
    return [sorted(p) for p in plan]


def table_costs(table_sizes: Sequence[int], dim: int, by: str = "size", batch: Batch | None = None) -> list[float]:
    """Cost per table: ``size`` (rows x dim, memory), ``lookup`` (measured seconds of the
    table's ``embedding_bag`` on ``batch``, plus a memory term so empty tables still spread) or
    ``unique`` (unique indices in ``batch``: EcoRec's cost of a TT table)."""
    if by == "size":
        return [float(n) * dim for n in table_sizes]
    if by not in ("lookup", "unique"):
        raise ValueError(f"cost must be 'size', 'lookup' or 'unique', got {by!r}")
    if batch is None:
        raise ValueError(f"cost {by!r} needs a batch")
    if by == "unique":
        return [float(c) for c in unique_costs(batch)]
    import time

    costs = []
    for t, n in enumerate(table_sizes):
        w = torch.zeros(n, dim)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            F.embedding_bag(batch.indices[t], w, batch.offsets[t], mode="sum")
            best = min(best, time.perf_counter() - t0)
        costs.append(best + 1e-12 * n * dim)
    return costs


def local_sizes(batch_size: int, world: int) -> list[int]:
    """Samples per rank: near-equal contiguous chunks (the first ``B % world`` get one more)."""
    return [batch_size // world + (r < batch_size % world) for r in range(world)]


def bag_ids(batch: Batch, t: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and offsets (rebased) of samples ``start:stop`` of table ``t``."""
    off, idx = batch.offsets[t], batch.indices[t]
    a = int(off[start]) if start < len(off) else idx.numel()
    b = int(off[stop]) if stop < len(off) else idx.numel()
    return idx[a:b], off[start:stop] - a


class DenseParts(nn.Module):
    """The data-parallel part: bottom MLP, interaction, top MLP (wrapped in DDP)."""

    def __init__(self, model: DLRM):
        super().__init__()
        self.dense_arch, self.interaction_arch, self.over_arch = model.dense_arch, model.interaction_arch, model.over_arch

    def forward(self, dense: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
        return self.over_arch(self.interaction_arch(self.dense_arch(dense), pooled))


class ShardedDLRM(nn.Module):
    """One rank's share of a :class:`~dlrmcomp.models.DLRM`: its tables (one fused
    ``EmbeddingBag``, or with TT tables the model's own per-table modules in ``lookups``) and a
    replica of the MLPs (DDP when ``ddp``; default: with more than one rank).
    ``forward(global_batch)`` -> logits of this rank's samples. Built from a full model so
    every world size starts from the same weights; a rank that holds every table (world size 1)
    uses the model's own ``EmbeddingBag``. ``pipeline``: EcoRec's table-wise pipeline
    (:class:`~dlrmcomp.dist.pipeline.TableWisePipeline`) instead of one all-to-all."""

    def __init__(self, full: DLRM, comm: Comm, dedup: bool = False, device: torch.device | str = "cpu",
                 ddp: bool | None = None, pipeline: TableWisePipeline | None = None):
        super().__init__()
        if dedup and pipeline is not None:
            raise ValueError("dedup and the table-wise pipeline do not combine")
        self.comm, self.dedup, self.device, self.pipeline = comm, dedup, torch.device(device), pipeline
        sizes = full.sparse_arch.table_sizes
        self.tt = isinstance(full.sparse_arch, TTSparseArch)
        self.num_tables = len(sizes)
        self.dim = full.sparse_arch.dim if self.tt else full.sparse_arch.bag.embedding_dim
        self.tables = list(comm.plan[comm.rank])
        mine = [sizes[t] for t in self.tables]
        self.register_buffer("row_offsets", torch.tensor(np.r_[0, np.cumsum(mine)].astype(np.int64)),
                             persistent=False)
        self._offsets = [int(v) for v in np.r_[0, np.cumsum(mine)]]  # host copy for index arithmetic
        if self.tt:
            self.lookups = nn.ModuleList(full.sparse_arch.tables[t] for t in self.tables)
        elif self.tables == list(range(self.num_tables)):
            self.bag = full.sparse_arch.bag
        else:
            self.bag = nn.EmbeddingBag(max(sum(mine), 1), self.dim, mode="sum", sparse=True,
                                       _weight=torch.zeros(max(sum(mine), 1), self.dim))
            with torch.no_grad():
                for j, t in enumerate(self.tables):
                    self.bag.weight[self.row_offsets[j]:self.row_offsets[j + 1]] = full.sparse_arch.table(t)
        self.dense = DenseParts(full)
        self.to(self.device)
        if ddp if ddp is not None else comm.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.dense = DDP(self.dense, device_ids=ids, process_group=comm.group)

    def table(self, j: int) -> torch.Tensor:
        if self.tt:
            return table_rows(self.lookups[j])
        return self.bag.weight[self.row_offsets[j]:self.row_offsets[j + 1]]

    def embedding_parameters(self) -> list[nn.Parameter]:
        return list((self.lookups if self.tt else self.bag).parameters())

    def forward(self, batch: Batch) -> torch.Tensor:
        comm, w, r = self.comm, self.comm.world, self.comm.rank
        sizes = local_sizes(batch.size, w)
        starts = np.r_[0, np.cumsum(sizes)]
        if self.pipeline is not None:
            pooled = self.pipeline(self, batch, sizes)
            return self.dense(batch.dense[starts[r]:starts[r + 1]].to(self.device), pooled)
        raw = None
        if self.dedup:
            send, recv_rows, inverse = self._dedup_payload(batch, starts)
            raw = ([[sizes[d]] * len(self.tables) for d in range(w)],  # what is counted as raw
                   [[sizes[r]] * len(comm.plan[s]) for s in range(w)])
        else:
            send = self._pooled_payload(batch, starts)
            recv_rows = [[sizes[r]] * len(comm.plan[s]) for s in range(w)]
        recv = pooled_all_to_all(comm, send, recv_rows, grad_scale=1.0 / w, raw=raw)
        pooled: list[torch.Tensor | None] = [None] * self.num_tables
        for s in range(w):
            for j, t in enumerate(comm.plan[s]):
                x = recv[s][j]
                if self.dedup:
                    x = F.embedding_bag(inverse[t][0], x, inverse[t][1], mode="sum")
                pooled[t] = x
        a, b = starts[r], starts[r + 1]
        return self.dense(batch.dense[a:b].to(self.device), pooled)

    def local_pooled(self, batch: Batch, js: list[int] | None = None) -> torch.Tensor:
        """Pooled rows of this rank's tables (positions ``js``, default all) for every sample of
        ``batch``: [tables, B, D]."""
        js = list(range(len(self.tables))) if js is None else js
        if not js:
            return torch.empty(0, batch.size, self.dim, device=self.device)
        tables = [self.tables[j] for j in js]
        if self.tt:
            return torch.stack([self.lookups[j](batch.indices[t].to(self.device), batch.offsets[t].to(self.device))
                                for j, t in zip(js, tables)])
        counts = torch.tensor([0] + [batch.indices[t].numel() for t in tables[:-1]]).cumsum(0)
        idx = torch.cat([batch.indices[t] + self._offsets[j] for j, t in zip(js, tables)])
        off = torch.cat([batch.offsets[t] + c for t, c in zip(tables, counts)])
        return self.bag(idx.to(self.device), off.to(self.device)).view(len(js), batch.size, self.dim)

    def _pooled_payload(self, batch: Batch, starts) -> list[list[torch.Tensor]]:
        """send[d][j]: pooled rows of this rank's table j for rank d's samples."""
        if not self.tables:
            return [[] for _ in range(len(starts) - 1)]
        out = self.local_pooled(batch)  # split + unbind: their backwards join the gradients in one copy each
        return [list(part.unbind(0)) for part in out.split(np.diff(starts).tolist(), dim=1)]

    def _rows(self, j: int, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` of this rank's table ``j`` (sparse gradients for a plain table)."""
        if not self.tt:
            return F.embedding(ids + self._offsets[j], self.bag.weight, sparse=True)
        m = self.lookups[j]
        return m.rows(ids) if isinstance(m, TTEmbeddingBag) else F.embedding(ids, m.weight, sparse=True)

    def _dedup_payload(self, batch: Batch, starts):
        """Distinct rows per (table, destination) and, for this rank's own samples, the
        (inverse, offsets) that rebuild every table's pooled rows."""
        w, r = len(starts) - 1, self.comm.rank
        send = []
        for d in range(w):
            row = []
            for j, t in enumerate(self.tables):
                ids, _ = bag_ids(batch, t, starts[d], starts[d + 1])
                row.append(self._rows(j, torch.unique(ids).to(self.device)))
            send.append(row)
        inverse, counts = {}, {}
        for t in range(self.num_tables):
            ids, off = bag_ids(batch, t, starts[r], starts[r + 1])
            uniq, inv = torch.unique(ids, return_inverse=True)
            inverse[t] = (inv.to(self.device), off.to(self.device))
            counts[t] = uniq.numel()
        recv_rows = [[counts[t] for t in self.comm.plan[s]] for s in range(w)]
        return send, recv_rows, inverse


def dedup_savings(batch: Batch, world: int) -> dict:
    """Rows sent without and with index-aware dedup for one global batch split over ``world``
    ranks (per table and in total; the byte ratio equals the row ratio for a fixed dim)."""
    sizes = local_sizes(batch.size, world)
    starts = np.r_[0, np.cumsum(sizes)]
    raw = np.zeros(batch.num_tables, np.int64)
    sent = np.zeros(batch.num_tables, np.int64)
    for t in range(batch.num_tables):
        for d in range(world):
            ids, _ = bag_ids(batch, t, starts[d], starts[d + 1])
            raw[t] += sizes[d]
            sent[t] += torch.unique(ids).numel()
    return {"rows_raw": raw.tolist(), "rows_sent": sent.tolist(),
            "ratio": float(raw.sum() / max(sent.sum(), 1)),
            "table_ratio": [float(a / b) if b else None for a, b in zip(raw, sent)]}
