"""The one batch type every data source yields and every model consumes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

N_DENSE = 13
N_SPARSE = 26


@dataclass
class Batch:
    """A mini-batch in torchrec's layout.

    ``dense``: float32 [B, 13]; ``indices[t]``: int64 [N_t] and ``offsets[t]``: int64 [B] (bag
    starts, as ``nn.EmbeddingBag`` takes them) for each table t; ``labels``: float32 [B].
    """

    dense: torch.Tensor
    indices: list[torch.Tensor]
    offsets: list[torch.Tensor]
    labels: torch.Tensor

    @property
    def size(self) -> int:
        return self.dense.shape[0]

    @property
    def num_tables(self) -> int:
        return len(self.indices)

    def to(self, device, non_blocking: bool = False) -> "Batch":
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(move(self.dense), [move(i) for i in self.indices],
                     [move(o) for o in self.offsets], move(self.labels))

    @classmethod
    def from_numpy(cls, dense: np.ndarray, cats: np.ndarray, labels: np.ndarray) -> "Batch":
        """One-hot batch from dense [B, 13], categorical ids [B, T] and labels [B]."""
        b = dense.shape[0]
        offsets = torch.arange(b, dtype=torch.int64)
        cats = torch.from_numpy(np.array(cats, dtype=np.int64))
        return cls(torch.from_numpy(np.array(dense, dtype=np.float32)),
                   [cats[:, t].contiguous() for t in range(cats.shape[1])],
                   [offsets] * cats.shape[1],
                   torch.from_numpy(np.array(labels, dtype=np.float32)))


class SplitData:
    """A data source read from files: a training part and a test part, each with ``len()``,
    ``batch(start, B)`` and ``labels``. Gives what the trainers read, as
    :class:`~dlrmcomp.data.synthetic.SyntheticCriteo` does: ``table_sizes``, ``batch(k, B)``
    (epochs cycle in file order), ``test_batches(B)``, ``test_labels`` and ``bayes_auc`` (None)."""

    train: object
    test: object
    table_sizes: list[int]
    bayes_auc = None

    @staticmethod
    def holdout_cut(n: int, holdout: float) -> int:
        """Where the test part starts when the last ``holdout`` fraction (at least one row) is held out."""
        return n - max(1, int(n * holdout))

    def batch(self, k: int, batch_size: int) -> Batch:
        per_epoch = max(1, len(self.train) // batch_size)
        return self.train.batch((k % per_epoch) * batch_size, batch_size)

    @property
    def test_labels(self) -> np.ndarray:
        return np.asarray(self.test.labels)

    def test_batches(self, batch_size: int = 16384):
        for i in range(0, len(self.test), batch_size):
            yield self.test.batch(i, batch_size)
