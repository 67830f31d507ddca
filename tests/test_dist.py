"""Model-parallel training and the compressed all-to-all, with 2-3 gloo processes per test."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dlrmcomp.bench.speedup import comm_share_from_log
import torch

from dlrmcomp.data import SyntheticCriteo
from dlrmcomp.dist import QCommsConfig, dedup_savings, get_comm_codec, plan_tables, testing
from dlrmcomp.train import TrainConfig, Trainer

SPECS = ["fp32", "fp16", "bf16", "int8", "quant+ans", "quant+dedup+zstd"]
CFG = TrainConfig(preset="tiny", scale=1e-4, test_size=2000, iters=10, batch_size=64, eval_every=10,
                  log_every=5, test_batch_size=1000, schedule="fixed:0.02")


def test_plan_balances_and_covers():
    plan = plan_tables([100, 1, 50, 49, 3, 2], 2)
    assert sorted(t for p in plan for t in p) == list(range(6))
    assert plan == [[0, 1, 5], [2, 3, 4]]  # loads 103 and 102


def test_baseline_codecs_round_trip_locally():
    x = torch.randn(33, 16)
    for spec, tol in (("fp16", 1e-3), ("bf16", 1e-2), ("int8", 0.03)):
        c = get_comm_codec(spec)
        buf = c.encode(x, 0, 0)
        assert buf.dtype == torch.uint8 and buf.numel() == c.encoded_size(33, 16)
        assert (c.decode(buf, 33, 16, 0) - x).abs().max() <= tol * x.abs().max()
    assert get_comm_codec("fp32") is None and QCommsConfig().codecs() == (None, None)
    with pytest.raises(ValueError):
        QCommsConfig(forward="nope+codec")


def test_dedup_savings_on_synthetic():
    batch = SyntheticCriteo(scale=1e-3, test_size=100).batch(0, 2048)
    s = dedup_savings(batch, 2)
    assert s["ratio"] > 1.5 and all(a >= b for a, b in zip(s["rows_raw"], s["rows_sent"]))


def test_compressed_alltoall_equals_local_reference(tmp_path):
    codes = testing.spawn(testing.alltoall_worker, 3, str(tmp_path), SPECS, timeout=90)
    assert codes == [0, 0, 0]
    for r in range(3):
        res = testing.load(tmp_path / f"a2a.{r}.pkl")
        assert "error" not in res, res.get("error")
        for spec in SPECS:
            assert res[spec]["exact"], spec  # frame codecs: == quantize_dequantize, bit for bit
            assert res[spec]["bytes_sent"] == res[spec]["frame_bytes"], spec  # per table
        assert res["fp32"]["max_err"] == 0.0
        assert res["quant+ans"]["size_bytes"] > 0 and res["int8"]["size_bytes"] == 0


def test_two_ranks_match_one_rank(tmp_path):
    codes = testing.spawn(testing.train_worker, 2, str(tmp_path / "dist"), dataclasses.asdict(CFG), timeout=90)
    assert codes == [0, 0]
    got = torch.load(tmp_path / "dist" / "dist_result.pt", weights_only=False)
    one = Trainer(CFG, tmp_path / "one")
    summary = one.run(progress=False)
    ref = one.model.state_dict()
    for name, value in got["state"].items():
        torch.testing.assert_close(value, ref[name], rtol=1e-5, atol=1e-6, msg=name)
    assert got["summary"]["test_logloss"] == pytest.approx(summary["test_logloss"], abs=1e-5)
    losses = lambda p: [r["loss"] for r in map(json.loads, open(p)) if r["kind"] == "train"]  # noqa: E731
    np.testing.assert_allclose(losses(tmp_path / "dist" / "log.jsonl"), losses(tmp_path / "one" / "log.jsonl"),
                               rtol=1e-5)


def test_compressed_training_logs_bytes_and_times(tmp_path):
    cfg = dataclasses.asdict(CFG.replace(compression="codec", codec="quant+ans", iters=4, eval_every=4))
    codes = testing.spawn(testing.train_worker, 2, str(tmp_path), cfg, None, "int8", True, timeout=90)
    assert codes == [0, 0]
    recs = [json.loads(x) for x in open(tmp_path / "log.jsonl")]
    comm = [r for r in recs if r["kind"] == "comm"]
    assert [r["iteration"] for r in comm] == [1, 2, 3, 4]
    for r in comm:
        f, b = r["forward"], r["backward"]
        assert f["bytes_sent"] == sum(f["table_bytes_sent"]) < f["bytes_raw"] == 26 * 64 * 16 * 4
        assert b["bytes_sent"] == sum(b["table_bytes_sent"]) < b["bytes_raw"]
        assert f["size_bytes"] > 0 and b["size_bytes"] == 0  # int8 sizes are known up front
        assert min(f["encode_s"], f["exchange_s"], f["decode_s"]) > 0
        assert r["step_s"] > 0
    share = comm_share_from_log(tmp_path / "log.jsonl")
    assert 0 < share <= 1
    assert share == pytest.approx(np.mean([min(1.0, sum(d["encode_s"] + d["exchange_s"] + d["decode_s"]
                                                         for d in (r["forward"], r["backward"])) / r["step_s"])
                                           for r in comm]))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["bytes_compressed"] == sum(r["forward"]["bytes_sent"] for r in comm)
    assert summary["qcomms"] == {"forward": "quant+ans", "backward": "int8", "dedup": True}


@pytest.mark.parametrize("mode", ["die", "stall"])
def test_dead_or_stalled_rank_raises_within_timeout(tmp_path, mode):
    codes = testing.spawn(testing.failure_worker, 2, str(tmp_path), mode, 3.0, timeout=25, wait_ranks=[0])
    assert codes[0] == 0  # rank 0 finished (with the error recorded), no hang
    res = testing.load(tmp_path / "fail.0.pkl")
    assert res["type"] == "RankFailure" and "peer rank died, stalled" in res["error"]
    assert res["seconds"] < 3.0 + 5.0
