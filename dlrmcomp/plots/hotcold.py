"""Figures of hot/cold training (notebook 06): hot fraction per budget, baseline vs FAE vs
Slipstream, the skipped fraction against D, payload ratios of hot and cold batches."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..hotcold import parse_bytes
from ..hotcold.slipstream import TOLERANCE

MODE_COLORS = {"all": "C0", "host": "C7", "fae": "C1", "slipstream": "C2"}


def hot_fraction(budgets: pd.DataFrame) -> plt.Figure:
    """Hot fraction of the inputs vs the hot-memory budget (log), per data set: the seeds' 5%
    profile (solid) and every input counted (dashed)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (name, g) in enumerate(budgets.groupby("data", sort=False)):
        mib = g["budget"].map(parse_bytes) / 2 ** 20
        ax.plot(mib, g["hot_fraction"], "o-", color=f"C{i}", label=f"{name} (5% counted)")
        ax.plot(mib, g["hot_fraction_all_counted"], "s--", color=f"C{i}", alpha=0.6, label=f"{name} (all counted)")
    ax.set(xscale="log", xlabel="hot-table budget (MiB)", ylabel="hot fraction of the inputs", ylim=(0, 1.02))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def compare(table: pd.DataFrame, title: str = "", clock: str = "epoch_cpu_s") -> plt.Figure:
    """Time per epoch (column ``clock``) and test AUC per mode (baseline, host, FAE, Slipstream)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    colors = [MODE_COLORS.get(m, "C5") for m in table["mode"]]
    left.bar(table["mode"], table[clock], color=colors)
    left.set(ylabel=f"seconds per epoch ({clock})", title=title)
    right.bar(table["mode"], table["test_auc"], color=colors)
    low = table["test_auc"].min()
    right.set(ylabel="test AUC", ylim=(low - 0.01, table["test_auc"].max() + 0.005))
    right.axhspan(table["test_auc"].iloc[0] - 0.002, table["test_auc"].iloc[0] + 0.002, color="C0", alpha=0.15,
                  label="baseline +- 0.002")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def drop_sweep(sweep: pd.DataFrame) -> plt.Figure:
    """Skipped fraction of the remaining hot inputs vs the target D, with the search's +-0.08 band."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    d = sweep["target_drop"]
    ax.fill_between(d, d - TOLERANCE, d + TOLERANCE, color="C7", alpha=0.2, label="D +- 0.08")
    ax.plot(d, sweep["sample_drop"], "o-", label="the sample's (search)")
    ax.plot(d, sweep["skipped_fraction"], "s--", label="all remaining hot inputs")
    ax.set(xlabel="target drop D", ylabel="droppable fraction", xlim=(0, 1), ylim=(0, 1))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def payload(ratios: pd.DataFrame) -> plt.Figure:
    """Compression ratio of the pooled payload, hot vs cold batches: the codec and index dedup."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    x = range(len(ratios))
    ax.bar([i - 0.2 for i in x], ratios["ratio"], width=0.4, label=ratios["codec"].iloc[0])
    ax.bar([i + 0.2 for i in x], ratios["index_dedup_ratio"], width=0.4, label="index-aware dedup (rows)")
    ax.set_xticks(list(x), ratios["batch"])
    ax.set(ylabel="ratio vs fp32")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
