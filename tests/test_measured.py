"""The committed GPU measurements (benchmarks/data/) read for the speed-up model, and their figure."""
import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from dlrmcomp.bench import measured
from dlrmcomp.bench import speedup as sp


def test_gpu_csv_reader_renames_to_the_model_and_keeps_provenance():
    df = measured.read_gpu_codecs()
    assert {"date", "device", "payload", "eb", "codec", "cr", "tc", "td"} <= set(df.columns)
    assert measured.provenance(df) == {"date": "2026-12-01", "device": "NVIDIA H200"}
    assert {"design", "other", "no-repeat"} <= set(df.payload)
    copy = df[df.codec.str.startswith("device-to-device copy")]
    assert copy.tc.iloc[0] > 1000 and np.isnan(copy.td.iloc[0])


def test_key_codecs_of_the_design_payload():
    rates = measured.key_rates(measured.read_gpu_codecs(), "design")
    assert list(rates.key) == list(measured.DEFAULT_KEYS)
    assert len(set(rates.color)) == len(rates)  # one colour a line
    by = rates.set_index("key")
    raw = pd.read_csv(measured.GPU_CSV).query("payload == 'design'").set_index("codec")
    wire = raw.loc["ours wire quant+ans L128 C64K S1 end-to-end"]
    assert by.loc["ours-wire", "name"] == wire.name
    assert by.loc["ours-wire", ["cr", "tc", "td"]].tolist() == [wire.ratio, wire.compress_gbps, wire.decompress_gbps]
    assert by.loc["nvcomp-ans", "name"].startswith("nvcomp ANS (int8 codes")
    assert by.loc["nvcomp-ans", "cr"] == raw.loc[by.loc["nvcomp-ans", "name"], "ratio"]
    assert by.loc["ours-dedup", "cr"] > 3 * by.loc["nvcomp-zstd", "cr"]  # dedup + rANS vs Zstd, DESIGN.md
    assert by.loc["ours-frames-host", "tc"] < 5  # the host round trip
    other = measured.key_rates(measured.read_gpu_codecs(), "other", ["nvcomp-ans", "nvcomp-lz4"])
    assert other.name.str.contains("batch of 16").all()


def test_gpu_csv_reader_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"codec": ["x"], "ratio": [2.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="missing columns"):
        measured.read_gpu_codecs(bad)
    df = measured.read_gpu_codecs()
    with pytest.raises(ValueError, match="unknown codec keys"):
        measured.key_rates(df, "design", ["nope"])
    with pytest.raises(ValueError, match="0 rows"):
        measured.key_rates(df, "no-repeat", ["nvcomp-ans"])  # that payload has no nvcomp rows


def test_alltoall_reader_and_the_model_in_the_files():
    a2a = measured.read_alltoall()
    assert set(a2a.backend) == {"gloo", "nccl"} and "fp32" not in set(a2a.codec)
    assert set(a2a.codec) == {"fp16", "bf16", "int8", "gpu:quant+ans"} and set(a2a.size_mb) == {16, 128, 512}
    # the model the benchmark wrote is dlrmcomp.bench.speedup fed with the row's own numbers
    assert a2a.model_check.to_numpy() == pytest.approx(a2a.model_speedup.to_numpy(), rel=1e-9)
    gloo = a2a[(a2a.backend == "gloo") & (a2a.size_mb == 128)].set_index("codec")
    assert gloo.world.iloc[0] == 2 and gloo.tensors.iloc[0] == "cuda"
    raw = json.loads(measured.ALLTOALL_JSON[0].read_text())
    ours = next(r for r in raw["results"] if r["size_mb"] == 128 and r["codec"] == "gpu:quant+ans")
    assert raw["backend"] == "gloo" and gloo.loc["gpu:quant+ans", "measured_speedup"] == ours["measured_speedup"]
    fp32 = next(r for r in raw["results"] if r["size_mb"] == 128 and r["codec"] == "fp32")
    assert ours["measured_speedup"] == pytest.approx(fp32["exchange_s"] / ours["total_s"])  # raw send / ours
    assert 2.0 < gloo.bandwidth_gbs.iloc[0] < 2.5  # an Ethernet-class link
    # model error as the benchmark defines it: predicted / measured time - 1
    assert gloo.model_error.to_numpy() == pytest.approx((gloo.measured_speedup / gloo.model_speedup - 1).to_numpy())
    assert (gloo.model_error.abs() <= 0.2).all()
    assert measured.run_label("gloo", 2, "cuda").startswith("gloo, 2 ranks on one GPU")
    assert measured.run_label("nccl", 1) == "NCCL, 1 rank (on-device copy)"


