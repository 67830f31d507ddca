"""Widgets appear only in a live kernel; headless runs get static figures and no comms."""
import matplotlib

matplotlib.use("Agg")

import numpy as np

from dlrmcomp.plots import widgets
from dlrmcomp.plots.codecs import bound_slider


def test_no_widgets_outside_a_kernel(monkeypatch):
    monkeypatch.delenv("DLRMCOMP_HEADLESS", raising=False)
    assert widgets.live_kernel() is False  # plain pytest: no IPython kernel
    called = []
    widgets.interactive(lambda eb: called.append(eb), eb=lambda w: called.append("built"))
    assert called == []


def test_headless_flag_wins(monkeypatch):
    monkeypatch.setenv("DLRMCOMP_HEADLESS", "1")
    assert widgets.live_kernel() is False


def test_bound_slider_returns_the_static_view():
    x = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    fig = bound_slider(x, "quant+zstd", bounds=(0.01, 0.1))
    assert len(fig.axes) >= 3 and "ratio" in fig._suptitle.get_text()


def test_live_widget_shows_exactly_one_figure_per_draw(monkeypatch, tmp_path):
    """In a live kernel the static figure leaves pyplot (saved, never shown) and every redraw
    displays one new figure and closes it, so nothing is flushed twice into the widget's output."""
    import ipywidgets
    import IPython.display
    import matplotlib.pyplot as plt

    from dlrmcomp.io import save_figure

    shown, built = [], []

    class FakeInteractive:  # what ipywidgets.interactive does on construction: one call, then show open figures
        def __init__(self, fn, **controls):
            built.append(sorted(controls))
            self.fn, self.values = fn, {k: w.value for k, w in controls.items()}
            self.update()

        def update(self):
            self.fn(**self.values)
            shown.extend(plt.figure(n) for n in plt.get_fignums())  # show_inline_matplotlib_plots

    monkeypatch.setattr(widgets, "live_kernel", lambda: True)
    monkeypatch.setattr(ipywidgets, "interactive", FakeInteractive)
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    plt.close("all")
    x = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    static = bound_slider(x, "quant+zstd", bounds=(0.01, 0.1))
    figures = [o for o in shown if isinstance(o, plt.Figure)]
    assert built == [["eb"]] and len(figures) == 1 and figures[0] is not static
    assert plt.get_fignums() == []  # nothing left for the cell's end to show again
    assert save_figure(static, tmp_path / "static.png").stat().st_size > 10_000


def test_explorer_slider_offers_round_bandwidths_and_links(monkeypatch):
    import ipywidgets
    import IPython.display
    import matplotlib.pyplot as plt
    import pandas as pd

    from dlrmcomp.plots.bench import speedup_explorer

    made = {}

    class FakeInteractive:
        def __init__(self, fn, **controls):
            made.update(controls)
            self.figure = fn(**{k: w.value for k, w in controls.items()})

    monkeypatch.setattr(widgets, "live_kernel", lambda: True)
    monkeypatch.setattr(ipywidgets, "interactive", FakeInteractive)
    monkeypatch.setattr(IPython.display, "display", lambda obj: None)
    rates = pd.DataFrame({"codec": ["a", "b"], "cr": [10.0, 4.0], "tc": [200.0, 500.0], "td": [250.0, 500.0]})
    fig = speedup_explorer(rates, 3.125, 0.3)
    labels = [label for label, _ in made["bandwidth"].options]
    assert "3.1 (25 GbE)" in labels and "12.5 (100 GbE)" in labels and "450 (NVLink 4)" in labels
    assert made["bandwidth"].value == 3.125
    assert fig.axes[0].get_title().startswith("at 3.1 GB/s")
    made["bandwidth"].value = 12.5
    assert plt.get_fignums() == []
