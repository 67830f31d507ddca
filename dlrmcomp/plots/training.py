"""Figures of training runs: metric curves, per-table ratio heatmap."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def metric_curves(logs: dict[str, pd.DataFrame], metrics=("auc", "accuracy", "logloss")) -> plt.Figure:
    """One panel per test metric (plus train loss), one line per run; ``logs`` from ``read_jsonl``."""
    fig, axes = plt.subplots(1, len(metrics) + 1, figsize=(4.2 * (len(metrics) + 1), 3.4))
    for name, log in logs.items():
        tr, ev = log[log.kind == "train"], log[log.kind == "eval"]
        axes[0].plot(tr.iteration, tr.loss, label=name, lw=1)
        for ax, m in zip(axes[1:], metrics):
            ax.plot(ev.iteration, ev[m], marker="o", ms=3, label=name)
    axes[0].set(title="train loss", xlabel="iteration")
    for ax, m in zip(axes[1:], metrics):
        ax.set(title=f"test {m}", xlabel="iteration")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def ratio_heatmap(log: pd.DataFrame, title: str = "compression ratio per table") -> plt.Figure:
    """Tables x logged iterations, colour = ratio over fp32 (log scale)."""
    tr = log[log.kind == "train"]
    ratios = np.array([[np.nan if r is None else r for r in row] for row in tr.ratio], dtype=float).T
    fig, ax = plt.subplots(figsize=(9, 4.5))
    im = ax.imshow(np.log2(ratios), aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=(tr.iteration.min(), tr.iteration.max(), ratios.shape[0] - 0.5, -0.5))
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label("log2 ratio vs fp32")
    ax.set(xlabel="iteration", ylabel="table", title=title)
    fig.tight_layout()
    return fig
