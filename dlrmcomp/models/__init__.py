"""DLRM models."""
from .dlrm import DLRM, PRESETS, DenseArch, InteractionArch, OverArch, Preset, SparseArch

__all__ = ["DLRM", "PRESETS", "Preset", "DenseArch", "SparseArch", "InteractionArch", "OverArch"]
