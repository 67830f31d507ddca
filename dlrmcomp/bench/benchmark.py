"""``dlrmcomp bench``: every codec on every (table, snapshot) of a dump folder or a payload.

Rows: one per (table, snapshot, codec, bound), with the ratio vs fp32 and vs the quantized codes
and the (de)compression throughput in GB/s of fp32 input (median of ``repeat`` timed runs after
one warm-up), measured by the one runner (:mod:`dlrmcomp.bench.runner`, its row schema). A
pseudo-codec ``entropy0`` gives the order-0 entropy of the codes: the ratio an ideal symbol coder
reaches. Per table, the artifact's parsers take harmonic means across snapshots
(:func:`table_summary`).
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import codecs
from ..codecs.entropy import entropy_bits
from ..codecs.quantize import LinearQuantizer
from ..errorbound import EBSchedule, ErrorBound
from ..io import atomic_write, write_json
from . import dumps
from .payload import embedding_payload
from .quantize import snapshot_bound
from .runner import measure

ENTROPY = "entropy0"
METRICS = ("ratio", "compress_gbps", "decompress_gbps")
#: notebook sizes: tables x snapshots of a [batch, dim] payload, timed repeats
PROFILES = {
    "smoke": {"tables": 4, "snapshots": 2, "batch": 2048, "dim": 16, "repeat": 1},
    "demo": {"tables": 8, "snapshots": 3, "batch": 8192, "dim": 32, "repeat": 3},
    "full": {"tables": 26, "snapshots": 4, "batch": 65536, "dim": 64, "repeat": 5},
}


def parse_bounds(spec: str) -> list[float] | str:
    """'0.01,0.03' -> [0.01, 0.03]; anything else (dump | env | auto | fixed:EB | FILE) as is."""
    try:
        return [float(tok) for tok in spec.split(",")]
    except ValueError:
        return spec


class Bounds:
    """Relative bounds per dump entry: a fixed list, the dump's own (``dump``), or a schedule."""

    def __init__(self, spec: str, decay_stage: int | None = None, table_sizes: Sequence[int] | None = None):
        self.label, self.values = spec, parse_bounds(spec)
        self.decay_stage = decay_stage
        self.schedule = None
        if isinstance(self.values, str) and self.values != "dump":
            if decay_stage is None:
                raise ValueError(f"bounds from schedule {spec!r} need --decay-stage")
            self.schedule = EBSchedule.load(spec, table_sizes=table_sizes)

    def __call__(self, entry: dict) -> list[float]:
        if isinstance(self.values, list):
            return self.values
        if self.schedule is not None:
            return [snapshot_bound(self.schedule, entry["table"], entry["snapshot"], self.decay_stage)]
        if entry.get("eb") is None:
            raise ValueError(f"{entry['file']}: the dump records no bound; give --bounds")
        return [entry["eb"]]


def codes_of(x: np.ndarray, eb: float) -> np.ndarray:
    """The quantizer codes the ``quant+*`` recipes code for x at relative bound ``eb``."""
    return LinearQuantizer().quantize(x, ErrorBound(eb, "rel").resolve(x)).codes


def entropy_row(x: np.ndarray, codes: np.ndarray, eb: float) -> dict:
    """The order-0 entropy of the codes as a ratio vs fp32 and vs the codes."""
    nbytes = entropy_bits(codes) / 8
    return {"codec": ENTROPY, "eb": eb, "raw_bytes": x.nbytes, "frame_bytes": nbytes,
            "ratio": x.nbytes / nbytes, "ratio_vs_codes": codes.nbytes / nbytes, "violations": 0}


def lossy_row(x: np.ndarray, codes: np.ndarray, name: str, eb: float, repeat: int) -> dict:
    """:func:`measure` of a lossy codec plus its ratio vs the codes."""
    row = measure(x, codecs.get(name, eb=eb), repeat)
    return {**row, "ratio_vs_codes": codes.nbytes / row["frame_bytes"]}


def bench_one(x: np.ndarray, codec_names: Sequence[str], bounds: Sequence[float], repeat: int) -> list[dict]:
    """Rows for one [B, D] array: lossy codecs and entropy0 at each bound, lossless codecs once."""
    lossy = [n for n in codec_names if codecs.is_lossy(n)]
    rows = []
    for eb in bounds:
        codes = codes_of(x, eb)
        rows += [entropy_row(x, codes, eb)] + [lossy_row(x, codes, n, eb, repeat) for n in lossy]
    return rows + [measure(x, codecs.get(n), repeat) for n in codec_names if n not in lossy]


def bench(items: Iterable[tuple[int, int, np.ndarray, Sequence[float]]], codec_names: Sequence[str],
          repeat: int = 5, progress: bool = True) -> pd.DataFrame:
    """items = (table, snapshot, x [B, D] float32, relative bounds) -> tidy rows."""
    rows = []
    for table, snapshot, x, bounds in tqdm(list(items), desc="bench", disable=not progress):
        rows += [{"table": table, "snapshot": snapshot, **r} for r in bench_one(x, codec_names, bounds, repeat)]
    return pd.DataFrame(rows)


