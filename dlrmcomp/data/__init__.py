"""Data: the Batch type, the synthetic Criteo-like default, Criteo text loaders, the reference DLRM's
processed .npz files, EMB dump I/O."""
from .batch import Batch, SplitData
from .criteo import CriteoData, CriteoFormatError, Vocabulary, load_criteo
from .dumps import DumpWriter, load_dump, read_manifest
from .npz import NpzData, NpzFormatError, load_npz
from .synthetic import KAGGLE_CARDINALITIES, SyntheticCriteo, scale_cardinalities

__all__ = ["Batch", "SplitData", "SyntheticCriteo", "CriteoData", "CriteoFormatError", "Vocabulary", "load_criteo",
           "NpzData", "NpzFormatError", "load_npz", "DumpWriter", "read_manifest", "load_dump",
           "KAGGLE_CARDINALITIES", "scale_cardinalities"]
