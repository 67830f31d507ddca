"""Notebook 06 headless at the smoke size: hot fraction per budget, baseline vs FAE vs Slipstream,
skipped fraction vs D and the payload of hot and cold batches, recorded."""
from common import execute_notebook


def test_hot_cold_notebook_records_its_three_parts(tmp_path):
    results = execute_notebook("06_hot_cold_training", tmp_path)
    fractions = [r["hot_fraction_all_counted"] for r in results["budgets"]]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1  # a bigger budget never makes fewer hot
    table = {r["mode"]: r for r in results["compare"]}
    assert set(table) == {"all", "fae", "slipstream"}
    assert table["slipstream"]["iterations"] < table["fae"]["iterations"]  # skipped inputs take no steps
    slip = results["hotcold"]["slipstream"]
    assert slip["skipped_inputs"] > 0 and len(slip["T"]) == 1 and slip["lambda"] >= 1
    assert all(abs(r["test_auc"] - table["all"]["test_auc"]) < 0.05 for r in table.values())
    sweep = results["drop_sweep"]
    assert [r["skipped_fraction"] for r in sweep] == sorted(r["skipped_fraction"] for r in sweep)
    assert {r["batch"] for r in results["payload"]} == {"hot", "cold"}
    assert all(r["ratio"] > 1 for r in results["payload"])
    for name in ("hot_fraction", "compare", "drop_sweep", "payload"):
        assert (tmp_path / "06_hot_cold_training" / f"{name}.png").stat().st_size > 10_000
