"""``dlrmcomp quantize``: the seed's ``quantization.py``, working.

Each dump ``EMB_{t}_iter_{k}.bin`` is quantized at the relative bound the schedule gives table t
at snapshot k, where the ``decay_stage`` snapshot index maps to the schedule's early stage
(snapshot k <-> iteration k * early_stage / decay_stage). Codes are shifted so the smallest
code is 1 (the seed's ``+ |min| + 1``) and stored unsigned, 1 or 2 bytes; 0 marks an escape,
whose value is stored verbatim in ``.esc`` (float32), like SZ3's unpredictable values.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codecs.quantize import LinearQuantizer, code_limits
from ..errorbound import EBSchedule, ErrorBound
from ..io import atomic_write, write_json
from . import dumps

FORMAT = "dlrmcomp-emb-codes/1"


@dataclass(frozen=True)
class Codes:
    """Positive codes (x's shape, uint8/uint16, 0 = escape), escapes (float32), bound, shift."""

    codes: np.ndarray
    escapes: np.ndarray
    eb_abs: float
    shift: int


def snapshot_bound(schedule: EBSchedule, table: int, snapshot: int, decay_stage: int) -> float:
    """Relative bound of ``table`` at snapshot index ``snapshot`` (decay ends at ``decay_stage``)."""
    if decay_stage <= 0:
        raise ValueError(f"decay stage must be a positive snapshot index, got {decay_stage}")
    return schedule.bound(table, round(snapshot * schedule.early_stage / decay_stage))


def quantize_codes(x: np.ndarray, eb: float, dtype: str = "int8") -> Codes:
    """x float32 [B, D] at relative bound ``eb`` -> positive codes of the same width as ``dtype``."""
    eb_abs = ErrorBound(eb, "rel").resolve(x)
    q = LinearQuantizer(dtype).quantize(x, eb_abs)
    _, esc = code_limits(q.codes.dtype)
    wide = q.codes.astype(np.int32)
    hit = wide != esc
    shift = 1 - int(wide[hit].min()) if hit.any() else 0
    codes = np.where(hit, wide + shift, 0).astype(np.dtype(f"u{q.codes.dtype.itemsize}"))
    return Codes(codes, q.escapes.astype(np.float32), eb_abs, shift)


def quantize_dir(src, out, schedule: EBSchedule, decay_stage: int, dtype: str = "int8",
                 dim: int | None = None) -> dict:
    """Quantize every dump of ``src`` into ``out`` (``.quan`` + ``.esc`` files, manifest.json)."""
    out = Path(out)
    entries = []
    for e in dumps.list_entries(src, dim):
        eb = snapshot_bound(schedule, e["table"], e["snapshot"], decay_stage)
        c = quantize_codes(dumps.load(src, e), eb, dtype)
        stem = Path(e["file"]).stem
        atomic_write(out / f"{stem}.quan", c.codes.tobytes())
        if c.escapes.size:
            atomic_write(out / f"{stem}.esc", c.escapes.tobytes())
        entries.append({"file": f"{stem}.quan", "table": e["table"], "snapshot": e["snapshot"],
                        "shape": list(c.codes.shape), "dtype": c.codes.dtype.name, "eb": eb,
                        "eb_abs": c.eb_abs, "shift": c.shift, "escapes": int(c.escapes.size)})
    manifest = {"format": FORMAT, "source": str(src), "decay_stage": decay_stage, "code_dtype": dtype,
                "schedule": schedule.to_dict(), "codes": entries}
    write_json(out / "manifest.json", manifest)
    return manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("emb_dir", type=Path, help="folder of EMB_<table>_iter_<k>.bin dumps")
    p.add_argument("--schedule", default="env", help="env | auto | fixed:EB | schedule JSON (default env)")
    p.add_argument("--decay-stage", type=int, required=True, help="snapshot index where the decay ends")
    p.add_argument("--dtype", choices=("int8", "int16"), default="int8")
    p.add_argument("--dim", type=int, help="embedding dim (only for dumps without manifest.json)")
    p.add_argument("--out", type=Path, required=True)


def main(args) -> int:
    schedule = EBSchedule.load(args.schedule, table_sizes=dumps.table_rows(args.emb_dir))
    m = quantize_dir(args.emb_dir, args.out, schedule, args.decay_stage, args.dtype, args.dim)
    n_esc = sum(e["escapes"] for e in m["codes"])
    print(f"{len(m['codes'])} code files in {args.out} ({n_esc} escapes)")
    return 0
