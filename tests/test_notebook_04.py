"""Notebook 04 headless at the smoke size: DCT+Chop rate-distortion, throughput and training, recorded."""
import pytest

from common import execute_notebook


def test_dct_chop_notebook_records_its_three_parts(tmp_path):
    results = execute_notebook("04_dct_chop", tmp_path)
    assert results["violations"] == 0  # every bounded series (dct+quant, sz3, quant+ans) met its bound
    assert results["forms_max_abs_diff"]["coefficients"] < 1e-2 and results["forms_max_abs_diff"]["values"] < 1e-2
    rd = results["rate_distortion"]
    dct = {(r["data"], r["param"]): r for r in rd if r["series"] == "dct"}
    for data in {d for d, _ in dct}:
        ratios = [dct[(data, cf)]["ratio"] for cf in (1, 2, 4, 7)]
        psnrs = [dct[(data, cf)]["psnr"] for cf in (1, 2, 4, 7)]
        assert ratios == sorted(ratios, reverse=True) and psnrs == sorted(psnrs)  # more kept: less ratio, more PSNR
        per_value = 8 if dct[(data, 4)]["dtype"] == "float64" else 4
        assert dct[(data, 4)]["ratio"] == pytest.approx(per_value, rel=0.05)  # 64/cf^2 x bytes in / 4-byte coefficients
    fold = {(r["data"], r["param"]): r["ratio"] for r in rd if r["series"] == "dct fold"}
    assert all(fold[k] > dct[k]["ratio"] for k in fold if k[1] > 1)  # the fold keeps cf(cf+1)/2 of cf^2
    assert {r["series"] for r in rd} >= {"dct", "dct fold", "dct bf16", "dct+quant", "quant+ans"}
    methods = {(r["method"], r["dtype"]) for r in results["throughput"]}
    assert {("DctChop grown", "float32"), ("DctChop blockwise", "bfloat16")} <= methods
    assert all(r["compress_gbps"] > 0 for r in results["throughput"] if r["method"].startswith("DctChop"))
    train = results["training"]
    assert [r["cf"] for r in train if r["task"] == "denoise"] == [None, 2, 4, 6]
    digits = [r for r in train if r["task"] == "digits"]
    assert len(digits) == 4 and digits[0]["test_accuracy"] > 0.5  # sklearn ships the digits
    assert [r["ratio"] for r in digits] == pytest.approx([1, 32, 8, 64 * 2 / 36])  # fp32 in, bf16 coefficients out
    for name in ("rate_distortion", "field", "throughput", "training"):
        assert (tmp_path / "04_dct_chop" / f"{name}.png").stat().st_size > 10_000
