"""Model-parallel training and the compressed all-to-all: one rank in process, 2-3 gloo processes."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import torch

from dlrmcomp.bench.speedup import comm_share_from_log

from dlrmcomp.data import SyntheticCriteo, load_dump, read_manifest
from dlrmcomp.dist import CommStats, QCommsConfig, dedup_savings, exchange, get_comm_codec, plan_tables, testing
from dlrmcomp.errorbound import EBSchedule
from dlrmcomp.train import TrainConfig, Trainer
from dlrmcomp.train.testing import train_worker

SPECS = ["fp32", "simulate", "fp16", "bf16", "int8", "quant+ans", "quant+dedup+zstd"]
CFG = TrainConfig(preset="tiny", scale=1e-4, test_size=2000, iters=10, batch_size=64, eval_every=10,
                  log_every=5, test_batch_size=1000, schedule="fixed:0.02", dump_every=5)


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


@pytest.mark.parametrize("spec", SPECS)
def test_one_rank_exchange_is_a_local_pass(spec):
    """World size 1, no process group: the codec's round trip, bytes counted only where a codec made them."""
    codec = get_comm_codec(spec, EBSchedule.fixed(0.02))
    xs = [testing.slice_for(0, 0, t, 9 + t, 16) for t in range(3)]
    stats = CommStats(3)
    got = exchange([xs], [[0, 1, 2]], [[9, 10, 11]], [[0, 1, 2]], 16, codec, iteration=3, stats=stats)[0]
    for t, x in enumerate(xs):
        ref = x if codec is None else codec.decode(codec.encode(x, t, 3), x.shape[0], 16, t)
        assert torch.equal(got[t], ref), t
    made_bytes = codec is not None and codec.makes_bytes
    assert stats.bytes_raw.tolist() == ([(9 + t) * 16 * 4 for t in range(3)] if made_bytes else [0, 0, 0])
    assert (stats.bytes_sent > 0).all() == made_bytes and stats.size_bytes == 0 and stats.calls == 1


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
    codes = testing.spawn(train_worker, 2, str(tmp_path / "dist"), dataclasses.asdict(CFG), timeout=90)
    assert codes == [0, 0]
    got = torch.load(tmp_path / "dist" / "dist_result.pt", weights_only=False)
    one = Trainer(CFG, tmp_path / "one")
    summary = one.run(progress=False)
    ref = one.state_dict_full()
    assert set(got["state"]) == set(ref)
    for name, value in got["state"].items():
        torch.testing.assert_close(value, ref[name], rtol=1e-5, atol=1e-6, msg=name)
    assert got["summary"]["test_logloss"] == pytest.approx(summary["test_logloss"], abs=1e-5)
    records = lambda p: [json.loads(x) for x in open(p)]  # noqa: E731
    dist_log, one_log = records(tmp_path / "dist" / "log.jsonl"), records(tmp_path / "one" / "log.jsonl")
    losses = lambda log: [r["loss"] for r in log if r["kind"] == "train"]  # noqa: E731
    np.testing.assert_allclose(losses(dist_log), losses(one_log), rtol=1e-5)
    # the same records and summary keys at every world size
    assert [(r["kind"], r["iteration"], sorted(r)) for r in dist_log] == [(r["kind"], r["iteration"], sorted(r))
                                                                         for r in one_log]
    assert set(got["summary"]) == set(summary) and (got["summary"]["world"], summary["world"]) == (2, 1)
    # EMB dumps: rank 0 writes every table's payload, gathered from the ranks
    dumps = [read_manifest(tmp_path / run / "dumps") for run in ("dist", "one")]
    assert dumps[0]["snapshots"] == dumps[1]["snapshots"] and len(dumps[0]["snapshots"]) == 2 * 26
    for entry in dumps[0]["snapshots"]:
        np.testing.assert_allclose(load_dump(tmp_path / "dist" / "dumps", entry),
                                   load_dump(tmp_path / "one" / "dumps", entry), rtol=1e-5, atol=1e-6)


def test_compressed_training_logs_bytes_and_times(tmp_path):
    cfg = dataclasses.asdict(CFG.replace(compression="codec", codec="quant+ans", iters=4, eval_every=4, dump_every=0,
                                         bwd_comm="int8", dedup=True))
    codes = testing.spawn(train_worker, 2, str(tmp_path), cfg, timeout=90)
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
