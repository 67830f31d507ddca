"""Figures of the compression benchmark and the speed-up model (notebooks 02 and 03)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..bench import benchmark
from ..bench import measured
from ..bench import speedup as sp
from . import widgets

BANDWIDTHS = np.logspace(-2, np.log10(450), 200)  # GB/s: CPU codecs pay only on slow links


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


def speedup_vs_bandwidth(rates: pd.DataFrame, pipelined: bool | None = False, bandwidths=BANDWIDTHS,
                         marker: float | None = None, title: str | None = None) -> plt.Figure:
    """Speed-up vs bandwidth per codec (rates: codec, cr, tc, td), break-even bandwidths marked.

    ``pipelined=None`` draws both models, sequential solid and pipelined dashed, one colour a codec.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    modes = (False, True) if pipelined is None else (pipelined,)
    for i, r in enumerate(rates.itertuples()):
        color = codec_color(i)
        for mode in modes:
            ax.plot(bandwidths, sp.speedup(r.cr, r.tc, r.td, bandwidths, mode), color=color, ls="--" if mode else "-",
                    label=r.codec if mode == modes[0] else None)
            b = sp.break_even(r.cr, r.tc, r.td, mode)
            if bandwidths[0] <= b <= bandwidths[-1]:
                ax.plot([b], [1.0], "o", color=color)
    ax.axhline(1.0, color="k", lw=0.8)
    if marker is not None:
        ax.axvline(marker, color="grey", ls=":", lw=1)
    model = {False: "sequential model", True: "pipelined model"}
    how = "solid: sequential, dashed: pipelined" if pipelined is None else model[pipelined]
    ax.set(xscale="log", yscale="log", xlabel="network bandwidth (GB/s)", ylabel="speed-up of the transfer",
           title=f"{title + chr(10) if title else ''}{how}; dots: break-even")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def codec_color(i: int) -> str:
    """The i-th of 20 distinct colours (tab10, then tab20's light shades)."""
    return plt.get_cmap("tab10")(i % 10) if i < 10 else plt.get_cmap("tab20")(2 * (i % 10) + 1)


#: bandwidths of the measured figure (GB/s): below Ethernet to past an on-device copy
MEASURED_BANDWIDTHS = np.logspace(np.log10(0.3), np.log10(3000), 300)
RUN_MARKERS = {"gloo": "o", "nccl": "s"}


