"""Training at world size 1: the codec seam, metrics, the trainer (CLI, resume, dumps, device, schedule)."""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import torch.nn.functional as F

import dlrmcomp
from dlrmcomp.codecs.quantize import quantize_dequantize
from dlrmcomp.data import SyntheticCriteo, load_dump, read_manifest
from dlrmcomp.dist import Comm, CommStats, exchange, get_comm_codec, pooled_all_to_all
from dlrmcomp.dist.comms import quantize_dequantize_torch
from dlrmcomp.errorbound import EBSchedule, run_early_stage
from dlrmcomp.models import DLRM
from dlrmcomp.train import (DeviceFeed, TrainConfig, Trainer, auc_score, binary_metrics, comm_specs, evaluate,
                            profile_config, read_jsonl, resolve_device, train)
from dlrmcomp.train import cli

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "criteo"


def payload(seed=0, tables=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(64, 16, generator=g) * (t + 1)).requires_grad_() for t in range(tables)]


def local_exchange(xs, codec, iteration=100, stats=None):
    """The all-to-all with one rank (no process group): slices of tables 0..n-1 in, out."""
    n = len(xs)
    return exchange([xs], [list(range(n))], [[x.shape[0] for x in xs]], [list(range(n))], xs[0].shape[1], codec,
                    iteration, stats)[0]


@pytest.mark.parametrize("codec", ["quant+ans", "quant+zstd", "quant+dedup+ans"])
def test_simulate_and_codec_give_identical_tensors(codec):
    schedule = EBSchedule(tighten_tables=(0,), loosen_tables=(2,))
    x = [t.detach() for t in payload()]
    sim_stats, real_stats = CommStats(3), CommStats(3)
    sim = local_exchange(x, get_comm_codec("simulate", schedule), stats=sim_stats)
    real = local_exchange(x, get_comm_codec(codec, schedule), stats=real_stats)
    for t in range(3):
        assert torch.equal(sim[t], real[t])
        eb_abs = dlrmcomp.ErrorBound(schedule.bound(t, 100), "rel").resolve(x[t].numpy())
        assert float((sim[t] - x[t]).abs().max()) <= eb_abs and not torch.equal(sim[t], x[t])
    raw, sent = real_stats.bytes_raw, real_stats.bytes_sent
    assert raw.tolist() == [64 * 16 * 4] * 3 and (sent > 0).all() and (raw / sent > 2).all()
    assert not sim_stats.bytes_raw.any() and not sim_stats.bytes_sent.any()  # simulate makes no bytes


def test_gradients_pass_straight_through_or_compressed():
    def run(forward, backward):
        comm = Comm([[0]], 0, 16, 1, forward, backward)
        leaf = payload(tables=1)[0]
        out = pooled_all_to_all(comm, [[leaf * 1.0]], [[64]])[0][0]
        grad = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
        out.backward(grad)
        return leaf.grad, grad, comm

    got, grad, _ = run(get_comm_codec("simulate"), None)
    assert torch.equal(got, grad)  # straight through
    got, grad, comm = run(get_comm_codec("quant+zstd"), get_comm_codec("quant+zstd", EBSchedule.fixed(0.05)))
    assert not torch.equal(got, grad)
    assert float((got - grad).abs().max()) <= 0.05 * float(grad.max() - grad.min()) * 1.0001
    assert comm.bwd_stats.bytes_sent[0] > 0


def test_unknown_mode_and_codec(tmp_path):
    with pytest.raises(ValueError, match="compression mode"):
        comm_specs(TrainConfig(compression="fast"))
    with pytest.raises(ValueError):
        Trainer(TrainConfig(compression="codec", codec="nope", test_size=64, scale=1e-4), tmp_path)


