"""DLRM arches and presets."""
import pytest
import torch

from dlrmcomp.data import Batch
from dlrmcomp.models import DLRM, PRESETS, InteractionArch, SparseArch

SIZES = [5, 3, 11]


def multi_hot_batch():
    """Bags of 1, 2 and 0 ids per table (multi-hot, one empty bag)."""
    idx = [torch.tensor([0, 1, 4]), torch.tensor([2, 0, 1]), torch.tensor([10, 3, 3])]
    offsets = [torch.tensor([0, 1, 3])] * 3
    return Batch(torch.rand(3, 13), idx, offsets, torch.tensor([0.0, 1.0, 0.0]))


def test_sparse_arch_pools_each_table():
    arch = SparseArch(SIZES, dim=4)
    b = multi_hot_batch()
    pooled = arch(b)
    assert len(pooled) == 3 and all(p.shape == (3, 4) for p in pooled)
    for t in range(3):
        w = arch.table(t)
        expected = torch.stack([w[b.indices[t][0:1]].sum(0), w[b.indices[t][1:3]].sum(0), torch.zeros(4)])
        torch.testing.assert_close(pooled[t], expected)
    assert arch.table(2).abs().max() <= (1 / 11) ** 0.5


def test_interaction_size_matches_reference():
    assert InteractionArch.output_size(26, 16) == 367  # Criteo Kaggle reference top MLP input
    x = InteractionArch(2)(torch.ones(4, 3), [2 * torch.ones(4, 3), torch.zeros(4, 3)])
    assert x.shape == (4, 3 + 3) and x[0].tolist() == [1, 1, 1, 6, 0, 0]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_forward_backward(name):
    model = DLRM.from_preset(name, SIZES)
    b = multi_hot_batch()
    seen = []
    logits = model(b, payload_hook=lambda pooled: seen.append(len(pooled)) or pooled)
    assert logits.shape == (3,) and seen == [3]
    logits.sum().backward()
    assert model.sparse_arch.bag.weight.grad.is_sparse


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown preset"):
        DLRM.from_preset("huge", SIZES)
    with pytest.raises(ValueError, match="bottom MLP"):
        DLRM(SIZES, 8, (13, 16), (8, 1))
