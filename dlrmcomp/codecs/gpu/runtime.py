"""The GPU package's runtime: CuPy (imported on first use), the compiled kernels, the host mirror of
the kernels' ``Job`` struct and small launch helpers. Nothing here runs at ``import dlrmcomp``."""
from __future__ import annotations

import numpy as np

ALIGN = 256
BLOCK = 256
JOB = np.dtype([("src", "<u8"), ("table", "<u8"), ("table2", "<u8"), ("scratch", "<u8"), ("ends", "<u8"),
                 ("n", "<i8"), ("chunk", "<i8"), ("lane_base", "<i8"), ("lanes", "<i4"), ("width", "<i4"),
                 ("stride", "<i4"), ("shift", "<i4"), ("mask", "<u4"), ("cap", "<i4"), ("nbins", "<i4"),
                 ("pad", "<i4")])
_module = None


def cp_module():
    import cupy

    return cupy


def kernels():
    """The compiled RawModule (compiled on first use, cached by CuPy on disk)."""
    global _module
    if _module is None:
        from .kernels import NAMES, SOURCE

        _module = cp_module().RawModule(code=SOURCE, options=("-std=c++17",), name_expressions=NAMES)
    return _module


def kernel(name):
    return kernels().get_function(name)


def ctype(dt: np.dtype) -> str:
    return {"float32": "float", "float64": "double", "int8": "signed char", "int16": "short"}[np.dtype(dt).name]


def as_cupy(x):
    """numpy / cupy / torch (CUDA or CPU) -> a C-contiguous cupy array (zero-copy where possible)."""
    cp = cp_module()
    if isinstance(x, cp.ndarray):
        return cp.ascontiguousarray(x)
    if type(x).__module__.startswith("torch"):
        if not x.is_cuda:
            return cp.asarray(x.detach().numpy())
        return cp.ascontiguousarray(cp.from_dlpack(x.detach().contiguous()))
    return cp.asarray(np.ascontiguousarray(x))


def grid_size(n: int, per_thread: int = 4) -> int:
    return int(max(1, min(4096, -(-n // (BLOCK * per_thread)))))


def ord_decode(u: np.ndarray, dt: np.dtype) -> np.ndarray:
    bits = 8 * dt.itemsize
    top = np.array(1 << (bits - 1), dtype=u.dtype)
    raw = np.where(u & top, u & ~top, ~u).astype(u.dtype)
    return raw.view(dt)


def ord_init(t: int, dt: np.dtype) -> np.ndarray:
    u = np.dtype(f"u{dt.itemsize}")
    inf = np.array([np.inf, -np.inf], dt).view(u)
    top = u.type(1 << (8 * dt.itemsize - 1))
    enc = np.where(inf & top, ~inf, inf | top).astype(u)
    return np.tile(enc, t)


def aligned_offsets(nbytes: list[int]) -> tuple[np.ndarray, int]:
    offs, pos = [], 0
    for n in nbytes:
        offs.append(pos)
        pos += -(-max(int(n), 1) // ALIGN) * ALIGN
    return np.array(offs, np.int64), pos
