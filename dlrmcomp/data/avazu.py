"""Avazu click logs (the Slipstream seed's third data set) as a data source.

CSV with 24 columns: ``id, click, hour`` and 21 categorical fields; with or without the header
row. The 22 categorical fields are ``hour`` and the 21 (the seed's reader keeps hour as a
category); Avazu has no dense features, so the 13 dense inputs of DLRM's bottom MLP are zero.
Each field's vocabulary is the training file's values (id 0: a value the training file lacks).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .batch import N_DENSE, Batch, SplitData

COLUMNS = ("id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
           "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
           "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21")
FIELDS = COLUMNS[2:]  # the 22 categorical fields


def read_avazu(path) -> pd.DataFrame:
    """The file's rows as strings, columns :data:`COLUMNS` (the header row, if any, skipped)."""
    path = Path(path)
    with path.open() as f:
        header = f.readline().startswith("id,")
    return pd.read_csv(path, header=0 if header else None, names=list(COLUMNS), dtype=str, keep_default_na=False)


class AvazuArrays:
    """One file's rows: dense zeros [N, 13], ids int64 [N, 22], labels float32 [N]."""

    def __init__(self, frame: pd.DataFrame, vocab: list[dict[str, int]]):
        self.ids = np.stack([frame[f].map(v).fillna(0).to_numpy(np.int64) for f, v in zip(FIELDS, vocab)], 1)
        self.labels = frame["click"].to_numpy(np.float32)
        self.dense = np.zeros((self.labels.size, N_DENSE), np.float32)

    def __len__(self) -> int:
        return self.labels.size

    def batch(self, start: int, batch_size: int) -> Batch:
        sl = slice(start, start + batch_size)
        return Batch.from_numpy(self.dense[sl], self.ids[sl], self.labels[sl])


class AvazuData(SplitData):
    """A training file and a test file (or the last ``holdout`` fraction of the training file);
    the interface of :class:`~dlrmcomp.data.criteo.CriteoData`."""

    def __init__(self, train_path, test_path=None, holdout: float = 0.1):
        frame = read_avazu(train_path)
        if test_path is None:
            cut = self.holdout_cut(len(frame), holdout)
            frame, test = frame.iloc[:cut], frame.iloc[cut:]
        else:
            test = read_avazu(test_path)
        vocab = [{v: i + 1 for i, v in enumerate(pd.unique(frame[f]))} for f in FIELDS]
        self.train, self.test = AvazuArrays(frame, vocab), AvazuArrays(test, vocab)
        self.table_sizes = [len(v) + 1 for v in vocab]
