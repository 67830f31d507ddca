"""Measured GPU numbers committed under ``benchmarks/data/``, read for the speed-up model.

- ``gpu_codecs_*.csv`` (``benchmarks/gpu_codecs.py``): one row per (payload, codec) with the
  ratio and the compress / decompress GB/s over the fp32 bytes; :func:`read_gpu_codecs` checks the
  columns and renames them to the model's ``cr, tc, td``; :func:`key_rates` picks the codecs that
  matter (:data:`KEY_CODECS`) for one payload.
- ``alltoall_*.json`` (``benchmarks/alltoall.py``): per (size, codec) the measured exchange and the
  model fed with the same run's throughputs and link bandwidth; :func:`read_alltoall` flattens them
  with the run's backend and world size (the fp32 baseline rows, which have no speed-up, dropped).

:data:`LINKS` are the nominal per-direction bandwidths of real interconnects, in GB/s.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .speedup import break_even, speedup

#: where the GPU benchmarks' committed results live (a source checkout; ``pip install -e .``)
DATA_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
GPU_CSV = DATA_DIR / "gpu_codecs_h200.csv"
ALLTOALL_JSON = (DATA_DIR / "alltoall_h200_gloo2.json", DATA_DIR / "alltoall_h200_nccl1.json")

#: nominal link bandwidths, GB/s per direction (25 GbE = 25 Gb/s / 8; NVLink 4: H100/H200, per GPU)
LINKS = {"25 GbE": 3.125, "100 GbE": 12.5, "IB HDR": 25.0, "IB NDR": 50.0, "NVLink 4": 450.0}

GPU_COLUMNS = {"date": "date", "device": "device", "payload": "payload", "eb": "eb", "codec": "codec",
               "ratio": "cr", "compress_gbps": "tc", "decompress_gbps": "td"}
ALLTOALL_COLUMNS = ("size_mb", "codec", "cr", "bandwidth_gbs", "tc_gbs", "td_gbs", "measured_speedup",
                    "model_speedup", "model_error")


@dataclass(frozen=True)
class KeyCodec:
    """A benchmark row worth a line: the CSV's codec name, the legend's label, a fixed colour."""
    codec: str
    label: str
    color: str
    linestyle: str = "-"


#: the codecs that matter, in legend order (keys are the notebook's ``GPU_CODECS``); * in a label:
#: quantization not counted (nvcomp runs on the int8 codes)
KEY_CODECS = {
    "ours-wire": KeyCodec("ours wire quant+ans L128 C64K S1 end-to-end",
                          "ours quant+ans, tensors in/out (all-to-all path)", "tab:red"),
    "ours-dedup": KeyCodec("frames gpu:quant+dedup+ans L128 C64K kernels only",
                           "ours quant+dedup+ans, kernels only", "tab:orange"),
    "nvcomp-ans": KeyCodec("nvcomp ANS", "nvcomp ANS on int8 codes*", "tab:blue"),
    "nvcomp-zstd": KeyCodec("nvcomp Zstd", "nvcomp Zstd on int8 codes*", "tab:green"),
    "nvcomp-bitcomp": KeyCodec("nvcomp Bitcomp", "nvcomp Bitcomp on int8 codes*", "tab:purple"),
    "nvcomp-lz4": KeyCodec("nvcomp LZ4", "nvcomp LZ4 on int8 codes*", "tab:olive"),
    "ours-frames-host": KeyCodec("frames gpu:quant+ans L128 bytes in and out",
                                 "ours quant+ans via host bytes (old path)", "tab:brown", "--"),
}
DEFAULT_KEYS = ("ours-wire", "ours-dedup", "nvcomp-ans", "nvcomp-zstd", "nvcomp-bitcomp", "ours-frames-host")

#: colours of the all-to-all's codecs (ours as its line above)
ALLTOALL_COLORS = {"gpu:quant+ans": "tab:red", "gpu:quant+dedup+ans": "tab:orange", "int8": "goldenrod",
                   "fp16": "tab:cyan", "bf16": "tab:pink"}


def read_gpu_codecs(path=GPU_CSV) -> pd.DataFrame:
    """A ``benchmarks/gpu_codecs.py`` CSV -> (date, device, payload, eb, codec, cr, tc, td, ...).

    Rows without a throughput (the order-0 entropy) keep NaN; a missing column raises ValueError.
    """
    df = pd.read_csv(path)
    missing = sorted(set(GPU_COLUMNS) - set(df.columns))
    if missing:
        raise ValueError(f"{path}: not a gpu_codecs.py CSV, missing columns {missing}")
    return df.rename(columns=GPU_COLUMNS)


def find_codec(df: pd.DataFrame, prefix: str, payload: str) -> pd.Series:
    """The one row of ``payload`` whose codec name starts with ``prefix`` (ValueError otherwise)."""
    rows = df[(df.payload == payload) & df.codec.str.startswith(prefix)]
    if len(rows) != 1:
        names = sorted(df[df.payload == payload].codec)
        raise ValueError(f"{len(rows)} rows of payload {payload!r} match codec {prefix!r}; codecs: {names}")
    return rows.iloc[0]


def key_rates(df: pd.DataFrame, payload: str = "design", keys=DEFAULT_KEYS) -> pd.DataFrame:
    """The key codecs of one payload: (key, codec = legend label, name = CSV codec, cr, tc, td, color,
    linestyle), in ``keys`` order, ready for the model and :func:`dlrmcomp.plots.bench.speedup_measured`."""
    unknown = [k for k in keys if k not in KEY_CODECS]
    if unknown:
        raise ValueError(f"unknown codec keys {unknown}; known: {list(KEY_CODECS)}")
    rows = []
    for key in keys:
        spec = KEY_CODECS[key]
        r = find_codec(df, spec.codec, payload)
        rows.append({"key": key, "codec": spec.label, "name": r.codec, "cr": float(r.cr), "tc": float(r.tc),
                     "td": float(r.td), "color": spec.color, "linestyle": spec.linestyle})
    return pd.DataFrame(rows)


def provenance(df: pd.DataFrame) -> dict:
    """Where the numbers come from: the CSV's dates and devices (joined when several)."""
    return {"date": ", ".join(sorted(df.date.dropna().astype(str).unique())),
            "device": ", ".join(sorted(df.device.dropna().astype(str).unique()))}