def test_alltoall_reader_errors(tmp_path):
    base = tmp_path / "fp32.json"
    base.write_text(json.dumps({"backend": "gloo", "world": 2, "results": [{"size_mb": 1, "codec": "fp32"}]}))
    with pytest.raises(ValueError, match="no measured rows"):
        measured.read_alltoall(base)
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not a benchmarks/alltoall.py result"):
        measured.read_alltoall(other)


def test_links_break_even_and_bandwidth_labels():
    rates = measured.key_rates(measured.read_gpu_codecs(), "design")
    at = measured.at_links(rates, by="key")
    wire = rates.set_index("key").loc["ours-wire"]
    assert at["ours-wire"]["25 GbE"] == pytest.approx(sp.speedup(wire.cr, wire.tc, wire.td, 3.125))
    assert all(v["NVLink 4"] < 1 for v in at.values())  # nothing beats raw floats on NVLink
    be = measured.break_evens(rates, by="key")
    assert be["nvcomp-ans"] > be["ours-wire"] > measured.LINKS["IB NDR"] > be["nvcomp-zstd"]
    assert measured.format_gbps(10 ** 1.1) == "12.6"
    assert [measured.format_gbps(b) for b in (3.125, 0.25, 450, 1877.9)] == ["3.1", "0.25", "450", "1,878"]
    options = measured.bandwidth_options([2.26])
    values = [v for _, v in options]
    assert values == sorted(values) and len(values) == len(set(values)) and 2.26 in values
    assert ("3.1 (25 GbE)", 3.125) in options and ("450 (NVLink 4)", 450.0) in options
    assert all(len(label.split(" ")[0]) <= 5 for label, _ in options)


def test_measured_figure_has_one_line_per_codec_and_the_points():
    from dlrmcomp.plots import bench

    csv = measured.read_gpu_codecs()
    rates, a2a = measured.key_rates(csv, "design"), measured.read_alltoall()
    fig = bench.speedup_measured(rates, a2a, title=measured.figure_title(csv, "design"),
                                 annotate=("gloo", "gpu:quant+ans", 128.0))
    ax = fig.axes[0]
    wide = [ln for ln in ax.lines if len(ln.get_xdata()) == len(bench.MEASURED_BANDWIDTHS)]
    assert len(wide) == len(rates) and len({ln.get_color() for ln in wide}) == len(rates)
    assert len(fig.legends) == 2 and len(fig.legends[0].get_texts()) == len(rates)
    assert "NVIDIA H200" in ax.get_title() and "2026-12-01" in ax.get_title()
    texts = [t.get_text() for t in ax.texts]
    assert {f"{name}, {measured.format_gbps(b)}" for name, b in measured.LINKS.items()} <= set(texts)
    ours = a2a.set_index(["backend", "codec", "size_mb"]).loc[("gloo", "gpu:quant+ans", 128.0)]
    label = f"{ours.measured_speedup:.2g}x measured, {ours.model_speedup:.2g}x model"
    assert sum(label in t for t in texts) == 1, (label, texts)
    points = [ln for ln in ax.lines if len(ln.get_xdata()) == 1 and ln.get_marker() in ("o", "s")]
    assert len(points) >= 2 * len(a2a)  # measured + model per row (plus break-even dots)
