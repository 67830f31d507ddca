"""Baseline vs one fixed bound vs adaptive (table-wise + iteration-wise) bounds, same seed and data."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import profile_config
from .logs import read_jsonl
from .loop import make_data, train


def variants(codec: str, fixed_eb: float, iters: int) -> dict[str, dict]:
    """The three runs; the adaptive decay spans the first half of the run (the artifact's 65,536
    iterations are longer than a CPU demo)."""
    return {"baseline": dict(compression="none", dump_every=0),
            "fixed": dict(compression="codec", codec=codec, schedule=f"fixed:{fixed_eb}", dump_every=0),
            "adaptive": dict(compression="codec", codec=codec, schedule="auto", early_stage=max(1, iters // 2))}


def compare(profile: str, out_dir, codec: str = "quant+ans", fixed_eb: float = 0.03, seed: int = 0,
            progress: bool = True) -> tuple[dict[str, dict], dict[str, pd.DataFrame]]:
    """Train the three variants into ``out_dir/<name>``; (summaries, logs) by name.

    The adaptive run writes the EMB dumps (``out_dir/adaptive/dumps``).
    """
    base = profile_config(profile, seed=seed)
    data = make_data(base)  # one generator (and test set) for all runs
    summaries, logs = {}, {}
    for name, changes in variants(codec, fixed_eb, base.iters).items():
        run_dir = Path(out_dir) / name
        summaries[name] = train(base.replace(**changes), run_dir, progress=progress, data=data)
        logs[name] = read_jsonl(run_dir / "log.jsonl")
    return summaries, logs


def summary_table(summaries: dict[str, dict]) -> pd.DataFrame:
    """One row per run: AUC (and its change against the baseline), accuracy, logloss, ratio, bytes."""
    ref = summaries.get("baseline", next(iter(summaries.values())))["test_auc"]
    rows = []
    for name, s in summaries.items():
        raw, comp = s["bytes_raw"], s["bytes_compressed"]
        rows.append({"run": name, "test_auc": s["test_auc"], "delta_auc": s["test_auc"] - ref,
                     "test_accuracy": s["test_accuracy"], "test_logloss": s["test_logloss"],
                     "mean_ratio": s["mean_ratio"], "MB_raw": raw / 1e6, "MB_saved": (raw - comp) / 1e6 if comp else 0.0,
                     "seconds": s["seconds"]})
    return pd.DataFrame(rows).set_index("run")