def test_comm_specs_follow_the_compression_mode():
    cfg = TrainConfig(codec="quant+zstd", grad_codec="quant+ans")
    assert comm_specs(cfg.replace(compression="none")) == ("fp32", "fp32")
    assert comm_specs(cfg.replace(compression="simulate")) == ("simulate", "simulate")
    assert comm_specs(cfg.replace(compression="simulate", grad_codec=None)) == ("simulate", "fp32")
    assert comm_specs(cfg.replace(compression="codec")) == ("quant+zstd", "quant+ans")
    assert comm_specs(cfg.replace(compression="codec", fwd_comm="int8", bwd_comm="fp16")) == ("int8", "fp16")


def test_device_simulate_matches_the_cpu_quantizer():
    """The CUDA path of ``simulate`` (torch ops, no host sync), run on CPU tensors."""
    rng = np.random.default_rng(0)
    odd = rng.standard_normal((50, 8)).astype(np.float32)
    odd[3, 2], odd[4, 1], odd[7, 7] = np.nan, np.inf, -np.inf
    wide = rng.standard_normal((30, 16)).astype(np.float32)
    wide[0, 0] = 1e6
    arrays = [rng.standard_normal((64, 16)).astype(np.float32) * s for s in (1e-3, 1.0, 1e30)]
    arrays += [odd, wide, np.full((10, 4), 3.5, np.float32), np.full((4, 4), np.nan, np.float32),
               np.zeros((0, 16), np.float32)]
    for eb in (1e-4, 0.03, 2.0):
        for codes in ("auto", "int8", "int16"):
            for a in arrays:
                ref = quantize_dequantize(a, dlrmcomp.ErrorBound(eb, "rel").resolve(a), codes)
                got = quantize_dequantize_torch(torch.from_numpy(a), eb, codes).numpy()
                assert np.array_equal(ref, got, equal_nan=True), (eb, codes, a.shape)


