"""Training: the compression hook, metrics, the loop (CLI, resume, dumps), log parsers."""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import dlrmcomp
from dlrmcomp.data import SyntheticCriteo, load_dump, read_manifest
from dlrmcomp.errorbound import EBSchedule
from dlrmcomp.train import PayloadCompressor, auc_score, binary_metrics, profile_config, read_jsonl, train
from dlrmcomp.train import cli

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "criteo"


def payload(seed=0, tables=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(64, 16, generator=g) * (t + 1)).requires_grad_() for t in range(tables)]


@pytest.mark.parametrize("codec", ["quant+ans", "quant+zstd", "quant+dedup+ans"])
def test_simulate_and_codec_give_identical_tensors(codec):
    schedule = EBSchedule(tighten_tables=(0,), loosen_tables=(2,))
    sim = PayloadCompressor("simulate", 3, schedule=schedule)
    real = PayloadCompressor("codec", 3, codec=codec, schedule=schedule)
    for hook in (sim, real):
        hook.iteration = 100
    a, b, x = payload(), payload(), payload()
    sim(a), real(b)
    for t in range(3):
        assert torch.equal(a[t], b[t])
        eb_abs = dlrmcomp.ErrorBound(schedule.bound(t, 100), "rel").resolve(x[t].detach().numpy())
        assert float((a[t] - x[t]).detach().abs().max()) <= eb_abs and not torch.equal(a[t], x[t])
    raw, comp = real.forward.take()
    assert raw.tolist() == [64 * 16 * 4] * 3 and (comp > 0).all() and (raw / comp > 2).all()


def test_gradients_pass_straight_through_or_compressed():
    x = payload(tables=1)
    PayloadCompressor("simulate", 1)(x)
    (x[0] * torch.arange(16.0)).sum().backward()
    assert torch.equal(x[0].grad, torch.arange(16.0).expand(64, 16))  # straight through
    y = payload(tables=1)
    grad = torch.randn(64, 16)
    hook = PayloadCompressor("codec", 1, codec="quant+zstd", grad_codec="quant+zstd",
                             grad_schedule=EBSchedule.fixed(0.05))
    leaf = y[0]
    out = hook([leaf * 1.0])[0]
    out.backward(grad)
    assert not torch.equal(leaf.grad, grad)
    assert float((leaf.grad - grad).abs().max()) <= 0.05 * float(grad.max() - grad.min()) * 1.0001
    assert hook.backward.take()[1][0] > 0


def test_unknown_mode_and_codec():
    with pytest.raises(ValueError, match="compression mode"):
        PayloadCompressor("fast", 2)
    with pytest.raises(ValueError):
        PayloadCompressor("codec", 2, codec="nope")


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
    assert read_jsonl(tmp_path / "cut" / "log.jsonl").equals(read_jsonl(tmp_path / "whole" / "log.jsonl"))
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
