"""Data: the Batch type, the synthetic Criteo-like default, Criteo loaders, EMB dump I/O."""
from .batch import Batch
from .criteo import CriteoData, CriteoFormatError, Vocabulary, load_criteo
from .dumps import DumpWriter, load_dump, read_manifest
from .synthetic import KAGGLE_CARDINALITIES, SyntheticCriteo, scale_cardinalities

__all__ = ["Batch", "SyntheticCriteo", "CriteoData", "CriteoFormatError", "Vocabulary", "load_criteo",
           "DumpWriter", "read_manifest", "load_dump", "KAGGLE_CARDINALITIES", "scale_cardinalities"]
