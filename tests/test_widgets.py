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
