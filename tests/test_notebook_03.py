"""Notebook 03 headless: the measured GPU figure from the committed CSV/JSON, and CPU speed-ups
from a bench CSV or a quick benchmark; assertions on what it recorded."""
import json

import pandas as pd
import pytest

from common import execute_notebook
from dlrmcomp.bench import measured
from dlrmcomp.bench import speedup as sp


def test_speedup_model_from_measured_gpu_runs_and_a_results_csv(tmp_path):
    csv = tmp_path / "rates.csv"
    pd.DataFrame({"table": [0, 1], "cr": [40.0, 1.5], "tc": [45.0, 45.0], "td": [290.0, 290.0]}).to_csv(csv, index=False)
    results = execute_notebook("03_speedup_model", tmp_path, RESULTS_CSV=str(csv), CODECS=None, BANDWIDTH=4.0,
                               SHARE=0.5)
    # GPU: the committed H200 measurements, the codecs that matter, one line each
    gpu = results["gpu"]
    assert (gpu["device"], gpu["date"], gpu["payload"]) == ("NVIDIA H200", "2026-12-01", "design")
    assert gpu["codecs"] == list(measured.DEFAULT_KEYS) and 4 <= len(gpu["codecs"]) <= 6
    assert [r["key"] for r in gpu["rates"]] == gpu["codecs"]
    assert {r["key"]: r["name"] for r in gpu["rates"]}["ours-wire"] == "ours wire quant+ans L128 C64K S1 end-to-end"
    for r in gpu["rates"]:
        assert gpu["speedup"][r["key"]] == pytest.approx(sp.speedup(r["cr"], r["tc"], r["td"], 4.0))
        assert gpu["end_to_end"][r["key"]] == pytest.approx(sp.end_to_end(gpu["speedup"][r["key"]], 0.5))
    assert set(gpu["at_links"]["ours-wire"]) == set(measured.LINKS)
    assert gpu["at_links"]["ours-wire"]["25 GbE"] > 1 > gpu["at_links"]["ours-wire"]["NVLink 4"]
    assert gpu["break_even"]["ours-frames-host"] < 3.125 < gpu["break_even"]["ours-wire"]  # the host path loses at 25 GbE
    # measured all-to-alls on top: ours at 128 MB per rank over gloo (2 ranks sharing one H200)
    rows = {(r["backend"], r["codec"], r["size_mb"]): r for r in results["alltoall"]}
    ours = rows[("gloo", "gpu:quant+ans", 128.0)]
    committed = json.loads(measured.ALLTOALL_JSON[0].read_text())["results"]
    assert ours["measured_speedup"] == next(r["measured_speedup"] for r in committed
                                            if (r["codec"], r["size_mb"]) == ("gpu:quant+ans", 128.0))
    assert ours["measured_speedup"] > rows[("gloo", "int8", 128.0)]["measured_speedup"] > 1
    assert ours["model_speedup"] == pytest.approx(ours["model_check"], rel=1e-9)
    assert abs(ours["model_speedup"] / ours["measured_speedup"] - 1) <= 0.2
    assert all(abs(r["model_error"]) <= 0.2 for k, r in rows.items() if k[0] == "gloo" and k[2] >= 128)
    assert {r["backend"] for r in results["alltoall"]} == {"gloo", "nccl"}
    # CPU panel from the results CSV
    assert results["pipelined_never_slower"] is True
    s = results["speedup"]["rates"]
    assert s == pytest.approx(2 / (1 / sp.speedup(40, 45, 290, 4) + 1 / sp.speedup(1.5, 45, 290, 4)))
    assert results["end_to_end"]["rates"] == pytest.approx(1 / (0.5 + 0.5 / s))
    be = results["break_even"]["rates"]
    assert be["pipelined"] > be["sequential"] > 0
    for name in ("speedup_gpu", "speedup_cpu", "end_to_end"):
        assert (tmp_path / "03_speedup_model" / f"{name}.png").stat().st_size > 10_000


def test_speedup_model_on_the_payload(tmp_path):
    results = execute_notebook("03_speedup_model", tmp_path, CODECS=["quant+ans", "quant+zstd"], BANDWIDTH=0.1,
                               GPU_PAYLOAD="other", GPU_CODECS=["ours-wire", "nvcomp-ans", "nvcomp-lz4", "nvcomp-zstd"])
    s = results["speedup"]
    assert s["hybrid"] >= max(s["quant+ans"], s["quant+zstd"])
    assert set(results["hybrid_choice"].values()) <= {"quant+ans", "quant+zstd"}
    assert results["rates"][1]["cr"] > results["rates"][0]["cr"] > 5  # zstd beats ans on repeated rows
    assert results["gpu"]["payload"] == "other" and [r["key"] for r in results["gpu"]["rates"]] == [
        "ours-wire", "nvcomp-ans", "nvcomp-lz4", "nvcomp-zstd"]