def reference_run(cfg, data):
    """The single-process trainer as it was before world size 1 became a case of the distributed
    one: a DLRM whose pooled payload is quantized in place (simulate) or sent through frames
    (codec), gradients through the backward codec's frames; returns (weights, losses, metrics,
    forward bytes per table (raw, compressed))."""
    torch.manual_seed(cfg.seed)
    model = DLRM.from_preset(cfg.preset, data.table_sizes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    schedule = EBSchedule.load(cfg.schedule, data.table_sizes)
    n = len(data.table_sizes)
    raw, comp, losses = np.zeros(n, np.int64), np.zeros(n, np.int64), []

    def roundtrip(a, name, eb, table=None):
        frame = dlrmcomp.codecs.get(name, eb=eb, mode="rel").encode(a)
        if table is not None:
            raw[table] += a.nbytes
            comp[table] += len(frame)
        return torch.from_numpy(dlrmcomp.decompress(frame))

    for it in range(cfg.iters):
        def hook(pooled, it=it):
            for t, x in enumerate(pooled):
                a, eb = x.detach().numpy(), schedule.bound(t, it)
                if cfg.compression == "simulate":
                    x.data = torch.from_numpy(quantize_dequantize(a, dlrmcomp.ErrorBound(eb, "rel").resolve(a)))
                else:
                    x.data = roundtrip(a, cfg.codec, eb, t)
                    if cfg.grad_codec:
                        x.register_hook(lambda g, t=t, it=it: roundtrip(g.numpy(), cfg.grad_codec, schedule.bound(t, it)))
            return pooled

        batch = data.batch(it, cfg.batch_size)
        loss = F.binary_cross_entropy_with_logits(model(batch, hook if cfg.compression != "none" else None),
                                                  batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.state_dict(), losses, evaluate(model, data, cfg.test_batch_size), (raw, comp)


@pytest.mark.parametrize("changes", [dict(compression="none"), dict(compression="simulate"),
                                     dict(compression="codec", codec="quant+zstd", grad_codec="quant+zstd")],
                         ids=["none", "simulate", "codec+grad"])
def test_world_size_one_trains_like_the_reference_loop(tmp_path, changes):
    cfg = TrainConfig(scale=1e-4, test_size=1024, iters=6, batch_size=64, eval_every=6, log_every=1,
                      test_batch_size=512, schedule="fixed:0.05", **changes)
    data = SyntheticCriteo(scale=cfg.scale, test_size=cfg.test_size, seed=cfg.seed)
    trainer = Trainer(cfg, tmp_path, data)
    summary = trainer.run(progress=False)
    weights, losses, metrics, (raw, comp) = reference_run(cfg, data)
    got = trainer.state_dict_full()
    assert set(got) == set(weights)
    for name, value in weights.items():
        assert torch.equal(got[name], value), name
    log = [json.loads(x) for x in open(tmp_path / "log.jsonl")]
    assert [r["loss"] for r in log if r["kind"] == "train"] == losses
    assert (summary["test_auc"], summary["test_logloss"]) == (metrics["auc"], metrics["logloss"])
    assert summary["table_ratios"] == [float(r / c) if c else None for r, c in zip(raw, comp)]
    assert summary["bytes_raw"] == raw.sum() and summary["bytes_compressed"] == comp.sum()
    assert [r["iteration"] for r in log if r["kind"] == "comm"] == list(range(1, 7))
    assert summary["world"] == 1 and summary["plan"] == [list(range(26))] and summary["device"] == "cpu"


def test_auto_schedule_follows_the_run(tmp_path, monkeypatch):
    assert run_early_stage(120) == 24 and run_early_stage(3000) == 600 and run_early_stage(10**7) == 65536
    small = dict(scale=1e-4, test_size=64, iters=120, compression="simulate")
    auto = Trainer(TrainConfig(**small), tmp_path / "a")
    assert auto.schedule.early_stage == 24 and "first 24 of 120 iterations (auto" in auto.describe()
    assert Trainer(TrainConfig(**small, early_stage=50), tmp_path / "b").schedule.early_stage == 50
    monkeypatch.setenv("EARLY_STAGE", "1000")
    env = Trainer(TrainConfig(**small, schedule="env"), tmp_path / "c")
    assert env.schedule.early_stage == 1000 and "never reaches the base bounds" in env.describe()
    monkeypatch.delenv("EARLY_STAGE")
    assert EBSchedule.load("env").early_stage == EBSchedule.load("auto", [10, 20]).early_stage == 65536


def test_device_feed_and_device_choice():
    data = SyntheticCriteo(scale=1e-4, test_size=64)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    plain = DeviceFeed(data, 32, torch.device("cpu"), 10)
    assert plain._pool is None  # the CPU path is data.batch as it is, no thread
    feed = DeviceFeed(data, 32, torch.device("cpu"), 10, prefetch=True)
    try:
        for it in [0, 1, 2, 7, 8, 9, 3]:  # in order, a jump, the end, back
            got, want = feed(it), data.batch(it, 32)
            assert torch.equal(got.dense, want.dense) and all(map(torch.equal, got.indices, want.indices))
    finally:
        feed.close()


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y, s = rng.random(300) < 0.3, rng.integers(0, 10, 300).astype(float)  # many ties
    pos, neg = s[y], s[~y]
    expected = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
    assert auc_score(y, s) == pytest.approx(expected)
    m = binary_metrics(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.4]))
    assert m["accuracy"] == pytest.approx(2 / 3) and m["auc"] == 1.0
    assert m["logloss"] == pytest.approx(-np.mean(np.log([0.8, 0.9, 0.4])))


