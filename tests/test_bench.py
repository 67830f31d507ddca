"""quantize / pad / bench over EMB dumps: codes, bounds, ratios against the entropy and zstd."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrmcomp import codecs
from dlrmcomp.bench import benchmark, dumps, pad, payload, quantize, runner
from dlrmcomp.codecs.quantize import LinearQuantizer
from dlrmcomp.data.dumps import DumpWriter
from dlrmcomp.errorbound import EBSchedule

SIZES = (1460, 583, 10131227, 305)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dump_dir(tmp_path_factory):
    """4 tables x 2 snapshots of a Zipf payload [8192, 32] with a manifest."""
    d = tmp_path_factory.mktemp("dumps")
    w = DumpWriter(d, SIZES, dim=32, batch=8192)
    for k in range(2):
        w.write(k, 100 * k, payload.embedding_payload(8192, 32, 4, seed=k, cardinalities=SIZES), [0.03] * 4)
    return d


def test_raw_dumps_without_manifest_are_inferred(tmp_path):
    x = np.arange(64, dtype=np.float32)
    x.tofile(tmp_path / "EMB_3_iter_7.bin")
    with pytest.raises(ValueError, match="--dim"):
        dumps.list_entries(tmp_path)
    (entry,) = dumps.list_entries(tmp_path, dim=16)
    assert (entry["table"], entry["snapshot"], entry["shape"]) == (3, 7, [4, 16])
    assert dumps.load(tmp_path, entry).tolist() == x.reshape(4, 16).tolist()


def test_quantize_codes_are_the_codecs_codes():
    x = np.random.default_rng(0).normal(0, 0.05, (512, 16)).astype(np.float32)
    q = quantize.quantize_codes(x, 0.03, "int8")
    eb_abs = 0.03 * float(x.max() - x.min())
    assert q.codes.dtype == np.int8 and q.escapes.size == 0 and q.grid.step == pytest.approx(2 * eb_abs)
    seed = np.round(x / q.grid.step)  # the seed's grid, centred
    assert np.array_equal(q.codes.astype(int), seed - q.grid.base / q.grid.step)
    codec = codecs.get("quant+ans", eb=0.03, dtype="int8")
    assert np.array_equal(LinearQuantizer.dequantize(q, x.dtype), codec.decode(codec.encode(x)))


def test_snapshot_bounds_decay_to_the_table_bound_at_the_decay_stage():
    s = EBSchedule(tighten_tables=(0,), loosen_tables=(1,), decay="linear")
    assert quantize.snapshot_bound(s, 0, 0, 10) == pytest.approx(0.02)
    assert quantize.snapshot_bound(s, 0, 5, 10) == pytest.approx(0.015)
    assert quantize.snapshot_bound(s, 1, 10, 10) == 0.05 and quantize.snapshot_bound(s, 2, 30, 10) == 0.03


def test_quantize_command_writes_codes_and_manifest(dump_dir, tmp_path):
    out = tmp_path / "codes"
    subprocess.run([sys.executable, "-m", "dlrmcomp.cli", "quantize", str(dump_dir), "--schedule", "fixed:0.03",
                    "--decay-stage", "1", "--out", str(out)], check=True, capture_output=True)
    m = json.loads((out / "manifest.json").read_text())
    assert len(m["codes"]) == 8 and {e["eb"] for e in m["codes"]} == {0.03}
    e = m["codes"][0]
    q = quantize.load_codes(out, e)
    x = dumps.load(dump_dir, dumps.list_entries(dump_dir)[0])
    assert q.codes.dtype == np.int8 and e["escape_code"] == -128 and q.codes.shape == x.shape
    assert np.abs(LinearQuantizer.dequantize(q, x.dtype) - x).max() <= e["eb_abs"]


def test_pad_repeats_rows(dump_dir, tmp_path):
    pad.pad_dir(dump_dir, tmp_path, copies=3)
    y, x = dumps.load(tmp_path, dumps.list_entries(tmp_path)[5]), dumps.load(dump_dir, dumps.list_entries(dump_dir)[5])
    assert y.shape == (3 * 8192, 32) and np.array_equal(y[8192 * 2:], x)


@pytest.fixture(scope="module")
def results(dump_dir):
    bounds = benchmark.Bounds("dump")
    names = ["quant+ans", "quant+zstd", "quant+dedup+ans", "zstd"]
    return benchmark.bench(benchmark.dump_items(dump_dir, bounds), names, repeat=1, progress=False)


def test_ans_within_two_percent_of_the_code_entropy(results):
    lossy = results[results.eb.notna()]
    by = lossy.set_index(["table", "snapshot", "codec"]).frame_bytes.unstack()
    gap = by["quant+ans"] / by["entropy0"]
    assert (gap >= 1).all() and (gap <= 1.02).all(), gap
    assert results.violations.sum() == 0


def test_dedup_ratio_at_least_zstd_and_lossless_far_below(results):
    summary = benchmark.codec_summary(results).set_index("codec")
    assert summary.ratio["quant+dedup+ans"] >= summary.ratio["quant+zstd"] > summary.ratio["quant+ans"] > 5
    assert summary.ratio["zstd"] < summary.ratio["quant+ans"] / 2
    # codes are int8: ratio vs codes is a quarter of the ratio vs fp32
    assert summary.ratio_vs_codes["quant+ans"] == pytest.approx(summary.ratio["quant+ans"] / 4, rel=1e-9)


def test_table_summary_is_the_harmonic_mean_over_snapshots(results):
    summary = benchmark.table_summary(results).set_index(["codec", "table"])
    r = results[(results.codec == "quant+ans") & (results.table == 2)].ratio
    assert summary.ratio[("quant+ans", 2)] == pytest.approx(2 / (1 / r).sum())


def test_bench_command_writes_csv_and_metadata(dump_dir, tmp_path):
    out = tmp_path / "r.csv"
    subprocess.run([sys.executable, "-m", "dlrmcomp.cli", "bench", str(dump_dir), "--codecs", "quant+ans,lz4",
                    "--bounds", "0.01,0.1", "--repeat", "2", "--out", str(out)], check=True, capture_output=True)
    df = pd.read_csv(out)
    assert len(df) == 8 * (2 * 2 + 1)  # (entropy0 + quant+ans) x 2 bounds + lz4
    ans = df[df.codec == "quant+ans"].set_index(["table", "snapshot", "eb"]).ratio.unstack()
    assert (ans[0.1] > 2 * ans[0.01]).all()
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert meta["rows"] == len(df) and "--bounds 0.01,0.1" in meta["command"] and meta["versions"]["numpy"]


def test_summaries_never_average_different_bounds():
    rows = [{"codec": "quant+ans", "table": 0, "snapshot": 0, "eb": eb, "ratio": r, "compress_gbps": 1.0,
             "decompress_gbps": 1.0} for eb, r in ((0.01, 5.0), (0.1, 20.0))]
    summary = benchmark.codec_summary(pd.DataFrame(rows)).set_index("codec")
    assert summary.ratio.to_dict() == {"quant+ans@0.01": 5.0, "quant+ans@0.1": 20.0}


# -- the one runner ----------------------------------------------------------------------------
class Recorder(runner.Contestant):
    """A contestant that notes when it runs (and codes nothing)."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def encode(self, xs):
        self.log.append((self.name, "encode"))
        return [x.tobytes() for x in xs]

    def decode(self, blobs):
        self.log.append((self.name, "decode"))
        return [np.frombuffer(b, np.float32).reshape(-1, 16).copy() for b in blobs]


