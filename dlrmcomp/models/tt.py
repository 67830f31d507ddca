"""Tensor-train (TT) embedding tables (TT-Rec) with EcoRec's lookup: plain PyTorch, CPU and CUDA.

An N x D table is three cores; core k holds, for each of its ``p_k`` indices, an
``r_{k-1} x q_k x r_k`` slice (stored ``[p_k, r_{k-1}, q_k, r_k]``, ranks ``[1, r1, r2, 1]``),
with ``N <= p1 p2 p3`` and ``D = q1 q2 q3``. Row ``i = (i1 p2 + i2) p3 + i3`` is the chained
product ``G1[i1] G2[i2] G3[i3]`` reshaped to D.

Two ways to look up a bag of indices:

- ``naive`` (TT-Rec / FBTT): one chain per lookup, autograd through the two batched GEMMs.
- ``ecorec``: sort and unique the indices; ``G1[i1] G2[i2]`` once per distinct prefix
  ``(i1, i2)``; ``x G3[i3]`` once per unique index; pool through the inverse. The distinct
  prefixes are found once; the unique indices are cut into micro-batches (``chunks``, each at
  least ``min_chunk``), each computing the products of the prefixes it is first to need and
  its rows, so the core slices gathered for the GEMMs are bounded by a chunk, not the batch;
  only the prefix products ([P, q1 q2, r2]: q1 / r1 the size of the gathered ``G2`` slices)
  are kept for the backward, which uses them for the ``G3`` gradient and sums the prefix
  gradients per prefix before the ``G1``/``G2`` GEMMs. On CUDA the only host syncs are the two
  uniques' sizes (one more to place several micro-batches).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch

METHODS = ("naive", "ecorec")


def _balanced_factors(n: int) -> tuple[int, int, int]:
    """``n`` as 3 factors (ascending) with the smallest largest-to-smallest ratio."""
    best = None
    for a in range(1, n + 1):
        if n % a:
            continue
        for b in range(a, n // a + 1):
            if (n // a) % b or n // (a * b) < b:
                continue
            f = (a, b, n // (a * b))
            if best is None or f[2] / f[0] < best[2] / best[0]:
                best = f
    return best


def suggested_shapes(num_embeddings: int, embedding_dim: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(p, q): ``p1 p2 p3 >= N`` near the cube root of N (``p3`` trimmed to fit) and
    ``q1 q2 q3 = D`` as balanced as D's divisors allow."""
    side = max(1, math.ceil(round(num_embeddings ** (1 / 3), 9)))
    p3 = max(1, math.ceil(num_embeddings / (side * side)))
    return (side, side, p3), _balanced_factors(embedding_dim)