def speedup_measured(rates: pd.DataFrame, alltoall: pd.DataFrame | None = None, links: dict = measured.LINKS,
                     bandwidths=MEASURED_BANDWIDTHS, title: str = "", marker: float | None = None,
                     annotate: tuple | None = None) -> plt.Figure:
    """Speed-up vs link bandwidth from measured throughputs, real links marked, measured
    all-to-all points on top.

    rates: :func:`dlrmcomp.bench.measured.key_rates` (codec = label, cr, tc, td, color, linestyle),
    one line each (the sequential model; dots where it crosses 1). alltoall:
    :func:`dlrmcomp.bench.measured.read_alltoall` rows: a filled marker at (bandwidth, measured S)
    and a hollow one at the model's S of the same run, joined; marker shape by run, colour by codec.
    ``annotate`` (backend, codec, MB per rank): write that all-to-all row's measured and model S.
    """
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(12, 5.8))
    fig.subplots_adjust(left=0.065, right=0.6, top=0.88, bottom=0.1)
    lines = []
    for r in rates.itertuples():
        line, = ax.plot(bandwidths, sp.speedup(r.cr, r.tc, r.td, bandwidths), lw=2, color=getattr(r, "color", None),
                        ls=getattr(r, "linestyle", "-"),
                        label=f"{r.codec}\n    CR {r.cr:.1f}, {r.tc:.3g} / {r.td:.3g} GB/s")
        lines.append(line)
        b = sp.break_even(r.cr, r.tc, r.td)
        if bandwidths[0] <= b <= bandwidths[-1]:
            ax.plot([b], [1.0], "o", ms=6, color=line.get_color(), mec="k", mew=0.6, zorder=4)
    ax.axhline(1.0, color="k", lw=1)
    for name, b in links.items():
        ax.axvline(b, color="0.55", ls=":", lw=1.2, zorder=0)
        ax.text(b * 1.05, 0.98, f"{name}, {measured.format_gbps(b)}", transform=ax.get_xaxis_transform(),
                rotation=90, va="top", ha="left", fontsize=8, color="0.3")
    if marker is not None:
        ax.axvline(marker, color="k", ls="--", lw=0.8, alpha=0.6)
    low, handles = 0.05, []
    if alltoall is not None and len(alltoall):
        for row in alltoall.itertuples():
            color = measured.ALLTOALL_COLORS.get(row.codec, "k")
            m = RUN_MARKERS.get(row.backend, "^")
            ax.plot([row.bandwidth_gbs] * 2, [row.measured_speedup, row.model_speedup], color=color, lw=1, zorder=5)
            ax.plot(row.bandwidth_gbs, row.model_speedup, m, ms=7, mfc="white", mec=color, mew=1.5, zorder=6)
            ax.plot(row.bandwidth_gbs, row.measured_speedup, m, ms=7, color=color, mec="k", mew=0.5, zorder=7)
            if annotate is not None and (row.backend, row.codec, row.size_mb) == tuple(annotate):
                ax.annotate(f"{row.codec} over {row.backend}, {row.size_mb:g} MB/rank:\n"
                            f"{row.measured_speedup:.2g}x measured, {row.model_speedup:.2g}x model",
                            (row.bandwidth_gbs, row.measured_speedup), xytext=(16, -42), textcoords="offset points",
                            fontsize=8, color=color, zorder=8, arrowprops={"arrowstyle": "-", "color": color, "lw": 0.8},
                            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": color, "lw": 0.6, "alpha": 0.9})
        low = min(low, float(alltoall[["measured_speedup", "model_speedup"]].min().min()) / 1.5)
        handles = [Line2D([], [], ls="", marker="o", ms=7, color=measured.ALLTOALL_COLORS.get(c, "k"), mec="k",
                          mew=0.5, label=c) for c in dict.fromkeys(alltoall.codec)]
        handles += [Line2D([], [], ls="", marker=RUN_MARKERS.get(run.backend, "^"), ms=7, color="0.5",
                           label=measured.run_label(run.backend, run.world, run.tensors))
                    for run in alltoall.drop_duplicates(["backend", "world", "tensors"]).itertuples()]
        handles += [Line2D([], [], ls="", marker="o", ms=7, color="0.5", mec="k", mew=0.5, label="measured"),
                    Line2D([], [], ls="", marker="o", ms=7, mfc="white", mec="0.5", mew=1.5,
                           label="model, that run's throughputs")]
    top = max(float(rates.cr.max()) if len(rates) else 1.0, 1.0) * 2
    ax.set(xscale="log", yscale="log", xlim=(bandwidths[0], bandwidths[-1]), ylim=(low, top),
           xlabel="link bandwidth per rank, B (GB/s)", ylabel="speed-up of the all-to-all, S")
    ax.set_title(title or "speed-up vs link bandwidth", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    has_star = any("*" in str(c) for c in rates.codec)
    fig.legend(handles=lines, fontsize=7.5, loc="upper left", bbox_to_anchor=(0.61, 0.89), title_fontsize=8,
               title="S = 1 / (1/CR + B (1/Tc + 1/Td)), measured CR, Tc / Td\ndots: break-even (S = 1)"
                     + ("\n* quantization not counted" if has_star else ""), alignment="left")
    if handles:
        fig.legend(handles=handles, fontsize=7.5, loc="lower left", bbox_to_anchor=(0.61, 0.1), ncol=2,
                   title="measured all-to-all (benchmarks/alltoall.py)", title_fontsize=8, alignment="left")
    return fig


def end_to_end_bars(rates: pd.DataFrame, bandwidth: float, share: float, pipelined: bool = False) -> plt.Figure:
    """Transfer and end-to-end (Amdahl) speed-up per codec at one bandwidth and all-to-all share."""
    s = sp.speedup(rates.cr, rates.tc, rates.td, bandwidth, pipelined)
    y = np.arange(len(rates))[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.45 * len(rates)))
    for bars in (ax.barh(y + 0.2, s, 0.4, label="transfer"),
                 ax.barh(y - 0.2, sp.end_to_end(s, share), 0.4, label=f"iteration (all-to-all share {share:.0%})")):
        ax.bar_label(bars, fmt="%.2g", fontsize=7, padding=2)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(y, rates.codec, fontsize=8)
    ax.set(xscale="log", xlabel="speed-up",
           title=f"at {measured.format_gbps(bandwidth)} GB/s, {'pipelined' if pipelined else 'sequential'} model")
    ax.legend(fontsize=8, loc="lower right")
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
    Jupyter kernel, sliders for bandwidth (a 1-2-5 grid and the real links), share and pipelining
    that redraw them in place of the static figure. Returns the static figure.
    """
    fig = end_to_end_bars(rates, bandwidth, share, pipelined)
    widgets.interactive(
        lambda bandwidth, share, pipelined: end_to_end_bars(rates, bandwidth, share, pipelined), static=fig,
        bandwidth=lambda w: w.SelectionSlider(options=measured.bandwidth_options([bandwidth]), value=float(bandwidth),
                                              description="GB/s", continuous_update=False),
        share=lambda w: w.FloatSlider(value=share, min=0.0, max=1.0, step=0.05, description="a2a share",
                                      continuous_update=False),
        pipelined=lambda w: w.Checkbox(value=pipelined, description="pipelined"))
    return fig
