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


def interactive(fn, **controls) -> None:
    """Display ``ipywidgets.interactive(fn, **controls)`` in a live kernel; nothing otherwise.

    ``controls`` maps parameter names to factories ``lambda widgets: widgets.FloatSlider(...)`` so
    that headless callers never import ipywidgets.
    """
    if not live_kernel():
        return
    import ipywidgets
    from IPython.display import display

    display(ipywidgets.interactive(fn, **{name: make(ipywidgets) for name, make in controls.items()}))