def read_alltoall(*paths) -> pd.DataFrame:
    """``benchmarks/alltoall.py`` JSON files -> one row per measured (run, size, codec): backend,
    world, tensors, device, size_mb, codec, cr, bandwidth_gbs, tc_gbs, td_gbs, measured_speedup,
    model_speedup, model_error, and ``model_check`` (the model recomputed here from the row's cr,
    throughputs and bandwidth). The fp32 baseline rows (speed-up 1 by definition) are dropped."""
    frames = []
    for path in paths or ALLTOALL_JSON:
        run = json.loads(Path(path).read_text())
        if "results" not in run or "backend" not in run:
            raise ValueError(f"{path}: not a benchmarks/alltoall.py result (needs 'backend' and 'results')")
        df = pd.DataFrame(run["results"])
        if "measured_speedup" not in df:
            raise ValueError(f"{path}: no measured rows (was the fp32 baseline run?)")
        df = df[df.measured_speedup.notna()]
        missing = sorted(set(ALLTOALL_COLUMNS) - set(df.columns))
        if missing:
            raise ValueError(f"{path}: missing fields {missing}")
        df = df[list(ALLTOALL_COLUMNS)].assign(
            backend=run["backend"], world=int(run.get("world", 0)), tensors=run.get("tensors", ""),
            device=run.get("device", ""), source=Path(path).name)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["model_check"] = speedup(out.cr, out.tc_gbs, out.td_gbs, out.bandwidth_gbs)
    first = ["backend", "world", "tensors", "device", "source"]
    return out[first + [c for c in out.columns if c not in first]]


def run_label(backend: str, world: int, tensors: str = "cuda") -> str:
    """A reader's name for an all-to-all run: what link the bytes crossed."""
    if backend == "gloo" and tensors == "cuda":
        return f"gloo, {world} ranks on one GPU (TCP via host)"
    if backend == "nccl" and world == 1:
        return "NCCL, 1 rank (on-device copy)"
    return f"{backend}, {world} ranks"


def at_links(rates: pd.DataFrame, links: dict = LINKS, pipelined: bool = False, by: str = "codec") -> dict:
    """{rates[by]: {link: speed-up}} of the rates at each link's bandwidth."""
    return {getattr(r, by): {name: float(speedup(r.cr, r.tc, r.td, b, pipelined)) for name, b in links.items()}
            for r in rates.itertuples()}


def break_evens(rates: pd.DataFrame, pipelined: bool = False, by: str = "codec") -> dict:
    """{rates[by]: bandwidth (GB/s) below which compressing pays}."""
    return {getattr(r, by): float(break_even(r.cr, r.tc, r.td, pipelined)) for r in rates.itertuples()}


def figure_title(gpu: pd.DataFrame, payload: str) -> str:
    """What the measured figure shows, and from which run."""
    p = provenance(gpu)
    eb = gpu[gpu.payload == payload].eb.dropna().unique()
    bound = f", eb {', '.join(f'{e:g}' for e in eb)} rel" if len(eb) else ""
    return (f"speed-up of the embedding all-to-all vs link bandwidth, from codec throughputs measured on "
            f"{p['device']} ({p['date']})\n{payload} payload{bound}; sequential model (compress, send, decompress)")


def bandwidth_options(extra=(), links: dict = LINKS) -> list[tuple[str, float]]:
    """(label, GB/s) choices for a bandwidth slider: a 1-2-5 grid from 0.1 to 1000, the links
    (labelled with their names) and ``extra`` values, sorted and without duplicates."""
    values = {float(v): format_gbps(v) for v in np.outer([1.0, 2.0, 5.0], 10.0 ** np.arange(-1, 4)).ravel()
              if v <= 1000}
    values.update({float(v): format_gbps(v) for v in extra})
    values.update({float(b): f"{format_gbps(b)} ({name})" for name, b in links.items()})
    return [(label, v) for v, label in sorted(values.items())]


def format_gbps(b: float) -> str:
    """A bandwidth as a reader writes it, never more than 3 significant digits: '12.6' (not
    '12.5893'), '3.1', '0.25', '450', '1,878'."""
    b = float(b)
    if b >= 100:
        return f"{b:,.0f}"
    return f"{b:.3g}" if b >= 10 else f"{b:.2g}"
