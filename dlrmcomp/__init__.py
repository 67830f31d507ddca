"""dlrmcomp: compress what DLRM training moves and stores; measure what it costs and buys.

>>> import numpy as np, dlrmcomp
>>> x = np.random.default_rng(0).normal(size=(256, 16)).astype(np.float32)
>>> frame = dlrmcomp.compress(x, eb=0.01, mode="rel", codec="quant+ans")
>>> y = dlrmcomp.decompress(frame)
>>> dlrmcomp.verify(x, y, dlrmcomp.codecs.read_header(frame).eb_abs)["violations"]
0
"""
from . import codecs
from .api import compress, decompress, verify
from .errorbound import EBSchedule, ErrorBound
from .errors import CorruptStreamError

__version__ = "0.1.0"
__all__ = ["CorruptStreamError", "EBSchedule", "ErrorBound", "codecs", "compress", "decompress", "verify"]
