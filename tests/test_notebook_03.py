"""Notebook 03 headless: speed-ups from a bench CSV, recorded and consistent with the model."""
import pandas as pd
import pytest

from common import execute_notebook
from dlrmcomp.bench import speedup as sp


def test_speedup_model_from_a_results_csv(tmp_path):
    csv = tmp_path / "rates.csv"
    pd.DataFrame({"table": [0, 1], "cr": [40.0, 1.5], "tc": [45.0, 45.0], "td": [290.0, 290.0]}).to_csv(csv, index=False)
    results = execute_notebook("03_speedup_model", tmp_path, RESULTS_CSV=str(csv), BANDWIDTH=4.0, SHARE=0.5)
    assert results["pipelined_never_slower"] is True
    s = results["speedup"]["rates"]
    assert s == pytest.approx(2 / (1 / sp.speedup(40, 45, 290, 4) + 1 / sp.speedup(1.5, 45, 290, 4)))
    assert results["end_to_end"]["rates"] == pytest.approx(1 / (0.5 + 0.5 / s))
    be = results["break_even"]["rates"]
    assert be["pipelined"] > be["sequential"] > 0
    for name in ("speedup_sequential", "speedup_pipelined", "end_to_end"):
        assert (tmp_path / "03_speedup_model" / f"{name}.png").stat().st_size > 10_000


def test_speedup_model_on_the_payload(tmp_path):
    results = execute_notebook("03_speedup_model", tmp_path, CODECS=["quant+ans", "quant+zstd"], BANDWIDTH=0.1)
    s = results["speedup"]
    assert s["hybrid"] >= max(s["quant+ans"], s["quant+zstd"])
    assert set(results["hybrid_choice"].values()) <= {"quant+ans", "quant+zstd"}
    assert results["rates"][1]["cr"] > results["rates"][0]["cr"] > 5  # zstd beats ans on repeated rows
