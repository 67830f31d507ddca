"""TT embedding tables: exact against the reconstructed table, EcoRec's reuse and micro-batches
change no value, shapes cover the table, training at world size 1 and 2, the table-wise pipeline."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from contextlib import nullcontext
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlrmcomp.dist import testing
from dlrmcomp.dist.pipeline import PipelineConfig, group_sizes, plan_groups
from dlrmcomp.models import DLRM, TTConfig, TTEmbeddingBag, suggested_shapes
from dlrmcomp.models.tt import chunk_bounds, parameter_counts
from dlrmcomp.train import TrainConfig, Trainer, cli
from dlrmcomp.train.testing import train_worker

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CFG = TrainConfig(preset="tiny", scale=1e-3, test_size=1000, iters=8, batch_size=64, eval_every=8, log_every=4,
                  test_batch_size=1000, embedding="tt", tt_ranks="4,6", tt_min_rows=500)


def random_bags(gen: torch.Generator, n: int, bags: int, max_len: int, device="cpu"):
    """Zipf-like indices in bags of 0..max_len lookups: (indices, offsets)."""
    lengths = torch.randint(0, max_len + 1, (bags,), generator=gen)
    total = int(lengths.sum())
    idx = (torch.rand(total, generator=gen, dtype=torch.float64) ** 3 * n).long().clamp_(max=n - 1)
    offsets = torch.cumsum(lengths, 0) - lengths
    return idx.to(device), offsets.to(device)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10**9), dim=st.sampled_from([1, 4, 12, 16, 30, 32, 64, 128]))
def test_suggested_shapes_cover_the_table(n, dim):
    p, q = suggested_shapes(n, dim)
    assert math.prod(p) >= n and math.prod(q) == dim
    assert math.prod(p) < n + p[0] * p[1]  # only the last factor is rounded up
    assert len(p) == len(q) == 3


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 3000), ranks=st.tuples(st.integers(1, 6), st.integers(1, 6)),
       dim=st.sampled_from([4, 8, 12]), chunks=st.integers(1, 5), max_len=st.integers(0, 4))
def test_tt_bag_equals_the_reconstructed_table(device, seed, n, ranks, dim, chunks, max_len):
    """Forward and core gradients (float64) of every method and chunking equal an EmbeddingBag on the
    reconstructed table, its gradients taken through the reconstruction."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tt = TTEmbeddingBag(n, dim, ranks, dtype=torch.float64, device=device)
    idx, off = random_bags(gen, n, 17, max_len, device)
    grad_out = torch.randn(17, dim, generator=gen, dtype=torch.float64).to(device)
    ref = F.embedding_bag(idx, tt.full_weight(), off, mode="sum")
    ref_grads = torch.autograd.grad(ref, list(tt.cores), grad_out)
    for method, c, min_chunk, grouped in (("naive", 1, 1, None), ("ecorec", 1, 20000, None),
                                          ("ecorec", chunks, 1, None), ("ecorec", chunks, 1, device != "cpu")):
        tt.method, tt.chunks, tt.min_chunk = method, c, min_chunk
        # grouped by i2 (the CPU's way) or gathered (the GPU's), whichever this device does not do
        with mock.patch("dlrmcomp.models.tt._grouped", lambda core: grouped) if grouped is not None else nullcontext():
            out = tt(idx, off)
            got_grads = torch.autograd.grad(out, list(tt.cores), grad_out)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-14)
        for got, want in zip(got_grads, ref_grads):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


