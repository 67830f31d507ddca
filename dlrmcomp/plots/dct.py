"""Figures of DCT+Chop (notebook 04): rate-distortion against the peers, throughput, training."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

#: the PSNR axis stops here (dB)
MAX_PSNR = 120
#: one style per series, so every panel reads the same
STYLE = {"dct": ("C0", "o", "-"), "dct fold": ("C0", "^", "--"), "dct bf16": ("C0", "s", ":"),
         "dct+quant": ("C3", "D", "-"), "zfp fixed-rate": ("C2", "v", "-"), "sz3": ("C1", "P", "-"),
         "quant+ans": ("C4", "X", "-")}


def rate_distortion(rd: pd.DataFrame, columns: int = 3) -> plt.Figure:
    """One panel per data set: ratio (log) vs PSNR, one line per series; read across at equal PSNR."""
    names = list(dict.fromkeys(rd["data"]))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, min(columns, len(names)), figsize=(4.6 * min(columns, len(names)), 3.6 * rows),
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        part = rd[rd["data"] == name]
        for series, g in part.groupby("series", sort=False):
            g = g[g["psnr"].map(math.isfinite)].sort_values("psnr")
            color, marker, line = STYLE.get(series, (None, "o", "-"))
            ax.plot(g["psnr"], g["ratio"], color=color, marker=marker, ls=line, ms=4, label=series)
        top = part["psnr"][part["psnr"].map(math.isfinite)].max()
        ax.set(yscale="log", xlabel="PSNR (dB)", ylabel="ratio vs input", title=name,
               xlim=(None, min(top + 5, MAX_PSNR)))  # ZFP's high rates reach far past what the others span
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def throughput_bars(tp: pd.DataFrame) -> plt.Figure:
    """Compress and decompress GB/s (log) per method, one group per (dtype, side)."""
    tp = tp.dropna(subset=["compress_gbps"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    for ax, col in zip(axes, ("compress_gbps", "decompress_gbps")):
        wide = tp.pivot_table(index=["dtype", "side"], columns="method", values=col)
        wide.plot.bar(ax=ax, logy=True, rot=0, width=0.8)
        ax.set(title=col.replace("_gbps", " GB/s (over input bytes)"), xlabel="(dtype, side)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def training(results: pd.DataFrame) -> plt.Figure:
    """Per task, the test metric uncompressed and at each cf (the ratio over fp32 on each bar)."""
    metrics = {"denoise": "test_psnr", "digits": "test_accuracy"}
    tasks = [t for t in metrics if t in set(results["task"])]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5 * max(1, len(tasks)), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = results[results["task"] == task]
        labels = ["raw" if pd.isna(cf) else f"cf {int(cf)}" for cf in part["cf"]]
        bars = ax.bar(labels, part[metrics[task]], color=["C7"] + ["C0"] * (len(part) - 1))
        for bar, ratio in zip(bars, part["ratio"]):
            ax.annotate(f"{ratio:.1f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                        va="bottom", fontsize=8)
        low = part[metrics[task]].min()
        ax.set(title=f"{task}: {metrics[task]}", ylim=(0.9 * low if low > 0 else low, None))
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
