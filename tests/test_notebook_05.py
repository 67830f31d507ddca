"""Notebook 05 headless at the smoke size: TT tables exact, their speed, memory and quality recorded."""
from common import execute_notebook


def test_tt_notebook_records_exactness_speed_memory_and_quality(tmp_path):
    results = execute_notebook("05_tt_embeddings", tmp_path)
    for name, diff in results["exactness"].items():
        assert diff["pooled"] < 1e-12 and diff["grad"] < 1e-10, name
    speed = results["speed"]
    assert {r["method"] for r in speed} == {"dense", "naive", "ecorec"}
    assert {r["order"] for r in speed} == {"hashed", "frequency"}
    assert all(r["ms"] > 0 for r in speed)
    memory = {(r["batch"], r["variant"]): r["peak_gb"] for r in results["memory"]}
    for batch in {b for b, _ in memory}:
        assert memory[(batch, "ecorec, one chunk")] <= memory[(batch, "naive")]  # one chain a unique index, not a lookup
    quality = results["quality"]
    assert [r["embedding"] for r in quality if r["data"].startswith("synthetic")] == ["dense", "tt", "tt"]
    assert all(0 < r["auc"] < 1 for r in quality)
    assert all(r["ratio"] > 1 for r in quality if r["embedding"] == "tt")
    assert results["compression"][0]["ratio"] > 1000  # rank 8 at the full Kaggle cardinalities
    for name in ("speed", "memory", "quality"):
        assert (tmp_path / "05_tt_embeddings" / f"{name}.png").stat().st_size > 10_000