def run_cli(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.main(parser.parse_args(list(argv)))


def test_smoke_cli_codec_run(tmp_path, capsys):
    t0 = time.perf_counter()
    assert run_cli("--profile", "smoke", "--compression", "codec", "--codec", "quant+zstd",
                   "--schedule", "auto", "--early-stage", "60", "--no-progress", "--out", str(tmp_path)) == 0
    assert time.perf_counter() - t0 < 60
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert printed["test_auc"] == summary["test_auc"] > 0.55
    assert summary["mean_ratio"] > 4 and len(summary["table_ratios"]) == 26
    assert summary["bytes_raw"] == 120 * 26 * 256 * 16 * 4
    log = read_jsonl(tmp_path / "log.jsonl")
    train_rows, evals = log[log.kind == "train"], log[log.kind == "eval"]
    assert list(evals.iteration) == [60, 120] and len(train_rows) == 6
    assert train_rows.eb.iloc[0][0] == pytest.approx(EBSchedule.auto(summary["table_sizes"], early_stage=60).bound(0, 19))
    m = read_manifest(tmp_path / "dumps")
    assert len(m["snapshots"]) == 2 * 26 and m["snapshots"][-1]["iteration"] == 60
    assert load_dump(tmp_path / "dumps", m["snapshots"][0]).shape == (256, 16)


def test_env_schedule(tmp_path, monkeypatch):
    monkeypatch.setenv("BASE_ERROR_BOUND", "0.04")
    monkeypatch.setenv("TIGHTEN_EB_TABLES", "1 2")
    monkeypatch.setenv("LOOSEN_EB_TABLES", "")
    cfg = profile_config("smoke", iters=10, eval_every=10, dump_every=0, compression="simulate", schedule="env")
    s = train(cfg, tmp_path, progress=False)
    assert s["schedule"]["base"] == 0.04 and s["schedule"]["tighten_tables"] == [1, 2]
    assert s["mean_ratio"] is None


def untimed(path) -> list[dict]:
    """The log's records without their seconds (``step_s``, ``encode_s``, ...): what a rerun repeats."""
    strip = lambda r: {k: strip(v) if isinstance(v, dict) else v for k, v in r.items() if not k.endswith("_s")}  # noqa: E731
    return [strip(json.loads(x)) for x in open(path)]


def test_resume_matches_uninterrupted_run(tmp_path):
    cfg = profile_config("smoke", iters=40, eval_every=20, log_every=10, dump_every=15, checkpoint_every=10,
                         compression="codec", codec="quant+zstd", test_size=2048)
    data = SyntheticCriteo(scale=cfg.scale, test_size=cfg.test_size, seed=cfg.seed)
    whole = train(cfg, tmp_path / "whole", progress=False, data=data)

    def kill(it):
        if it == 24:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False, data=data, on_step=kill)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False, data=data)
    for key in ("test_auc", "test_accuracy", "test_logloss", "bytes_raw", "bytes_compressed", "table_ratios"):
        assert resumed[key] == whole[key], key
    assert untimed(tmp_path / "cut" / "log.jsonl") == untimed(tmp_path / "whole" / "log.jsonl")
    assert read_manifest(tmp_path / "cut" / "dumps") == read_manifest(tmp_path / "whole" / "dumps")


@pytest.mark.skipif(not REAL.is_dir(), reason="real Criteo samples absent")
@pytest.mark.parametrize("compression", ["none", "codec"])
def test_real_criteo_end_to_end(tmp_path, compression):
    data = f"criteo:{REAL / 'wideresdnn_criteo_train.tsv'},{REAL / 'wideresdnn_criteo_dev.tsv'}"
    cfg = profile_config("smoke", data=data, iters=60, batch_size=128, eval_every=30, dump_every=0,
                         compression=compression, codec="quant+zstd")
    s = train(cfg, tmp_path, progress=False)
    assert 0.5 < s["test_auc"] <= 1 and s["bayes_auc"] is None
    assert (s["mean_ratio"] or 0) > (2 if compression == "codec" else -1)


def test_runs_never_overwrite_and_resume_needs_a_checkpoint(tmp_path):
    cfg = profile_config("smoke", iters=4, eval_every=4, log_every=2, test_size=512)
    train(cfg, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="no checkpoint"):
        train(cfg, tmp_path / "b", resume=True, progress=False)


def test_resume_survives_a_log_line_cut_by_a_crash(tmp_path):
    cfg = profile_config("smoke", iters=6, eval_every=6, log_every=2, checkpoint_every=2, test_size=512)

    def kill(it):
        if it == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, progress=False, on_step=kill)
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"kind": "train", "itera')  # the crash cut this line
    summary = train(cfg, tmp_path, resume=True, progress=False)
    assert summary["iterations"] == 6
    assert [r["iteration"] for r in map(json.loads, open(tmp_path / "log.jsonl")) if r["kind"] == "train"] == [2, 4, 6]
