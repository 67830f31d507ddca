"""Importing this module fails unless cupy works and sees a CUDA device (registry ``requires``)."""
import cupy

if cupy.cuda.runtime.getDeviceCount() < 1:  # pragma: no cover - needs a GPU box
    raise ImportError("cupy sees no CUDA device")
