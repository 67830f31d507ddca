"""The speed-up model: the seed's formula, the pipelined bound, break-even, hybrid, Amdahl."""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlrmcomp.bench import speedup as sp

pos = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)
quant = st.one_of(st.just(math.inf), pos)


def seed_formula(cr, tc, td, bw):
    """comp_benchmark/speedup_calculation.py, verbatim."""
    return 1 / (1 / cr + bw * (1 / tc + 1 / td))


@settings(max_examples=300, deadline=None)
@given(cr=pos, tc=pos, td=pos, bw=pos)
def test_sequential_equals_the_seed_formula(cr, tc, td, bw):
    assert abs(sp.speedup(cr, tc, td, bw) - seed_formula(cr, tc, td, bw)) <= 1e-12 * seed_formula(cr, tc, td, bw)


@settings(max_examples=300, deadline=None)
@given(cr=pos, tc=pos, td=pos, bw=pos, tq=quant, tdq=quant)
def test_pipelined_is_never_slower_and_quantization_only_costs(cr, tc, td, bw, tq, tdq):
    seq = sp.speedup(cr, tc, td, bw, tq=tq, tdq=tdq)
    assert sp.speedup(cr, tc, td, bw, pipelined=True, tq=tq, tdq=tdq) >= seq
    assert seq <= sp.speedup(cr, tc, td, bw) * (1 + 1e-12)


def test_values_and_break_even():
    # the artifact's nvcomp ANS means at 5 GB/s
    assert sp.speedup(2.34, 130.7, 215.9, 5) == pytest.approx(2.045974, abs=1e-6)
    assert sp.speedup(10, 100, 100, 1, pipelined=True) == 10.0  # send-bound: 1/CR
    assert sp.speedup(10, 100, 100, 50, pipelined=True) == 2.0  # encode/decode-bound: T/B
    b = sp.break_even(4.0, 10.0, 30.0)
    assert sp.speedup(4.0, 10.0, 30.0, b) == pytest.approx(1.0, rel=1e-12)
    assert b == pytest.approx(0.75 / (1 / 10 + 1 / 30))
    assert sp.break_even(4.0, 10.0, 30.0, pipelined=True) == 10.0
    assert sp.break_even(0.9, 10.0, 30.0) == 0.0
    quant_cost = sp.speedup(4.0, 10.0, 30.0, 1.0, tq=20.0, tdq=20.0)
    assert quant_cost == pytest.approx(1 / (0.25 + 1 / 10 + 1 / 30 + 2 / 20))


def test_arrays_broadcast():
    s = sp.speedup(np.array([2.0, 4.0]), 10.0, 10.0, np.array([[1.0], [2.0]]))
    assert s.shape == (2, 2) and s[1, 1] == pytest.approx(1 / (0.25 + 0.4))


def test_hybrid_picks_the_faster_codec_per_table_and_amdahl():
    results = pd.DataFrame({"codec": ["lz", "lz", "huff", "huff"], "table": [0, 1, 0, 1],
                            "cr": [40.0, 1.5, 8.0, 8.0], "tc": [45.0, 45.0, 60.0, 60.0], "td": [290.0, 290.0, 40.0, 40.0]})
    best = sp.hybrid(sp.per_table(results, 4.0))
    assert list(best.codec) == ["lz", "huff"]
    s = list(best.speedup)
    assert s[0] == pytest.approx(seed_formula(40, 45, 290, 4)) and s[1] == pytest.approx(seed_formula(8, 60, 40, 4))
    assert sp.overall(s) == pytest.approx(2 / (1 / s[0] + 1 / s[1]))
    assert sp.end_to_end(4.0, 0.5) == pytest.approx(1.6)
    assert sp.end_to_end(4.0, 0.0) == 1.0
    assert sp.comm_share(1e9, 10.0, 0.2) == pytest.approx(0.5)


def test_load_seed_lines(tmp_path):
    path = tmp_path / "ans_comp.txt"
    path.write_text("2.340000 130.700000 215.900000\n2.050000 120.000000 200.000000\n")
    df = sp.load_results(path)
    assert list(df.columns) == ["codec", "table", "cr", "tc", "td"]
    assert list(df.codec) == ["ans_comp"] * 2 and df.cr.tolist() == [2.34, 2.05]


def test_select_one_bound_of_a_sweep():
    swept = pd.DataFrame({"codec": ["quant+ans@0.01", "quant+ans@0.03", "zstd", "sz3@0.03", "quant+lz4@0.03"],
                          "table": [0] * 5, "cr": [5.0, 9.0, 2.0, 8.0, 7.0], "tc": [1.0] * 5, "td": [1.0] * 5})
    picked = sp.select(swept, ["quant+ans", "zstd", "sz3"], 0.03)
    assert list(picked.codec) == ["quant+ans", "zstd", "sz3"] and list(picked.cr) == [9.0, 2.0, 8.0]
    assert list(sp.select(swept, None, 0.01).codec) == ["quant+ans", "zstd"]
    assert list(sp.select(swept).codec) == list(swept.codec)  # no bound: names kept as they are
    with pytest.raises(ValueError, match="no rates"):
        sp.select(swept, ["huffman"], 0.03)


def test_a_swept_bench_csv_gives_one_line_per_codec(tmp_path):
    """Notebook 02's CSV (3 bounds x 6 codecs) feeds notebook 03: picked at one bound, 6 lines, not 18."""
    codecs = ["quant+ans", "quant+zstd", "quant+lz4", "quant+huffman", "quant+dedup+ans", "sz3"]
    rows = [{"codec": c, "table": t, "snapshot": k, "eb": eb, "ratio": 10.0 * eb / 0.03, "compress_gbps": 1.0,
             "decompress_gbps": 2.0} for c in codecs for eb in (0.01, 0.03, 0.1) for t in range(2) for k in range(2)]
    rows += [{"codec": "zstd", "table": t, "snapshot": k, "eb": np.nan, "ratio": 1.5, "compress_gbps": 1.0,
              "decompress_gbps": 2.0} for t in range(2) for k in range(2)]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    rates = sp.load_results(tmp_path / "results.csv")
    assert len(set(rates.codec)) == 19
    per_codec = sp.codec_rates(sp.select(rates, codecs + ["zstd"], 0.03))
    assert list(per_codec.codec) == codecs + ["zstd"] and per_codec.cr.tolist() == pytest.approx([10.0] * 6 + [1.5])
