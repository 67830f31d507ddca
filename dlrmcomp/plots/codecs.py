"""Figures of the codec tour: ratio vs bound, error histograms, an interactive bound slider."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import widgets


def ratio_vs_bound(df: pd.DataFrame, title: str = "") -> plt.Figure:
    """One panel per data set: ratio (log) vs relative bound (log), one line per lossy codec."""
    lossy = df[df["eb"].notna()]
    names = list(dict.fromkeys(lossy["data"]))
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = lossy[lossy["data"] == name]
        for codec, g in part.groupby("codec", sort=False):
            g = g.sort_values("eb")
            ax.plot(g["eb"], g["ratio"], marker="o", label=codec)
        ax.set(xscale="log", yscale="log", xlabel="relative error bound", ylabel="ratio vs input", title=name)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    return fig


def error_histograms(x: np.ndarray, reconstructions: dict[str, np.ndarray], eb_abs: float) -> plt.Figure:
    """Histogram of (x' - x) / eb_abs per codec: everything must land in [-1, 1]."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    xf = np.asarray(x, dtype=np.float64).ravel()
    finite = np.isfinite(xf)
    for name, y in reconstructions.items():
        err = (np.asarray(y, dtype=np.float64).ravel()[finite] - xf[finite]) / eb_abs
        ax.hist(err, bins=60, range=(-1.05, 1.05), histtype="step", label=name, density=True)
    ax.axvline(-1, color="k", lw=0.8, ls="--")
    ax.axvline(1, color="k", lw=0.8, ls="--")
    ax.set(xlabel="error / bound", ylabel="density", title="pointwise error, in units of the bound")
    ax.legend(fontsize=7)
    return fig


def field_view(x: np.ndarray, y: np.ndarray, title: str = "") -> plt.Figure:
    """Original, reconstruction and error of a 2-D slice side by side."""
    sl = (0,) * (x.ndim - 2)
    a, b = np.asarray(x[sl], dtype=np.float64), np.asarray(y[sl], dtype=np.float64)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, img, name in zip(axes, (a, b, b - a), ("original", "reconstruction", "error")):
        im = ax.imshow(img, cmap="RdBu_r" if name == "error" else "viridis")
        ax.set_title(name)
        ax.axis("off")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title)
    return fig


def bound_slider(x: np.ndarray, codec_name: str = "quant+ans", bounds=(1e-4, 1e-3, 1e-2, 3e-2, 1e-1)) -> plt.Figure:
    """Show ``field_view`` at the middle bound (static, so papermill keeps it) and, in a live
    Jupyter kernel, a slider over ``bounds`` that redraws it. Returns the static figure."""
    from .. import codecs, decompress

    def view(eb):
        frame = codecs.get(codec_name, eb=eb).encode(x)
        return field_view(x, decompress(frame), f"{codec_name} at eb={eb:g}: ratio {x.nbytes / len(frame):.1f}")

    fig = view(bounds[len(bounds) // 2])
    widgets.interactive(view, static=fig,
                        eb=lambda w: w.SelectionSlider(options=list(bounds), value=bounds[len(bounds) // 2],
                                                       description="eb", continuous_update=False))
    return fig
