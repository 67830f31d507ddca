"""Training logs: our JSONL log, and the reference ``dlrm_s_pytorch.py`` text log, as DataFrames."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..io import atomic_write


def _iteration(line: str) -> float:
    """The iteration of a log line; a line cut short by a crash counts as past every checkpoint."""
    try:
        return json.loads(line)["iteration"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


class JsonlLog:
    """Append-only JSONL; on resume, lines past the checkpoint's iteration are dropped."""

    def __init__(self, path, keep_until: int | None = None):
        self.path = Path(path)
        lines = []
        if keep_until is not None and self.path.is_file():
            lines = [ln for ln in self.path.read_text().splitlines() if _iteration(ln) <= keep_until]
        atomic_write(self.path, "".join(ln + "\n" for ln in lines))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_jsonl(path) -> pd.DataFrame:
    """Our training log: one row per record (``kind`` = "train" | "eval")."""
    return pd.DataFrame([json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()])


_NUM = r"(-?[\d.]+(?:e[-+]?\d+)?|nan|inf)"
_TRAIN = re.compile(rf"Finished (training|testing) it (\d+)/(\d+) of epoch (\d+), {_NUM} ms/it,"
                    rf"\s*loss {_NUM}(?:, accuracy {_NUM} %)?")
_TEST = re.compile(r"Testing at - (\d+)/(\d+) of epoch (\d+),(.*)")
_FIELDS = {"loss": rf"loss {_NUM}", "accuracy": rf"(?<!best )accuracy {_NUM} %",
           "best_accuracy": rf"(?:best accuracy|best) {_NUM} %", "auc": rf"(?<!best )auc {_NUM}",
           "best_auc": rf"best auc {_NUM}", "recall": rf"recall {_NUM}", "precision": rf"precision {_NUM}",
           "f1": rf"f1 {_NUM}", "ap": rf"ap {_NUM}"}


def _test_fields(text: str) -> dict:
    out = {}
    for name, pattern in _FIELDS.items():
        m = re.search(pattern, text)
        if m:
            out[name] = float(m.group(1)) / (100 if "accuracy" in name else 1)
    return out


def parse_reference_log(source) -> pd.DataFrame:
    """Rows of a ``dlrm_s_pytorch.py`` log (a path or the text itself).

    Reads ``Finished training it j/n of epoch k, T ms/it, loss L`` lines (also the legacy form
    with ``, accuracy A %``) and ``Testing at - j/n of epoch k,`` with its metrics on the same
    line (legacy) or the next (current and ``--mlperf-logging``). Columns: kind ("train" |
    "test"), iteration, nbatches, epoch, ms_per_it, loss, accuracy, best_accuracy, auc, ...;
    accuracies are fractions.
    """
    is_path = isinstance(source, Path) or ("\n" not in source and Path(source).is_file())
    text = Path(source).read_text() if is_path else source
    lines = text.splitlines()
    rows = []
    for i, line in enumerate(lines):
        m = _TRAIN.search(line)
        if m:
            row = {"kind": "train" if m.group(1) == "training" else "test", "iteration": int(m.group(2)),
                   "nbatches": int(m.group(3)), "epoch": int(m.group(4)), "ms_per_it": float(m.group(5)),
                   "loss": float(m.group(6))}
            if m.group(7) is not None:
                row["accuracy"] = float(m.group(7)) / 100
            rows.append(row)
            continue
        m = _TEST.search(line)
        if m:
            rest = m.group(4)
            if not _test_fields(rest) and i + 1 < len(lines):
                rest = lines[i + 1]
            rows.append({"kind": "test", "iteration": int(m.group(1)), "nbatches": int(m.group(2)),
                         "epoch": int(m.group(3)), **_test_fields(rest)})
    return pd.DataFrame(rows)
