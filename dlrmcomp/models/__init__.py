"""DLRM models."""
from .dlrm import DLRM, PRESETS, DenseArch, InteractionArch, OverArch, Preset, SparseArch
from .tt import TTConfig, TTEmbeddingBag, TTSparseArch, suggested_shapes

__all__ = ["DLRM", "PRESETS", "Preset", "DenseArch", "SparseArch", "InteractionArch", "OverArch",
           "TTConfig", "TTEmbeddingBag", "TTSparseArch", "suggested_shapes"]