def test_micro_batches_and_prefix_reuse_change_no_value_in_float32():
    gen = torch.Generator().manual_seed(1)
    tt = TTEmbeddingBag(100_000, 32, (16, 16))
    idx, off = random_bags(gen, 100_000, 4096, 3)
    outs, grads = [], []
    for chunks in (1, 7):
        tt.chunks, tt.min_chunk = chunks, 1
        out = tt(idx, off)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), list(tt.cores)))
    # the same products, up to float32 rounding (GEMM blocking and summation order follow the chunk)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-8)  # rows are ~1e-3
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_chunk_bounds_cover_the_uniques_with_a_minimum_size():
    assert chunk_bounds(10, 3, 1) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(10, 3, 6) == [(0, 6), (6, 10)]
    assert chunk_bounds(0, 4, 1) == []


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_optimizers_fit_the_cores(optimizer):
    torch.manual_seed(0)
    tt = TTEmbeddingBag(5000, 16, (8, 8))
    target = torch.randn(64, 16) * 0.1
    idx, off = torch.arange(128) * 39, torch.arange(0, 128, 2)
    opt = torch.optim.SGD(tt.parameters(), lr=0.2) if optimizer == "sgd" else \
        torch.optim.Adagrad(tt.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss = (tt(idx, off) - target).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_init_matches_the_dense_reference_variance_and_ratio_is_reported():
    torch.manual_seed(0)
    tt = TTEmbeddingBag(1_000_000, 32, (32, 32))
    rows = tt.rows(torch.randint(0, 1_000_000, (4096,)))
    assert rows.var().item() == pytest.approx(1 / (3 * 1_000_000), rel=0.3)
    counts = parameter_counts([1_000_000, 10], 32, TTConfig((32, 32), min_rows=100))
    assert counts["tt"] == tt.num_parameters + 10 * 32 and counts["dense"] == 1_000_010 * 32
    assert tt.compression_ratio == pytest.approx(1_000_000 * 32 / tt.num_parameters) and tt.compression_ratio > 50


def test_dlrm_with_tt_tables_keeps_small_tables_dense():
    model = DLRM.from_preset("tiny", [10, 2000, 30000], tt=TTConfig((4, 4), min_rows=1000))
    kinds = [type(m).__name__ for m in model.sparse_arch.tables]
    assert kinds == ["EmbeddingBag", "TTEmbeddingBag", "TTEmbeddingBag"]
    assert model.sparse_arch.table(2).shape == (30000, 16)


def test_group_sizes_ramp_with_skew_and_reorder_runs_cheap_tables_first():
    assert group_sizes(12, 4) == [3, 3, 3, 3]
    ramp = group_sizes(12, 4, skew=1.0)
    assert sum(ramp) == 12 and ramp == sorted(ramp, reverse=True) and ramp[-1] == 1
    assert group_sizes(2, 4) == [1, 1, 0, 0]
    groups = plan_groups([[0, 1, 2, 3], [4, 5]], [9, 1, 5, 3, 2, 8], PipelineConfig(groups=2))
    assert groups == [[[1, 3], [2, 0]], [[4], [5]]]
    unordered = plan_groups([[0, 1, 2, 3]], [9, 1, 5, 3], PipelineConfig(groups=2, reorder=False))
    assert unordered == [[[0, 1], [2, 3]]]


def _run(tmp_path, name, cfg):
    trainer = Trainer(cfg, tmp_path / name)
    return trainer, trainer.run(progress=False)


def test_training_with_tt_tables_and_the_pipeline(tmp_path):
    """One process: TT training runs and the pipeline (overlapped or not, any skew) gives the same values."""
    trainer, base = _run(tmp_path, "base", CFG)
    state = trainer.state_dict_full()
    assert 0 < base["test_auc"] < 1
    assert any(type(m).__name__ == "TTEmbeddingBag" for m in trainer.model.lookups)
    for k, changes in enumerate([dict(pipeline_groups=3), dict(pipeline_groups=3, pipeline_overlap=False),
                                 dict(pipeline_groups=4, pipeline_skew=1.0, pipeline_reorder=False)]):
        other, summary = _run(tmp_path, f"pipe{k}", CFG.replace(**changes))
        assert summary["test_logloss"] == base["test_logloss"], changes
        for name, value in other.state_dict_full().items():
            torch.testing.assert_close(value, state[name], rtol=0, atol=0, msg=name)


def test_tt_composes_with_the_compressed_alltoall(tmp_path):
    """TT shrinks what is stored, the codecs what is sent: pipelined or not, the same bytes and values."""
    cfg = CFG.replace(fwd_comm="quant+ans", bwd_comm="int8", schedule="fixed:0.02")
    one, base = _run(tmp_path, "one", cfg)
    piped, summary = _run(tmp_path, "piped", cfg.replace(pipeline_groups=3, pipeline_skew=0.5))
    assert summary["test_logloss"] == base["test_logloss"] and 1 < base["mean_ratio"] == summary["mean_ratio"]
    assert summary["grad_bytes_compressed"] == base["grad_bytes_compressed"] > 0


def test_cli_trains_tt_tables(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--profile", "smoke", "--iters", "6", "--eval-every", "6", "--test-size", "500",
                              "--embedding", "tt", "--tt-ranks", "4,4", "--tt-min-rows", "2000",
                              "--pipeline-groups", "2", "--out", str(tmp_path / "run"), "--no-progress"])
    assert cli.main(args) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["embedding"] == "tt" and summary["config"]["tt_ranks"] == "4,4"


@pytest.mark.parametrize("pipeline", [{}, dict(pipeline_groups=2, pipeline_skew=1.0)])
def test_two_ranks_with_tt_tables_match_one_rank(tmp_path, pipeline):
    cfg = CFG.replace(**pipeline)
    codes = testing.spawn(train_worker, 2, str(tmp_path / "dist"), dataclasses.asdict(cfg), timeout=120)
    assert codes == [0, 0]
    got = torch.load(tmp_path / "dist" / "dist_result.pt", weights_only=False)
    one, summary = _run(tmp_path, "one", CFG)
    ref = one.state_dict_full()
    assert set(got["state"]) == set(ref)
    for name, value in got["state"].items():
        torch.testing.assert_close(value, ref[name], rtol=1e-5, atol=1e-6, msg=name)
    assert got["summary"]["test_logloss"] == pytest.approx(summary["test_logloss"], abs=1e-5)
    assert os.path.exists(tmp_path / "dist" / "summary.json")
