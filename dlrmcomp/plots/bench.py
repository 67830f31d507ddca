"""Figures of the compression benchmark and the speed-up model (notebooks 02 and 03)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..bench import benchmark
from ..bench import speedup as sp
from . import widgets

BANDWIDTHS = np.logspace(-1, np.log10(400), 200)  # GB/s


def ratio_vs_bound(df: pd.DataFrame) -> plt.Figure:
    """Ratio vs fp32 (harmonic mean over tables and snapshots) vs relative bound, per lossy codec."""
    lossy = df[df.eb.notna()]
    summary = benchmark.table_summary(benchmark.table_summary(lossy, ("codec", "eb", "table")), ("codec", "eb"))
    fig, ax = plt.subplots(figsize=(6, 4))
    for codec, g in summary.groupby("codec", sort=False):
        ax.plot(g.eb, g.ratio, marker="o", ls="--" if codec == benchmark.ENTROPY else "-", label=codec)
    ax.set(xscale="log", yscale="log", xlabel="relative error bound", ylabel="ratio vs fp32",
           title="ratio vs bound (harmonic mean over tables)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def throughput_bars(summary: pd.DataFrame) -> plt.Figure:
    """Compress / decompress GB/s per codec (rows of :func:`benchmark.codec_summary`)."""
    s = summary[summary.codec != benchmark.ENTROPY]
    x = np.arange(len(s))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(s)), 4))
    ax.bar(x - 0.2, s.compress_gbps, 0.4, label="compress")
    ax.bar(x + 0.2, s.decompress_gbps, 0.4, label="decompress")
    ax.set_xticks(x, s.codec, rotation=40, ha="right")
    ax.set(yscale="log", ylabel="GB/s of fp32 input", title="throughput (harmonic mean over tables)")
    ax.legend()
    return fig


def ratio_heatmap(df: pd.DataFrame, codec: str) -> plt.Figure:
    """Ratio vs fp32 of one codec per table (rows) and snapshot (columns), first bound."""
    part = df[df.codec == codec]
    part = part[part.eb == part.eb.iloc[0]] if part.eb.notna().any() else part
    grid = part.pivot_table(index="table", columns="snapshot", values="ratio")
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * grid.shape[1], 1 + 0.3 * grid.shape[0]))
    im = ax.imshow(grid.values, aspect="auto", cmap="viridis")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set(xlabel="snapshot", ylabel="table", title=f"{codec}: ratio per table and snapshot")
    fig.colorbar(im, ax=ax, label="ratio vs fp32")
    return fig


def speedup_vs_bandwidth(rates: pd.DataFrame, pipelined: bool = False, bandwidths=BANDWIDTHS,
                         marker: float | None = None) -> plt.Figure:
    """Speed-up vs bandwidth per codec (rates: codec, cr, tc, td), break-even bandwidths marked."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in rates.itertuples():
        line, = ax.plot(bandwidths, sp.speedup(r.cr, r.tc, r.td, bandwidths, pipelined), label=r.codec)
        b = sp.break_even(r.cr, r.tc, r.td, pipelined)
        if bandwidths[0] <= b <= bandwidths[-1]:
            ax.plot([b], [1.0], "o", color=line.get_color())
    ax.axhline(1.0, color="k", lw=0.8)
    if marker is not None:
        ax.axvline(marker, color="grey", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="network bandwidth (GB/s)", ylabel="speed-up of the transfer",
           title=f"{'pipelined' if pipelined else 'sequential'} model; dots: break-even")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def end_to_end_bars(rates: pd.DataFrame, bandwidth: float, share: float, pipelined: bool = False) -> plt.Figure:
    """Transfer and end-to-end (Amdahl) speed-up per codec at one bandwidth and all-to-all share."""
    s = sp.speedup(rates.cr, rates.tc, rates.td, bandwidth, pipelined)
    x = np.arange(len(rates))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rates)), 4))
    ax.bar(x - 0.2, s, 0.4, label="transfer")
    ax.bar(x + 0.2, sp.end_to_end(s, share), 0.4, label=f"iteration (all-to-all share {share:.0%})")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, rates.codec, rotation=40, ha="right")
    ax.set(ylabel="speed-up", title=f"at {bandwidth:g} GB/s")
    ax.legend(fontsize=8)
    return fig


def accuracy_curves(curves: dict[str, pd.DataFrame]) -> plt.Figure:
    """Test accuracy (%) vs iteration per run (frames with ``iteration`` and ``accuracy`` in [0, 1])."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, df in curves.items():
        ax.plot(df.iteration, 100 * df.accuracy, marker=".", label=name)
    ax.set(xlabel="iteration", ylabel="test accuracy (%)", title="accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def speedup_explorer(rates: pd.DataFrame, bandwidth: float, share: float, pipelined: bool = False) -> plt.Figure:
    """The end-to-end bars at ``bandwidth``/``share`` (static, kept by papermill) and, in a live
    Jupyter kernel, sliders for bandwidth, share and pipelining. Returns the static figure.
    """
    fig = end_to_end_bars(rates, bandwidth, share, pipelined)
    widgets.interactive(
        lambda bandwidth, share, pipelined: (end_to_end_bars(rates, bandwidth, share, pipelined), plt.show()),
        bandwidth=lambda w: w.FloatLogSlider(value=bandwidth, base=10, min=-1, max=np.log10(400), step=0.05,
                                             description="GB/s", continuous_update=False),
        share=lambda w: w.FloatSlider(value=share, min=0.0, max=1.0, step=0.05, description="a2a share",
                                      continuous_update=False),
        pipelined=lambda w: w.Checkbox(value=pipelined, description="pipelined"))
    return fig
