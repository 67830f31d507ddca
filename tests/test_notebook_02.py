"""Notebook 02 headless: on the generated payload and on an EMB dump folder."""
import pandas as pd

from common import execute_notebook
from dlrmcomp.bench import payload
from dlrmcomp.data.dumps import DumpWriter


def test_benchmark_on_the_payload(tmp_path):
    results = execute_notebook("02_compression_benchmark", tmp_path, BOUNDS=[0.01, 0.1],
                               CODECS=["quant+ans", "quant+zstd", "quant+dedup+ans", "zstd"])
    assert results["violations"] == 0 and results["source"] == "payload"
    ratio = {(r["codec"], r["eb"]): r["ratio"] for r in results["summary"]}
    for eb in (0.01, 0.1):
        assert ratio[("entropy0", eb)] >= ratio[("quant+ans", eb)] >= 0.9 * ratio[("entropy0", eb)]
    assert ratio[("quant+ans", 0.1)] > 2 * ratio[("quant+ans", 0.01)] > 2 * ratio[("zstd", None)]
    assert 1.0 <= results["checks"]["ans_over_entropy_max"] < 1.1  # smoke arrays are small: headers weigh
    csv = pd.read_csv(results["csv"])
    assert len(csv) == 4 * 2 * (2 * 4 + 1)  # tables x snapshots x ((entropy0 + 3 lossy) x 2 bounds + zstd)
    for name in ("ratio_vs_bound", "throughput", "ratio_heatmap"):
        assert (tmp_path / "02_compression_benchmark" / f"{name}.png").stat().st_size > 10_000


def test_benchmark_on_dumps(tmp_path):
    dumps = tmp_path / "dumps"
    w = DumpWriter(dumps, [1000, 50, 300], dim=32, batch=8192)
    for k in range(2):
        w.write(k, k, payload.embedding_payload(8192, 32, 3, seed=k, cardinalities=(1000, 50, 300)), [0.03] * 3)
    results = execute_notebook("02_compression_benchmark", tmp_path, DUMPS_DIR=str(dumps), BOUNDS=[0.03],
                               CODECS=["quant+ans", "quant+zstd", "quant+dedup+ans"])
    assert results["source"] == str(dumps)
    assert {r["table"] for r in results["per_table"]} == {0, 1, 2}
    assert results["checks"]["ans_over_entropy_max"] <= 1.02
    assert results["checks"]["dedup_over_zstd"] >= 1.0
