"""ipywidgets controls that appear only in a live Jupyter kernel.

Headless runs (papermill, nbval, scripts) get no widgets: the notebook runner sets
``DLRMCOMP_HEADLESS=1`` for the kernels it starts, because a widget comm that nobody answers
can stall a headless kernel client. Figures are always drawn statically as well.
"""
from __future__ import annotations

import os


def live_kernel() -> bool:
    """True in an interactive IPython kernel with ipywidgets installed and no DLRMCOMP_HEADLESS."""
    if os.environ.get("DLRMCOMP_HEADLESS"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def interactive(draw, static=None, **controls) -> None:
    """Display ``ipywidgets.interactive`` over ``draw`` in a live kernel; nothing otherwise.

    ``draw(**values)`` returns a new matplotlib Figure; each call's figure is closed in pyplot
    (so ipywidgets' flush of open figures does not show it) and displayed once in the widget's
    output. The old code let ``plt.show()`` flush every open figure, the static one included, so
    each widget showed two figures until its first redraw (tests/test_browser.py). ``static``,
    the figure the caller drew for headless runs and ``record()``, is taken out of pyplot in a live
    kernel so that it is not shown next to (or inside) the widget's own; it can still be saved.
    ``controls`` maps parameter names to factories ``lambda widgets: widgets.FloatSlider(...)`` so
    that headless callers never import ipywidgets.
    """
    if not live_kernel():
        return
    import ipywidgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    if static is not None:
        plt.close(static)

    def redraw(**values):
        fig = draw(**values)
        plt.close(fig)  # before ipywidgets flushes open figures: shown once, by display() below
        display(fig)

    display(ipywidgets.interactive(redraw, **{name: make(ipywidgets) for name, make in controls.items()}))
