"""Figures of TT embedding tables (notebook 05): lookup speed, peak memory, AUC against compression."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

#: one colour per lookup method, so every panel reads the same
COLORS = {"dense": "C7", "naive": "C3", "ecorec": "C0"}


def speed(df: pd.DataFrame) -> plt.Figure:
    """Forward + backward ms per config, one bar per method (log scale), a panel per index order."""
    orders = list(dict.fromkeys(df["order"]))
    fig, axes = plt.subplots(1, len(orders), figsize=(6.5 * len(orders), 3.8), squeeze=False)
    for ax, order in zip(axes.flat, orders):
        part = df[df["order"] == order]
        wide = part.pivot_table(index=["batch", "rows", "dim", "rank"], columns="method", values="ms", sort=False)
        wide.index = [f"B {b:,}\nN {n:.0e}, D {d}, r {r}" for b, n, d, r in wide.index]
        wide = wide[[m for m in COLORS if m in wide]]
        wide.plot.bar(ax=ax, color=[COLORS[m] for m in wide], logy=True, rot=0, width=0.8)
        ax.set(ylabel="forward + backward (ms)", title=f"Zipf lookups, {order} row order")
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def memory(df: pd.DataFrame) -> plt.Figure:
    """Peak memory (GB) over the batch, one line per variant; the cores' size dashed."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for variant, g in df.groupby("variant", sort=False):
        ax.plot(g["batch"], g["peak_gb"], marker="o", label=variant)
    ax.axhline(df["core_gb"].iloc[0], color="k", ls="--", lw=1, label="the cores")
    how = df["how"].iloc[0]
    ax.set(xlabel="batch (one lookup a sample)", ylabel=f"peak memory (GB, {how})",
           title=f"N = {df['rows'].iloc[0]:.0e}, D = {df['dim'].iloc[0]}, ranks {df['ranks'].iloc[0]}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def quality(df: pd.DataFrame) -> plt.Figure:
    """Test AUC against the embedding compression ratio (log), a line per data set; dense at 1x."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for data, g in df.groupby("data", sort=False):
        g = g.sort_values("ratio")
        line, = ax.plot(g["ratio"], g["auc"], marker="o", label=data)
        for _, r in g.iterrows():
            ax.annotate("dense" if r["embedding"] == "dense" else f"r{int(r['rank'])}", (r["ratio"], r["auc"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points", color=line.get_color())
    ax.set(xscale="log", xlabel="embedding parameters, dense / TT", ylabel="test AUC", title="TT tables vs dense")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
