"""Matplotlib figures used by the notebooks, one module per topic (codecs, training, bench)."""