def _slices(core: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``core[ids]`` flattened to [n, r_{k-1} q_k r_k] (``index_select``: a row copy each)."""
    return core.view(core.shape[0], -1).index_select(0, ids)


def _prefix_products(g1, g2, prefixes, p2, out=None):
    """``G1[i1] G2[i2]`` per prefix ``i1 p2 + i2``: [P, q1 q2, r2] (into ``out`` if given)."""
    q1, r1 = g1.shape[2], g1.shape[3]
    _, _, q2, r2 = g2.shape
    a = _slices(g1, prefixes // p2).view(-1, q1, r1)
    b = _slices(g2, prefixes % p2).view(-1, r1, q2 * r2)
    if out is None:
        return torch.bmm(a, b).view(-1, q1 * q2, r2)
    torch.bmm(a, b, out=out.view(-1, q1, q2 * r2))
    return out


def _by_i2(prefixes, p2):
    """Prefixes grouped by i2: (order [P], i1 in that order [P], (i2, start, stop) per distinct i2)."""
    i2 = prefixes % p2
    order = torch.argsort(i2, stable=True)
    bounds, start = [], 0
    for k, n in enumerate(torch.bincount(i2, minlength=p2).tolist()):
        if n:
            bounds.append((k, start, start + n))
            start += n
    return order, (prefixes // p2).index_select(0, order), bounds


def _grouped_products(g1, g2, prefixes, p2, out):
    """:func:`_prefix_products` into ``out`` as one GEMM per distinct i2, ``G2[i2]`` read in place (no
    gather of the large ``G2`` slices: what EcoRec's pointer-array GEMMs do; for the CPU)."""
    q1, r1 = g1.shape[2], g1.shape[3]
    _, _, q2, r2 = g2.shape
    order, i1, bounds = _by_i2(prefixes, p2)
    a = _slices(g1, i1).view(-1, r1)  # [P q1, r1], sorted by i2
    b = g2.view(p2, r1, q2 * r2)
    grouped = a.new_empty(prefixes.numel(), q1, q2 * r2)
    for k, start, stop in bounds:
        torch.mm(a[start * q1:stop * q1], b[k], out=grouped[start:stop].view(-1, q2 * r2))
    out.view(-1, q1, q2 * r2).index_copy_(0, order, grouped)
    return out


def _products_backward(g1, g2, prefixes, p2, dab, grads) -> None:
    """Add the ``G1`` and ``G2`` gradients of the prefix products (gradient ``dab`` [P, q1, q2 r2])
    to ``grads[0]`` and ``grads[1]``: grouped by i2 on the CPU, gathered on a GPU."""
    q1, r1 = g1.shape[2], g1.shape[3]
    _, _, q2, r2 = g2.shape
    if not _grouped(g2):
        i1, i2 = prefixes // p2, prefixes % p2
        grads[0].index_add_(0, i1, torch.bmm(dab, _slices(g2, i2).view(-1, r1, q2 * r2).transpose(1, 2))
                            .view(-1, 1, q1, r1))
        grads[1].index_add_(0, i2, torch.bmm(_slices(g1, i1).view(-1, q1, r1).transpose(1, 2), dab)
                            .view(-1, r1, q2, r2))
        return
    order, i1, bounds = _by_i2(prefixes, p2)
    a = _slices(g1, i1).view(-1, r1)
    d = dab.index_select(0, order).reshape(-1, q2 * r2)  # [P q1, q2 r2], sorted by i2
    b, db = g2.view(p2, r1, q2 * r2), grads[1].view(p2, r1, q2 * r2)
    da = torch.empty_like(a)
    for k, start, stop in bounds:
        rows = slice(start * q1, stop * q1)
        db[k].addmm_(a[rows].T, d[rows])
        torch.mm(d[rows], b[k].T, out=da[rows])
    grads[0].index_add_(0, i1, da.view(-1, 1, q1, r1))


def _grouped(core: torch.Tensor) -> bool:
    return core.device.type == "cpu"


def _last_core(ab, pinv, i3, g3, out=None):
    """Rows [U, q1 q2 q3]: each index's prefix product ``ab[pinv]`` times ``G3[i3]`` (into ``out`` if given)."""
    r2, q3 = g3.shape[1], g3.shape[2]
    rows = torch.bmm(ab.index_select(0, pinv), _slices(g3, i3).view(-1, r2, q3),
                     out=None if out is None else out.view(-1, ab.shape[1], q3))
    return rows.view(pinv.numel(), ab.shape[1] * q3)


def chunk_bounds(n: int, chunks: int, min_chunk: int) -> list[tuple[int, int]]:
    """[start, stop) of the micro-batches over ``n`` sorted unique indices: ``chunks`` parts,
    each at least ``min_chunk`` (EcoRec's ``_sharding_uniques``)."""
    size = max(math.ceil(n / max(chunks, 1)), min_chunk, 1)
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _prefix_bounds(pinv, bounds, num_prefixes):
    """[start, stop) of the distinct prefixes whose products each micro-batch computes: the new
    ones its indices need (a prefix shared with the previous micro-batch is already there). One
    host sync, only with more than one micro-batch."""
    if len(bounds) < 2:
        return [(0, num_prefixes)] * len(bounds)
    last = torch.tensor([b - 1 for _, b in bounds[:-1]], device=pinv.device)
    stops = [*(pinv.index_select(0, last) + 1).tolist(), num_prefixes]
    return list(zip([0, *stops[:-1]], stops))


def bag_ids(offsets: torch.Tensor, num_indices: int) -> torch.Tensor:
    """The bag of each lookup [L] from bag starts [B] (no host sync)."""
    return torch.searchsorted(offsets, torch.arange(num_indices, device=offsets.device), right=True) - 1


class EcoRecLookup(torch.autograd.Function):
    """Pooled bags [B, D] of ``(indices [L], offsets [B])`` through EcoRec's prefix reuse over the
    sorted unique indices [U], micro-batched; the backward gives dense gradients of the three cores.

    Saved for the backward: the prefix products [P, q1 q2, r2] and index tensors (no core slices).
    The pooling's backward is an ``index_add_`` over the lookups' bags (no host sync)."""

    @staticmethod
    def forward(ctx, indices, offsets, p, chunks, min_chunk, g1, g2, g3):
        (_, _, q1, _), (_, _, q2, r2), q3 = g1.shape, g2.shape, g3.shape[2]
        uniq, inverse = torch.unique(indices, sorted=True, return_inverse=True)
        prefixes, pinv = torch.unique_consecutive(uniq // p[2], return_inverse=True)
        i3 = uniq % p[2]
        bounds = chunk_bounds(uniq.numel(), chunks, min_chunk)
        pbounds = _prefix_bounds(pinv, bounds, prefixes.numel())
        products = _grouped_products if _grouped(g2) else _prefix_products
        ab = g1.new_empty(prefixes.numel(), q1 * q2, r2)
        rows = g1.new_empty(uniq.numel(), q1 * q2 * q3)
        for (a, b), (pa, pb) in zip(bounds, pbounds):
            products(g1, g2, prefixes[pa:pb], p[1], out=ab[pa:pb])
            _last_core(ab, pinv[a:b], i3[a:b], g3, out=rows[a:b])
        ctx.save_for_backward(inverse, offsets, prefixes, pinv, i3, ab, g1, g2, g3)
        ctx.p, ctx.bounds, ctx.pbounds = p, bounds, pbounds
        return F.embedding_bag(inverse, rows, offsets, mode="sum")

    @staticmethod
    def backward(ctx, grad_out):
        inverse, offsets, prefixes, pinv, i3, ab, g1, g2, g3 = ctx.saved_tensors
        (_, _, q1, _), (_, _, q2, r2), q3 = g1.shape, g2.shape, g3.shape[2]
        g = grad_out.new_zeros(i3.numel(), q1 * q2, q3)  # the rows' gradient: their lookups' bags'
        g.view(-1, q1 * q2 * q3).index_add_(0, inverse, grad_out.index_select(0, bag_ids(offsets, inverse.numel())))
        grads = [torch.zeros_like(c) for c in (g1, g2, g3)]
        dab = torch.zeros_like(ab)
        for a, b in ctx.bounds:
            # G3: ab[pinv]^T g; the prefix products: g G3[i3]^T, summed per prefix
            grads[2].index_add_(0, i3[a:b], torch.bmm(ab.index_select(0, pinv[a:b]).transpose(1, 2), g[a:b])
                                .view(-1, r2, q3, 1))
            dab.index_add_(0, pinv[a:b], torch.bmm(g[a:b], _slices(g3, i3[a:b]).view(-1, r2, q3).transpose(1, 2)))
        for pa, pb in ctx.pbounds:
            _products_backward(g1, g2, prefixes[pa:pb], ctx.p[1], dab[pa:pb].view(-1, q1, q2 * r2), grads)
        return (None, None, None, None, None, *grads)


class TTEmbeddingBag(nn.Module):
    """A sum-pooled N x D table as three TT cores: ``(indices [L], offsets [B]) -> [B, D]``.

    ``ranks`` (r1, r2); ``p_shapes`` / ``q_shapes`` default to :func:`suggested_shapes`.
    ``method``: "ecorec" (prefix reuse over unique indices, ``chunks`` micro-batches of at least
    ``min_chunk`` unique indices) or "naive" (one chain per lookup). Initialisation is TT-Rec's
    sampled Gaussian: i.i.d. normal cores scaled so the rows' entries have the variance of the
    dense reference init U(-1/sqrt(N), 1/sqrt(N)). The cores are ordinary parameters (dense
    gradients): any optimizer trains them.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, ranks: Sequence[int] = (16, 16),
                 p_shapes: Sequence[int] | None = None, q_shapes: Sequence[int] | None = None,
                 method: str = "ecorec", chunks: int = 1, min_chunk: int = 20000,
                 dtype: torch.dtype | None = None, device=None):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if len(ranks) != 2:
            raise ValueError(f"ranks must be (r1, r2) for 3 cores, got {list(ranks)}")
        p, q = suggested_shapes(num_embeddings, embedding_dim)
        self.p_shapes = tuple(int(x) for x in (p_shapes or p))
        self.q_shapes = tuple(int(x) for x in (q_shapes or q))
        if math.prod(self.p_shapes) < num_embeddings or math.prod(self.q_shapes) != embedding_dim:
            raise ValueError(f"need p1 p2 p3 >= {num_embeddings} and q1 q2 q3 = {embedding_dim}, "
                             f"got p={self.p_shapes} q={self.q_shapes}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.ranks = (1, int(ranks[0]), int(ranks[1]), 1)
        self.method, self.chunks, self.min_chunk = method, int(chunks), int(min_chunk)
        std = (1.0 / (3.0 * num_embeddings * self.ranks[1] * self.ranks[2])) ** (1 / 6)
        self.cores = nn.ParameterList(
            nn.Parameter(torch.randn(self.p_shapes[k], self.ranks[k], self.q_shapes[k], self.ranks[k + 1],
                                     dtype=dtype, device=device) * std)
            for k in range(3))

    @property
    def num_parameters(self) -> int:
        return sum(c.numel() for c in self.cores)

    @property
    def compression_ratio(self) -> float:
        """Dense table values / core values."""
        return self.num_embeddings * self.embedding_dim / self.num_parameters

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows [n, D] of ``ids`` (differentiable; one chain each)."""
        g1, g2, g3 = self.cores
        p2, p3 = self.p_shapes[1], self.p_shapes[2]
        ab = _prefix_products(g1, g2, ids // p3, p2)
        return _last_core(ab, torch.arange(ids.numel(), device=ids.device), ids % p3, g3)

    def full_weight(self) -> torch.Tensor:
        """The reconstructed table [N, D]."""
        return self.rows(torch.arange(self.num_embeddings, device=self.cores[0].device))

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        if self.method == "naive":
            return F.embedding_bag(torch.arange(indices.numel(), device=indices.device), self.rows(indices),
                                   offsets, mode="sum")
        return EcoRecLookup.apply(indices, offsets, self.p_shapes, self.chunks, self.min_chunk, *self.cores)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, p={self.p_shapes}, q={self.q_shapes}, "
                f"ranks={self.ranks[1:3]}, method={self.method!r}, chunks={self.chunks}")


def table_rows(table: nn.Module) -> torch.Tensor:
    """The rows [N, D] of an ``nn.EmbeddingBag`` or (reconstructed) :class:`TTEmbeddingBag`."""
    return table.full_weight() if isinstance(table, TTEmbeddingBag) else table.weight


@dataclass(frozen=True)
class TTConfig:
    """Which tables become TT (``min_rows`` or more rows, as TT-Rec does) and how they look up."""

    ranks: tuple[int, int] = (16, 16)
    min_rows: int = 0
    method: str = "ecorec"
    chunks: int = 1
    min_chunk: int = 20000


class TTSparseArch(nn.Module):
    """:class:`~dlrmcomp.models.SparseArch` with TT tables: batch -> T tensors of [B, D].

    ``tables[t]`` is a :class:`TTEmbeddingBag` when table t has at least ``tt.min_rows`` rows,
    else an ``nn.EmbeddingBag`` with the reference init (sparse gradients)."""

    def __init__(self, table_sizes: Sequence[int], dim: int, tt: TTConfig, sparse_grad: bool = True):
        super().__init__()
        self.table_sizes = [int(n) for n in table_sizes]
        self.dim, self.tt = dim, tt
        self.tables = nn.ModuleList(self._table(n, sparse_grad) for n in self.table_sizes)

    def _table(self, n: int, sparse_grad: bool) -> nn.Module:
        tt = self.tt
        if n >= tt.min_rows:
            return TTEmbeddingBag(n, self.dim, tt.ranks, method=tt.method, chunks=tt.chunks, min_chunk=tt.min_chunk)
        bag = nn.EmbeddingBag(n, self.dim, mode="sum", sparse=sparse_grad)
        nn.init.uniform_(bag.weight, -math.sqrt(1.0 / n), math.sqrt(1.0 / n))
        return bag

    def is_tt(self, t: int) -> bool:
        return isinstance(self.tables[t], TTEmbeddingBag)

    def table(self, t: int) -> torch.Tensor:
        """Rows of table ``t`` [n_t, D] (reconstructed for a TT table)."""
        return table_rows(self.tables[t])

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        return [m(i, o) for m, i, o in zip(self.tables, batch.indices, batch.offsets)]


def parameter_counts(table_sizes: Sequence[int], dim: int, tt: TTConfig) -> dict:
    """Embedding values dense vs with TT (tables of ``tt.min_rows`` rows or more), and the ratio."""
    dense = sum(table_sizes) * dim
    stored = 0
    for n in table_sizes:
        if n >= tt.min_rows:
            p, q = suggested_shapes(n, dim)
            r = (1, *tt.ranks, 1)
            stored += sum(p[k] * r[k] * q[k] * r[k + 1] for k in range(3))
        else:
            stored += n * dim
    return {"dense": dense, "tt": stored, "ratio": dense / stored}
