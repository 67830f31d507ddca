"""Hot/cold training (seed 004): the profiler, the split, the remapping, Slipstream's threshold
search and skipping, FAE against the plain trainer, the CLI flags."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dlrmcomp.hotcold import (EpochInputs, HotColdSplit, droppable, parse_bytes, profile_inputs,
                              threshold_for_drop)
from dlrmcomp.hotcold.schedule import HotColdSchedule
from dlrmcomp.train import Trainer, profile_config
from dlrmcomp.train.cli import build_parser
from dlrmcomp.train.cli import main as train_main

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=GPU)]


def small_cfg(**changes):
    """Smoke-sized hot/cold run: 60 batches of 128 on the synthetic data, only the final evaluation."""
    base = dict(iters=60, batch_size=128, scale=1e-3, test_size=2048, eval_every=10_000, log_every=20, dump_every=0)
    return profile_config("smoke", **{**base, **changes})


@pytest.fixture(scope="module")
def epoch():
    """One epoch (60 x 128 inputs) of the synthetic smoke data, shared by the training tests."""
    from dlrmcomp.train import make_data

    cfg = small_cfg()
    return EpochInputs(make_data(cfg), cfg.batch_size, cfg.iters)


def test_parse_bytes():
    assert parse_bytes("256MiB") == 256 << 20 and parse_bytes("1GiB") == 1 << 30 and parse_bytes(4096) == 4096
    assert parse_bytes("1.5KiB") == 1536 and parse_bytes("2MB") == 2_000_000
    with pytest.raises(ValueError):
        parse_bytes("lots")


def test_profile_counts_budget_and_lambda():
    # 2 tables of 4 rows; table 0 row 1 is read 4 times, table 1 row 2 3 times, table 0 row 0 twice
    ids = np.array([[1, 2], [1, 2], [1, 2], [1, 0], [0, 3], [0, 1]])
    split = profile_inputs(ids, [4, 4], dim=2, budget_bytes=3 * 4 * 2, ip_sampling_rate=1.0)
    assert split.sampled == 6
    assert split.hot_rows.tolist() == [0, 1, 6]  # fused ids: table 0 rows 0 and 1, table 1 row 2
    assert split.counts.tolist() == [2, 4, 3] and split.lambda_ == 2  # the last row that fit: count 2
    assert split.hot_table_sizes == [2, 1]
    assert split.hot_inputs.tolist() == [0, 1, 2] and split.cold_inputs.tolist() == [3, 4, 5]
    everything = profile_inputs(ids, [4, 4], dim=2, budget_bytes="1MiB", ip_sampling_rate=1.0)
    assert everything.hot_fraction == 1.0 and everything.lambda_ == 1  # every touched row fits
    nothing = profile_inputs(ids, [4, 4], dim=2, budget_bytes=0, ip_sampling_rate=1.0)
    assert nothing.hot_fraction == 0.0 and nothing.lambda_ == 0


def test_profile_samples_a_fraction():
    ids = np.random.default_rng(0).integers(0, 50, (10_000, 3))
    split = profile_inputs(ids, [50, 50, 50], dim=4, budget_bytes=40 * 16, ip_sampling_rate=0.05)
    assert split.sampled == 500 and split.counts.sum() <= 500 * 3 and split.hot_rows.size == 40


def test_an_input_with_one_cold_index_is_cold():
    ids = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]])
    split = profile_inputs(ids, [2, 2, 2], dim=1, budget_bytes=3 * 4, ip_sampling_rate=1.0)
    assert split.hot_rows.tolist() == [0, 2, 4]  # row 0 of every table; table 2 row 1 (fused 5) is cold
    assert split.hot_inputs.tolist() == [0, 2] and split.cold_inputs.tolist() == [1]
    assert split.is_hot_row(ids).tolist() == [[True] * 3, [True, True, False], [True] * 3]


def test_remapping_round_trip():
    rng = np.random.default_rng(1)
    sizes = [30, 5, 200]
    ids = np.stack([rng.zipf(1.3, 5000) % n for n in sizes], 1)
    split = profile_inputs(ids, sizes, dim=4, budget_bytes=60 * 16, ip_sampling_rate=0.5)
    hot = ids[split.hot_inputs]
    assert 0 < split.hot_fraction < 1
    local = split.to_hot(hot)
    assert (local >= 0).all() and (local < np.array(split.hot_table_sizes)).all()
    np.testing.assert_array_equal(split.from_hot(local), hot)


def test_split_saves_and_loads(tmp_path):
    ids = np.random.default_rng(2).integers(0, 20, (500, 4))
    split = profile_inputs(ids, [20] * 4, dim=8, budget_bytes="1KiB")
    back = HotColdSplit.load(split.save(tmp_path / "hotcold"))
    for k in ("hot_rows", "counts", "hot_inputs", "cold_inputs"):
        np.testing.assert_array_equal(getattr(back, k), getattr(split, k))
    assert back.info() == split.info()


def test_bisection_hits_the_target_drop():
    # 1000 hot rows whose L-inf change is spread over [0, 0.1); inputs of 26 lookups, alpha 26
    rng = np.random.default_rng(3)
    change = np.sort(rng.uniform(0, 0.1, 1000))
    groups = rng.integers(0, 10, 4000)  # an input reads 26 rows from one tenth of the rows
    hot_ids = groups[:, None] * 100 + rng.integers(0, 100, (4000, 26))
    for target in (0.1, 0.3, 0.5, 0.8):
        t, frac = threshold_for_drop(change, hot_ids, target, alpha=26)
        assert abs(frac - target) <= 0.08 and 0 < t < 0.1
        assert droppable(change, hot_ids, t, 26).mean() == pytest.approx(frac)
    assert not droppable(change, hot_ids, 0.0, 26).any()  # stale is strictly below T


def test_bisection_keeps_the_closest_t_when_the_fraction_jumps():
    change = np.array([0.05, 0.0, 0.0])  # row 0, read by every input, moved by 0.05; the rest did not move
    ids = np.array([[0, 1], [0, 2], [0, 1], [0, 2]])
    assert threshold_for_drop(change, ids, 0.3, alpha=2)[1] == 0.0  # 0 droppable is closer to 0.3 than all
    assert threshold_for_drop(change, ids, 0.8, alpha=2)[1] == 1.0


def test_alpha_counts_stale_lookups():
    change = np.array([0.0, 0.0, 1.0])
    ids = np.array([[0, 1, 2], [0, 0, 1], [2, 2, 0]])
    assert droppable(change, ids, 0.5, alpha=3).tolist() == [False, True, False]
    assert droppable(change, ids, 0.5, alpha=2).tolist() == [True, True, False]


def test_host_bag_looks_up_on_the_host_and_passes_gradients():
    from torch import nn

    from dlrmcomp.hotcold import HostBag

    bag = nn.EmbeddingBag(10, 4, mode="sum", sparse=True)
    host = HostBag(bag, torch.device("cpu"))
    idx, off = torch.tensor([1, 2, 2, 9]), torch.tensor([0, 2])
    out = host(idx, off)
    torch.testing.assert_close(out, bag(idx, off))
    out.sum().backward()
    assert host.weight is bag.weight and bag.weight.grad.is_sparse
    assert bag.weight.grad.to_dense()[2].tolist() == [2.0] * 4


@pytest.mark.parametrize("device,optimizer",
                         [("cpu", "sgd"), ("cpu", "adagrad"), pytest.param("cuda", "sgd", marks=GPU)])
def test_fae_with_an_all_hot_budget_equals_the_baseline(tmp_path, epoch, device, optimizer):
    cfg = small_cfg(hot_budget="1GiB", ip_sampling_rate=1.0, optimizer=optimizer)  # adagrad: per-row state moves
    base = Trainer(cfg, tmp_path / "all", data=epoch, device=device)
    fae = Trainer(cfg.replace(inputs="fae"), tmp_path / "fae", data=epoch, device=device)
    assert fae.hotcold.split.hot_fraction == 1.0 and fae.hotcold.steps == cfg.iters
    a, b = base.run(progress=False), fae.run(progress=False)
    assert b["iterations"] == a["iterations"] == cfg.iters
    tol = 0.0 if device == "cpu" else 1e-4  # the same bits on the CPU; a GPU's backward sums in no fixed order
    assert abs(b["test_auc"] - a["test_auc"]) <= tol
    for (k, x), (_, y) in zip(base.state_dict_full().items(), fae.state_dict_full().items()):
        torch.testing.assert_close(y, x, rtol=0, atol=tol, msg=k)


@pytest.mark.parametrize("device", DEVICES)
def test_fae_trains_cold_then_hot_and_restores_the_tables(tmp_path, epoch, device):
    trainer = Trainer(small_cfg(inputs="fae", hot_budget="64KiB"), tmp_path / "fae", data=epoch, device=device)
    split = trainer.hotcold.split
    assert 0 < split.hot_fraction < 1
    before = trainer.state_dict_full()["sparse_arch.bag.weight"]
    summary = trainer.run(progress=False)
    after = trainer.state_dict_full()["sparse_arch.bag.weight"]
    moved = (after != before).any(1).numpy()
    assert moved[split.hot_rows].mean() > 0.5  # hot rows trained on the hot table came back
    assert trainer.model.bag is trainer.hotcold.table.cold_view  # the full tables again after the epoch
    batches = -(-len(split.cold_inputs) // 128) - (-len(split.hot_inputs) // 128)  # a partial batch per phase
    assert summary["iterations"] == trainer.hotcold.steps == batches
    assert summary["hotcold"]["trained_inputs"] == len(epoch) and summary["hotcold"]["skipped_inputs"] == 0


def test_skipped_inputs_are_never_trained(tmp_path, epoch, monkeypatch):
    trained = []
    take, hot_batch = EpochInputs.take, HotColdSchedule._hot_batch
    monkeypatch.setattr(EpochInputs, "take", lambda self, idx: trained.append(np.asarray(idx)) or take(self, idx))
    monkeypatch.setattr(HotColdSchedule, "_hot_batch", lambda self, pos: trained.append(self.split.hot_inputs[pos])
                        or hot_batch(self, pos))
    cfg = small_cfg(inputs="slipstream", hot_budget="256KiB", target_drop=0.3, iters=120, batch_size=64,
                    starting_minibatch=2, minibatch_percentage=0.3)  # a window that touches most hot rows
    trainer = Trainer(cfg, tmp_path / "slip", data=epoch, device="cpu")
    trained.clear()
    summary = trainer.run(progress=False)
    seen = np.concatenate(trained)
    (skipped,) = trainer.hotcold.skipped
    assert skipped.size > 0 and not np.isin(skipped, seen).any()
    assert np.array_equal(np.sort(np.concatenate([seen, skipped])), np.arange(len(epoch)))  # the rest, once each
    hc = summary["hotcold"]
    assert hc["skipped_inputs"] == skipped.size and summary["iterations"] == hc["steps"] < 120
    assert abs(hc["sample_drop"][0] - 0.3) <= 0.08 and 0 < hc["T"][0] < 0.1
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "slip" / "log.jsonl").read_text().splitlines()]
    assert kinds[0] == "profile" and "slipstream" in kinds and "hotcold" in kinds


def test_a_saved_split_is_reused(tmp_path, epoch):
    first = Trainer(small_cfg(inputs="fae", hot_budget="64KiB"), tmp_path / "a", data=epoch, device="cpu")
    again = Trainer(small_cfg(inputs="fae", hot_budget="1MiB", hot_split=str(tmp_path / "a" / "hotcold")),
                    tmp_path / "b", data=epoch, device="cpu")
    np.testing.assert_array_equal(again.hotcold.split.hot_inputs, first.hotcold.split.hot_inputs)


def test_cli_flags_reach_the_summary(tmp_path, capsys):
    out = tmp_path / "run"
    args = build_parser().parse_args(
        ["--iters", "40", "--batch-size", "128", "--test-size", "1024", "--dump-every", "0", "--device", "cpu",
         "--inputs", "slipstream", "--hot-budget", "128KiB", "--target-drop", "0.2", "--alpha", "25",
         "--sample-rate", "0.01", "--ip-sampling-rate", "0.1", "--starting-minibatch", "2",
         "--minibatch-percentage", "0.1", "--no-progress", "--out", str(out)])
    assert train_main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    cfg, hc = summary["config"], summary["hotcold"]
    assert (cfg["inputs"], cfg["hot_budget"], cfg["target_drop"], cfg["alpha"], cfg["sample_rate"]) == \
        ("slipstream", "128KiB", 0.2, 25, 0.01)
    assert hc["budget_bytes"] == 128 << 10 and hc["alpha"] == 25 and hc["target_drop"] == 0.2
    assert hc["ip_sampling_rate"] == 0.1
    for key in ("hot_fraction", "lambda", "T", "skipped_fraction", "snapshot_s", "threshold_s", "classify_s",
                "sync_in_s", "sync_out_s", "profile_s"):
        assert key in hc
    assert (out / "hotcold" / "split.npz").is_file()


@pytest.mark.skipif(not (REAL / "avazu").is_dir(), reason="no shared Avazu sample")
def test_avazu_reader():
    from dlrmcomp.data.avazu import AvazuData

    data = AvazuData(REAL / "avazu" / "wideresdnn_avazu_train.csv", REAL / "avazu" / "wideresdnn_avazu_test.csv")
    assert len(data.table_sizes) == 22 and len(data.train) == 8087 and len(data.test) == 432
    b = data.batch(0, 16)
    assert b.num_tables == 22 and tuple(b.dense.shape) == (16, 13) and not b.dense.any()
    assert all(int(i.max()) < n for i, n in zip(b.indices, data.table_sizes))
    assert 0 < data.test_labels.mean() < 0.5
