"""Codecs: value objects with a JSON config, a registry, and one frame format.

>>> import numpy as np
>>> from dlrmcomp import codecs
>>> codec = codecs.get("quant+ans", eb=0.01)
>>> x = np.linspace(-1, 1, 1000, dtype=np.float32)
>>> bool(np.abs(codec.decode(codec.encode(x)) - x).max() <= 0.02)
True
"""
from functools import partial

from . import base
from .base import Codec, ErrorBoundedCodec, available, from_config, get, is_lossy, register, registered
from .floats import SZ3, ZFP
from .frame import FrameHeader, read_header
from .pipeline import Pipeline, parse_recipe

#: Recipes registered by default (any valid recipe can be added with ``register_recipe``).
RECIPES = (
    "quant+ans", "quant+huffman", "quant+zstd", "quant+lz4", "quant+zlib",
    "quant+dedup+ans", "quant+dedup+huffman", "quant+dedup+zstd",
    "zstd", "lz4", "zlib", "dedup+zstd",
)


def register_recipe(recipe: str) -> None:
    """Make ``get(recipe, ...)`` build ``Pipeline(recipe, ...)``."""
    quant, _, _ = parse_recipe(recipe)  # validates
    register(recipe, partial(Pipeline, recipe), lossy=quant)


def _register_if_recipe(name: str) -> None:
    """Any valid recipe name works without registering it first (frames name their recipe)."""
    try:
        register_recipe(name)
    except ValueError:
        pass


def _dct_codec(class_name: str, **params) -> Codec:
    """The DCT+Chop codecs import torch, so their module loads on first use (``import dlrmcomp`` stays light)."""
    from . import dct

    return getattr(dct, class_name)(**params)


for _recipe in RECIPES:
    register_recipe(_recipe)
base._fallback = _register_if_recipe
register("sz3", SZ3, requires=("pysz",))
register("zfp", ZFP, requires=("zfpy",))
register("dct", partial(_dct_codec, "Dct"), lossy=False)  # lossy, but it takes no bound: eb=None
register("dct+quant", partial(_dct_codec, "DctQuant"))
from . import gpu as _gpu  # noqa: E402,F401 - registers gpu:/nvcomp: codecs; imports no cupy

__all__ = ["Codec", "ErrorBoundedCodec", "FrameHeader", "Pipeline", "RECIPES", "available", "from_config",
           "get", "is_lossy", "read_header", "register", "register_recipe", "registered"]
