"""Notebook 00 executed headless with small parameters; assertions on what it recorded."""
from common import execute_notebook


def test_codec_tour_records_bound_safe_results(tmp_path):
    results = execute_notebook("00_codecs_tour", tmp_path, BOUNDS=[0.01, 0.1],
                               CODECS=["quant+ans", "quant+zstd", "sz3", "zstd"])
    rows = results["rows"]
    assert results["violations"] == 0
    assert {r["codec"] for r in rows} == {"quant+ans", "quant+zstd", "sz3", "zstd"}
    assert {r["data"] for r in rows} == {"field", "embeddings"}
    by = {(r["data"], r["codec"], r["eb"]): r for r in rows}
    for data in ("field", "embeddings"):
        assert by[(data, "zstd", None)]["max_abs_err"] == 0
        # a looser bound never compresses worse, and lossy beats lossless by far at 10%
        assert by[(data, "quant+ans", 0.1)]["ratio"] > by[(data, "quant+ans", 0.01)]["ratio"] > by[(data, "zstd", None)]["ratio"]
    for name in ("ratio_vs_bound", "error_histograms", "field"):
        assert (tmp_path / "00_codecs_tour" / f"{name}.png").stat().st_size > 10_000
