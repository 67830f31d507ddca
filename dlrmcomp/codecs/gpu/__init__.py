"""GPU codecs: CuPy kernels (fused quantize + dedup + rANS in the CPU frame format) and nvcomp.

Nothing here imports cupy or nvcomp at ``import dlrmcomp`` time. The codecs are registered as
``gpu:quant+ans``, ``gpu:quant+dedup+ans`` and ``nvcomp:<algo>``; :func:`dlrmcomp.codecs.available`
lists them only where ``dlrmcomp.codecs.gpu.probe`` imports, i.e. where cupy sees a CUDA device
(and, for nvcomp, where ``nvidia.nvcomp`` imports).

Cross-compatibility: with the default ``lanes=32, chunk=2**18`` a ``gpu:`` codec writes frames
byte-identical to the CPU recipe's (same config in the header, same dedup order, same rANS
tables and lane layout), so the CPU decodes them with ``dlrmcomp.decompress``; the GPU decodes
any CPU ``quant+ans`` / ``quant+dedup+ans`` frame to the identical array.
"""
from __future__ import annotations

from functools import partial

from ..base import register

GPU_RECIPES = ("quant+ans", "quant+dedup+ans")
NVCOMP_ALGOS = ("ANS", "LZ4", "Zstd", "Bitcomp", "Cascaded", "GDeflate")


def _gpu_codec(recipe, **params):
    from .codec import GpuPipeline

    return GpuPipeline(recipe, **params)


def _nvcomp_codec(algorithm, **params):
    from .nvcomp import NvcompCodec

    return NvcompCodec(algorithm=algorithm, **params)


def gpu_available() -> bool:
    """Whether cupy imports and sees a CUDA device."""
    try:
        from . import probe  # noqa: F401
        return True
    except Exception:
        return False


for _recipe in GPU_RECIPES:
    register(f"gpu:{_recipe}", partial(_gpu_codec, _recipe), requires=("cupy", "dlrmcomp.codecs.gpu.probe"), lossy=True)
for _algo in NVCOMP_ALGOS:
    register(f"nvcomp:{_algo.lower()}", partial(_nvcomp_codec, _algo),
             requires=("dlrmcomp.codecs.gpu.probe", "nvidia.nvcomp"), lossy=True)

__all__ = ["GPU_RECIPES", "NVCOMP_ALGOS", "gpu_available"]