def test_runner_interleaves_rounds_and_keeps_one_schema():
    log = []
    xs = payload.embedding_payload(64, 16, 2)
    rows = runner.run([Recorder("a", log), Recorder("b", log)], xs, repeat=2, stat="min", clock="cpu")
    assert log == [(n, s) for _ in range(3) for n in "ab" for s in ("encode", "decode")]  # warm-up + 2 rounds
    assert [r["codec"] for r in rows] == ["a", "b"] and all(tuple(r) == runner.ROW for r in rows)
    assert rows[0]["ratio"] == 1.0 and rows[0]["violations"] == 0
    log.clear()
    runner.run([Recorder("a", log)], xs, repeat=1, min_seconds=0.02)
    assert len(log) > 4  # rounds go on until each contestant was timed for min_seconds


def test_one_timer_on_every_clock():
    synced = []
    result, seconds = runner.timed(lambda: 7, repeat=3, stat="min", clock="cpu", sync=lambda: synced.append(1))
    assert result == 7 and 0 <= seconds < 0.1 and len(synced) == 4  # the warm-up's sync too
    assert runner.timed(sum, [1, 2], repeat=2)[0] == 3
    assert set(runner.CLOCKS) == {"wall", "cpu", "cuda"}
    codec = runner.FrameCodec("quant+ans", 0.03)
    row = runner.measure(payload.embedding_payload(64, 16, 1)[0], codec.codec)
    assert tuple(row) == runner.ROW and row["codec"] == "quant+ans" and row["eb"] == 0.03


def test_runner_adapters_keep_the_bound():
    pytest.importorskip("constriction")
    pytest.importorskip("pysz")
    xs = payload.embedding_payload(256, 16, 3)
    contestants = [runner.FrameCodec("quant+match+ans", 0.03, threads=2, label="ours x2"),
                   runner.FrameCodec("quant+zstd", 0.03, label="quant+zstd-1"), runner.ConstrictionAns(0.03),
                   runner.Sz3(0.03)]
    rows = runner.run(contestants, xs, repeat=1)
    assert [r["codec"] for r in rows] == ["ours x2", "quant+zstd-1", "constriction ANS", "SZ3 (pysz)"]
    assert all(r["violations"] == 0 and r["ratio"] > 3 for r in rows)


def test_cpu_codecs_benchmark_rows(tmp_path, capsys):
    import importlib.util

    pytest.importorskip("constriction")
    pytest.importorskip("pysz")
    spec = importlib.util.spec_from_file_location("cpu_codecs", ROOT / "benchmarks" / "cpu_codecs.py")
    cpu_codecs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cpu_codecs)
    df = cpu_codecs.bench(["design", "other"], [128, 512], dim=16, n_tables=4, eb=0.03, zipf=1.05, repeat=1,
                          stat="min", threads=2)
    assert set(df.batch) == {128, 512} and set(df.payload) == {"design", "other"} and (df.violations == 0).all()
    names = set(df.codec)
    assert {"quant+match+huffman", "quant+zstd-1", "quant+zstd-3", "quant+lz4", "constriction ANS", "SZ3 (pysz)",
            "quant+match+huffman (2 threads)"} <= names
    assert df["% of order-0 bound"].between(10, 500).all()
    wins = cpu_codecs.verdicts(df)
    assert len(wins) == 4 and set(wins.best) <= set(cpu_codecs.OURS)
    out = tmp_path / "cpu.json"
    cpu_codecs.main(["--batch", "64", "--tables", "2", "--dim", "16", "--repeat", "1", "--min-seconds", "0",
                     "--clock", "cpu", "--ours", "quant+match+huffman", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["command"].startswith("benchmarks/cpu_codecs.py --batch 64") and len(saved["verdicts"]) == 1
    assert {r["codec"] for r in saved["rows"]} >= {"quant+match+huffman", "quant+zstd-1"}
    assert "ours vs quant+zstd-1" in capsys.readouterr().out