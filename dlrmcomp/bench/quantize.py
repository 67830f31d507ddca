"""``dlrmcomp quantize``: the seed's ``quantization.py``, working.

Each dump ``EMB_{t}_iter_{k}.bin`` is quantized at the relative bound the schedule gives table t
at snapshot k, where the ``decay_stage`` snapshot index maps to the schedule's early stage
(snapshot k <-> iteration k * early_stage / decay_stage). The files hold the codes the ``quant+*``
codecs code (:class:`~dlrmcomp.codecs.quantize.LinearQuantizer`: int8 or int16, value = base +
code * step, the dtype's smallest value marks an escape), the one code format of this package:
``.quan`` the codes, ``.esc`` the escaped values verbatim (the dump's float32), like SZ3's
unpredictable values; the manifest records base, step and the escape code. The external tools
(:mod:`dlrmcomp.bench.external`) read the ``.quan`` bytes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..codecs.quantize import Grid, LinearQuantizer, Quantized, code_limits
from ..errorbound import EBSchedule, ErrorBound
from ..io import atomic_write, write_json
from . import dumps

FORMAT = "dlrmcomp-emb-codes/2"


def snapshot_bound(schedule: EBSchedule, table: int, snapshot: int, decay_stage: int) -> float:
    """Relative bound of ``table`` at snapshot index ``snapshot`` (decay ends at ``decay_stage``)."""
    if decay_stage <= 0:
        raise ValueError(f"decay stage must be a positive snapshot index, got {decay_stage}")
    return schedule.bound(table, round(snapshot * schedule.early_stage / decay_stage))


def quantize_codes(x: np.ndarray, eb: float, dtype: str = "int8") -> Quantized:
    """x [B, D] at relative bound ``eb`` -> the codes, escapes and grid of the ``quant+*`` codecs."""
    return LinearQuantizer(dtype).quantize(x, ErrorBound(eb, "rel").resolve(x))


def quantize_dir(src, out, schedule: EBSchedule, decay_stage: int, dtype: str = "int8",
                 dim: int | None = None) -> dict:
    """Quantize every dump of ``src`` into ``out`` (``.quan`` + ``.esc`` files, manifest.json)."""
    out = Path(out)
    entries = []
    for e in dumps.list_entries(src, dim):
        eb = snapshot_bound(schedule, e["table"], e["snapshot"], decay_stage)
        q = quantize_codes(dumps.load(src, e), eb, dtype)
        stem = Path(e["file"]).stem
        atomic_write(out / f"{stem}.quan", q.codes.tobytes())
        if q.escapes.size:
            atomic_write(out / f"{stem}.esc", q.escapes.tobytes())
        entries.append({"file": f"{stem}.quan", "table": e["table"], "snapshot": e["snapshot"],
                        "shape": list(q.codes.shape), "dtype": q.codes.dtype.name, "eb": eb,
                        "eb_abs": q.grid.step / 2, "base": q.grid.base, "step": q.grid.step,
                        "escape_code": code_limits(q.codes.dtype)[1], "escapes": int(q.escapes.size),
                        "escape_dtype": q.escapes.dtype.name})
    manifest = {"format": FORMAT, "source": str(src), "decay_stage": decay_stage, "code_dtype": dtype,
                "schedule": schedule.to_dict(), "codes": entries}
    write_json(out / "manifest.json", manifest)
    return manifest


def load_codes(directory, entry: dict) -> Quantized:
    """The codes, escapes and grid of one manifest entry of a ``dlrmcomp quantize`` folder."""
    directory = Path(directory)
    codes = np.fromfile(directory / entry["file"], dtype=entry["dtype"]).reshape(entry["shape"])
    esc = directory / (Path(entry["file"]).stem + ".esc")
    escapes = np.fromfile(esc, dtype=entry["escape_dtype"]) if entry["escapes"] else np.zeros(0, entry["escape_dtype"])
    return Quantized(codes, escapes, Grid(entry["base"], entry["step"]))


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
