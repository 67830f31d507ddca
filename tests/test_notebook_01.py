"""Notebook 01 executed headless (smoke profile); assertions on what it recorded."""
from common import execute_notebook

from dlrmcomp.data import read_manifest


def test_training_notebook_records_three_runs(tmp_path):
    results = execute_notebook("01_train_adaptive_compression", tmp_path, CODEC="quant+zstd")
    runs = {r["run"]: r for r in results["runs"]}
    assert set(runs) == {"baseline", "fixed", "adaptive"}
    assert runs["baseline"]["mean_ratio"] is None and runs["baseline"]["delta_auc"] == 0
    for name in ("fixed", "adaptive"):
        assert runs[name]["mean_ratio"] > 4 and runs[name]["MB_saved"] > 0
        assert abs(runs[name]["delta_auc"]) < 0.05
    assert 0.7 < results["bayes_auc"] < 1
    assert results["n_dumps"] == len(read_manifest(results["dump_dir"])["snapshots"]) > 0
    for name in ("curves", "ratio_heatmap"):
        assert (tmp_path / "01_train_adaptive_compression" / f"{name}.png").stat().st_size > 10_000
