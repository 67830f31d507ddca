"""DLRM as four small arches (torchrec's layout): dense MLP, embedding tables, dot interaction,
over MLP. Named presets reproduce the reference configurations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..data.batch import N_DENSE, Batch
from .tt import TTConfig, TTSparseArch

#: a function applied to the pooled embeddings (the all-to-all payload) before interaction
PayloadHook = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def mlp(sizes: Sequence[int], final_relu: bool) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ReLU between (and after, if asked)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if final_relu or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DenseArch(nn.Module):
    """Bottom MLP: dense [B, 13] -> [B, D]."""

    def __init__(self, sizes: Sequence[int]):
        super().__init__()
        self.model = mlp(sizes, final_relu=True)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        return self.model(dense)


class SparseArch(nn.Module):
    """Sum-pooled embedding tables, fused into one ``EmbeddingBag`` (like FBGEMM's TBE).

    batch -> T tensors of [B, D]: the all-to-all payload. Table t owns rows
    ``row_offsets[t]:row_offsets[t+1]`` of ``weight``; :meth:`table` returns its view.
    """

    def __init__(self, table_sizes: Sequence[int], dim: int, sparse_grad: bool = True):
        super().__init__()
        self.table_sizes = [int(n) for n in table_sizes]
        self.register_buffer("row_offsets", torch.tensor(np.r_[0, np.cumsum(self.table_sizes)], dtype=torch.int64),
                             persistent=False)
        self.bag = nn.EmbeddingBag(sum(self.table_sizes), dim, mode="sum", sparse=sparse_grad)
        with torch.no_grad():  # the reference's init: U(-sqrt(1/n), sqrt(1/n)) per table
            for t, n in enumerate(self.table_sizes):
                self.table(t).uniform_(-np.sqrt(1.0 / n), np.sqrt(1.0 / n))

    def table(self, t: int) -> torch.Tensor:
        """Rows of table ``t`` [n_t, D] (a view of the fused weight)."""
        return self.bag.weight[self.row_offsets[t]:self.row_offsets[t + 1]]

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        counts = torch.tensor([0] + [i.numel() for i in batch.indices[:-1]]).cumsum(0)
        indices = torch.cat([i + r for i, r in zip(batch.indices, self.row_offsets)])
        offsets = torch.cat([o + c for o, c in zip(batch.offsets, counts)])
        return list(self.bag(indices, offsets).view(len(self.table_sizes), batch.size, -1).unbind(0))


class InteractionArch(nn.Module):
    """Dot interaction: [B, D] and T x [B, D] -> [B, D + (T+1)T/2] (strict lower triangle)."""

    def __init__(self, num_tables: int):
        super().__init__()
        n = num_tables + 1
        rows, cols = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    @staticmethod
    def output_size(num_tables: int, dim: int) -> int:
        return dim + (num_tables + 1) * num_tables // 2

    def forward(self, dense: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
        feats = torch.stack([dense, *pooled], dim=1)  # [B, T+1, D]
        dots = torch.bmm(feats, feats.transpose(1, 2))
        return torch.cat([dense, dots[:, self.rows, self.cols]], dim=1)


class OverArch(nn.Module):
    """Top MLP: interaction features -> logits [B] (the reference's sigmoid is in the loss)."""

    def __init__(self, sizes: Sequence[int]):
        super().__init__()
        self.model = mlp(sizes, final_relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).squeeze(-1)


@dataclass(frozen=True)
class Preset:
    """Embedding dim, bottom MLP (13 -> ... -> dim) and top MLP hidden sizes (... -> 1)."""

    dim: int
    bottom: tuple[int, ...]
    top: tuple[int, ...]


PRESETS = {
    "kaggle": Preset(16, (13, 512, 256, 64, 16), (512, 256, 1)),
    "sc24": Preset(32, (13, 512, 256, 64, 32), (512, 256, 1)),
    "terabyte": Preset(64, (13, 512, 256, 64), (512, 512, 256, 1)),
    "tiny": Preset(16, (13, 64, 16), (64, 32, 1)),
}


class DLRM(nn.Module):
    """``over(interaction(dense(x), hook(sparse(x))))`` -> logits [B].

    ``payload_hook`` sees the pooled embeddings: where model-parallel training runs the
    all-to-all, and where the compression hook goes. ``tt``: tables as TT cores
    (:class:`~dlrmcomp.models.tt.TTSparseArch`) instead of one fused ``EmbeddingBag``.
    """

    def __init__(self, table_sizes: Sequence[int], dim: int, bottom: Sequence[int], top: Sequence[int],
                 sparse_grad: bool = True, tt: TTConfig | None = None):
        super().__init__()
        if bottom[0] != N_DENSE or bottom[-1] != dim:
            raise ValueError(f"bottom MLP must run {N_DENSE} -> ... -> {dim}, got {list(bottom)}")
        if top[-1] != 1:
            raise ValueError(f"top MLP must end in 1, got {list(top)}")
        self.dense_arch = DenseArch(bottom)
        self.sparse_arch = SparseArch(table_sizes, dim, sparse_grad) if tt is None else \
            TTSparseArch(table_sizes, dim, tt, sparse_grad)
        self.interaction_arch = InteractionArch(len(table_sizes))
        self.over_arch = OverArch([InteractionArch.output_size(len(table_sizes), dim), *top])

    @classmethod
    def from_preset(cls, name: str, table_sizes: Sequence[int], **kwargs) -> "DLRM":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        p = PRESETS[name]
        return cls(table_sizes, p.dim, p.bottom, p.top, **kwargs)

    def forward(self, batch: Batch, payload_hook: PayloadHook | None = None) -> torch.Tensor:
        pooled = self.sparse_arch(batch)
        if payload_hook is not None:
            pooled = payload_hook(pooled)
        return self.over_arch(self.interaction_arch(self.dense_arch(batch.dense), pooled))