def dump_items(directory, bounds: Bounds, dim: int | None = None):
    """(table, snapshot, array, bounds) for every dump of ``directory`` (arrays loaded lazily)."""
    for e in dumps.list_entries(directory, dim):
        yield e["table"], e["snapshot"], dumps.load(directory, e), bounds(e)


def payload_items(tables: Sequence[Sequence[np.ndarray]], bounds: Sequence[float]):
    """``tables[t][k]``: snapshot k of table t ([B, D] float32), all at ``bounds``."""
    for t, snaps in enumerate(tables):
        for k, x in enumerate(snaps):
            yield t, k, x, bounds


def profile_payload(profile: str, seed: int = 0) -> list[list[np.ndarray]]:
    """``tables[t][k]``: the DESIGN.md payload at the profile's size, one seed per snapshot k."""
    size = PROFILES[profile]
    snaps = [embedding_payload(size["batch"], size["dim"], size["tables"], seed=seed + k)
             for k in range(size["snapshots"])]
    return [list(t) for t in zip(*snaps)]


def harmonic(values) -> float:
    """Harmonic mean of the finite positive values (NaN when there are none)."""
    v = [float(a) for a in values if np.isfinite(a) and a > 0]
    return statistics.harmonic_mean(v) if v else np.nan


def table_summary(df: pd.DataFrame, by: Sequence[str] = ("codec", "table")) -> pd.DataFrame:
    """Harmonic means of ratio and throughputs over snapshots (the artifact parsers' rule)."""
    metrics = [m for m in (*METRICS, "ratio_vs_codes") if m in df]
    return df.groupby(list(by), sort=False, dropna=False)[metrics].agg(harmonic).reset_index()


def split_bounds(df: pd.DataFrame) -> pd.DataFrame:
    """Label rows ``codec@eb`` where several bounds were swept over one (table, snapshot), so that
    summaries never average different bounds together."""
    swept = df.duplicated(["codec", "table", "snapshot"], keep=False)
    if not swept.any():
        return df
    out = df.copy()
    out.loc[swept, "codec"] = out.codec[swept] + "@" + out.eb[swept].map("{:g}".format)
    return out


def codec_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per codec (per codec@eb when several bounds were swept): harmonic means over tables of the
    per-table harmonic means."""
    return table_summary(table_summary(split_bounds(df)), by=("codec",))


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("dlrmcomp", "numpy", "numba", "zstandard", "lz4", "pysz", "zfpy", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict:
    return {"node": platform.node(), "system": platform.platform(), "processor": platform.processor(),
            "machine": platform.machine(), "cpus": os.cpu_count()}


def device_name(device: str) -> str:
    """The machine a benchmark ran on, in words: the GPU's name, or the CPU and torch's threads."""
    import torch

    if str(device).startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def markdown_section(df: pd.DataFrame, title: str, floatfmt: str = ".4g") -> str:
    """``df`` as a markdown table under a ``### title`` heading (what the benchmark scripts print)."""
    return f"\n### {title}\n\n{df.to_markdown(index=False, floatfmt=floatfmt)}\n"


def write_results(df: pd.DataFrame, path, command: Sequence[str] | str | None = None) -> Path:
    """``path`` (CSV) and ``path.meta.json`` (machine, versions, command, time) beside it."""
    path = Path(path)
    atomic_write(path, df.to_csv(index=False))
    command = shlex.join(command) if isinstance(command, (list, tuple)) else command
    write_json(path.with_name(path.name + ".meta.json"),
               {"machine": machine(), "versions": versions(), "command": command,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": len(df)})
    return path


def codec_list(spec: str) -> list[str]:
    """'all' -> every available codec; else a comma list, checked."""
    names = codecs.available() if spec == "all" else spec.split(",")
    for n in names:  # a valid recipe needs no registration (quant+match+huffman, ...)
        try:
            codecs.is_lossy(n)
        except ValueError:
            pass
    missing = [n for n in names if n not in codecs.available()]
    if missing:
        raise ValueError(f"codecs not available here: {missing}; available: {codecs.available()}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dumps", type=Path, help="folder of EMB dumps (manifest.json or EMB_<t>_iter_<k>.bin)")
    p.add_argument("--codecs", default="all", help="all | comma list (default all)")
    p.add_argument("--bounds", default="0.03",
                   help="comma list of relative bounds | dump | env | auto | fixed:EB | schedule JSON")
    p.add_argument("--decay-stage", type=int, help="snapshot index where a schedule's decay ends")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median)")
    p.add_argument("--dim", type=int, help="embedding dim (only for dumps without manifest.json)")
    p.add_argument("--out", type=Path, default=Path("results.csv"))


def main(args) -> int:
    bounds = Bounds(args.bounds, args.decay_stage, dumps.table_rows(args.dumps))
    df = bench(dump_items(args.dumps, bounds, args.dim), codec_list(args.codecs), args.repeat)
    write_results(df, args.out, ["dlrmcomp", *sys.argv[1:]])
    summary = codec_summary(df)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out} ({len(df)} rows) and {args.out.name}.meta.json")
    return 0
