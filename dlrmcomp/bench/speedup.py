"""The speed-up model of compressed communication (the seed's ``speedup_calculation.py``, extended).

Per fp32 byte, in units of the time to send it uncompressed (D/B), the stages cost:
quantize B/Tq, encode B/Tc, send 1/CR, decode B/Td, dequantize B/Tdq (B, T* in the same
units, e.g. GB/s; Tq = Tdq = inf when quantization is inside Tc/Td, as in ``dlrmcomp bench``).

- sequential (the seed): ``S = 1 / (1/CR + B (1/Tc + 1/Td + 1/Tq + 1/Tdq))``
- pipelined (chunks overlap the stages): ``S = 1 / max(stage costs)`` >= sequential
- hybrid (the artifact's ``cr_log.py``): per table, the codec with the larger S
- end to end (Amdahl): a share f of the iteration in the all-to-all gives ``1 / (1 - f + f/S)``
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .benchmark import harmonic, split_bounds, table_summary


def stage_costs(cr, tc, td, bandwidth, tq=np.inf, tdq=np.inf) -> np.ndarray:
    """[5, ...] costs of quantize, encode, send, decode, dequantize per unit of uncompressed send time."""
    b = np.asarray(bandwidth, dtype=np.float64)
    return np.stack(np.broadcast_arrays(b / tq, b / tc, 1 / np.asarray(cr, dtype=np.float64), b / td, b / tdq))


def speedup(cr, tc, td, bandwidth, pipelined: bool = False, tq=np.inf, tdq=np.inf):
    """Speed-up of sending compressed data over sending it raw (arrays broadcast; float for scalars)."""
    cr, tc, td, b = (np.asarray(v, dtype=np.float64) for v in (cr, tc, td, bandwidth))
    if pipelined:
        s = 1 / stage_costs(cr, tc, td, b, tq, tdq).max(axis=0)
    else:
        s = 1 / (1 / cr + b * (1 / tc + 1 / td + 1 / np.float64(tq) + 1 / np.float64(tdq)))
    return float(s) if np.ndim(s) == 0 else s


def break_even(cr, tc, td, pipelined: bool = False, tq=np.inf, tdq=np.inf):
    """The bandwidth below which compression pays (S > 1); 0 when it never does (CR <= 1)."""
    cr = np.asarray(cr, dtype=np.float64)
    inv = np.stack(np.broadcast_arrays(1 / np.float64(tq), 1 / np.asarray(tc, float), 1 / np.asarray(td, float),
                                       1 / np.float64(tdq)))
    b = 1 / inv.max(axis=0) if pipelined else (1 - 1 / cr) / inv.sum(axis=0)
    b = np.where(cr > 1, b, 0.0)
    return float(b) if np.ndim(b) == 0 else b


def end_to_end(s, share):
    """Amdahl: iteration speed-up when a fraction ``share`` of it is communication sped up by ``s``."""
    s, f = np.asarray(s, dtype=np.float64), np.asarray(share, dtype=np.float64)
    out = 1 / (1 - f + f / s)
    return float(out) if np.ndim(out) == 0 else out


def comm_share(bytes_per_iteration: float, bandwidth_gbps: float, iteration_seconds: float) -> float:
    """Share of an iteration spent sending ``bytes_per_iteration`` raw at ``bandwidth_gbps`` (<= 1)."""
    return min(1.0, bytes_per_iteration / (bandwidth_gbps * 1e9) / iteration_seconds)


def comm_share_from_log(path) -> float:
    """Share of iteration time in the all-to-all, from a ``dlrmcomp train --nproc`` log: the mean over
    its ``comm`` records of (encode + exchange + decode, both directions) / iteration seconds, at
    most 1 (the comm times are the slowest rank's, the iteration time rank 0's). Take it from an
    uncompressed (fp32) run for Amdahl's ``share``."""
    shares = []
    for line in Path(path).read_text().splitlines():
        rec = json.loads(line) if line.strip() else {}
        if rec.get("kind") == "comm" and rec.get("step_s"):
            comm = sum(d["encode_s"] + d["exchange_s"] + d["decode_s"] for d in rec.values() if isinstance(d, dict))
            shares.append(min(1.0, comm / rec["step_s"]))
    if not shares:
        raise ValueError(f"{path}: no comm records with step times (is it a distributed training log?)")
    return float(np.mean(shares))


def per_table(results: pd.DataFrame, bandwidth: float, pipelined: bool = False, tq=np.inf, tdq=np.inf) -> pd.DataFrame:
    """results (codec, table, cr, tc, td) -> the same with ``speedup`` at ``bandwidth``."""
    out = results.copy()
    out["speedup"] = speedup(out.cr, out.tc, out.td, bandwidth, pipelined, tq, tdq)
    return out


def hybrid(rated: pd.DataFrame) -> pd.DataFrame:
    """Per table, the row of the codec with the largest speed-up (the artifact's hybrid encoder)."""
    best = rated.loc[rated.groupby("table")["speedup"].idxmax()]
    return best.sort_values("table").reset_index(drop=True)


def overall(speedups, weights=None) -> float:
    """Speed-up of sending all tables (weights = raw bytes per table; equal by default)."""
    s = np.asarray(speedups, dtype=np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(w.sum() / (w / s).sum())


def from_bench(df: pd.DataFrame) -> pd.DataFrame:
    """``dlrmcomp bench`` rows -> (codec, table, cr, tc, td) harmonic means over snapshots."""
    measured = df[df.codec != "entropy0"]
    summary = table_summary(split_bounds(measured))
    return summary.rename(columns={"ratio": "cr", "compress_gbps": "tc", "decompress_gbps": "td"})[
        ["codec", "table", "cr", "tc", "td"]]


def codec_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """Per-table (codec, table, cr, tc, td) -> per codec, harmonic means over tables."""
    return rates.groupby("codec", sort=False)[["cr", "tc", "td"]].agg(harmonic).reset_index()


def select(rates: pd.DataFrame, codecs=None, eb: float | None = None) -> pd.DataFrame:
    """The rows of ``codecs`` (all when None) at the bound ``eb``.

    Where a bench swept several bounds the names are ``codec@eb`` (:func:`benchmark.split_bounds`):
    with ``eb`` given, only that bound's rows stay, named ``codec``; names without a bound always
    match. ValueError when nothing is left (the message lists what there was).
    """
    parts = rates.codec.astype(str).str.split("@", n=1)
    base = parts.str[0]
    keep = pd.Series(True, index=rates.index)
    if eb is not None:
        bound = pd.to_numeric(parts.str[1], errors="coerce")
        keep &= bound.isna() | np.isclose(bound, eb, rtol=1e-9, atol=0)
    if codecs is not None:
        keep &= base.isin(list(codecs))
    out = rates[keep].assign(codec=base[keep] if eb is not None else rates.codec[keep])
    if out.empty:
        raise ValueError(f"no rates for codecs {codecs} at eb {eb}; there are {sorted(set(rates.codec))}")
    return out.reset_index(drop=True)


def load_results(path) -> pd.DataFrame:
    """(codec, table, cr, tc, td) from a bench CSV, a ``dlrmcomp parse`` CSV or a seed ``cr tc td`` file."""
    path = Path(path)
    if path.suffix != ".csv":
        df = pd.read_csv(path, sep=" ", header=None, names=["cr", "tc", "td"])
        return df.assign(codec=path.stem, table=range(len(df)))[["codec", "table", "cr", "tc", "td"]]
    df = pd.read_csv(path)
    if "compress_gbps" in df:
        return from_bench(df)
    return df.assign(codec=path.stem)[["codec", "table", "cr", "tc", "td"]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, nargs="+", help="bench CSV, parse CSV or seed 'cr tc td' files")
    p.add_argument("--bandwidth", type=float, required=True, help="network bandwidth, GB/s")
    p.add_argument("--pipelined", action="store_true", help="overlap the stages (slowest stage bounds)")
    p.add_argument("--quant-gbps", type=float, default=np.inf,
                   help="(de)quantization throughput when the results exclude it (external tools)")
    share = p.add_mutually_exclusive_group()
    share.add_argument("--share", type=float, help="share of the iteration in the all-to-all, for Amdahl")
    share.add_argument("--share-from", type=Path, metavar="LOG",
                       help="take the share from a distributed training log.jsonl (an fp32 run)")


def main(args) -> int:
    results = pd.concat([load_results(p) for p in args.results], ignore_index=True)
    if args.share_from is not None:
        args.share = comm_share_from_log(args.share_from)
        print(f"all-to-all share of the iteration (from {args.share_from}): {args.share:.4f}")
    rated = per_table(results, args.bandwidth, args.pipelined, args.quant_gbps, args.quant_gbps)
    best = hybrid(rated)
    fmt = {"float_format": lambda v: f"{v:.4f}", "index": False}
    print(rated.pivot(index="table", columns="codec", values="speedup").to_string(float_format=fmt["float_format"]))
    print("\nhybrid (best codec per table):")
    print(best[["table", "codec", "cr", "speedup"]].to_string(**fmt))
    lines = {c: overall(g.speedup) for c, g in rated.groupby("codec")} | {"hybrid": overall(best.speedup)}
    for name, s in lines.items():
        e2e = f", end to end {end_to_end(s, args.share):.4f}" if args.share is not None else ""
        print(f"{name}: speed-up {s:.4f}{e2e}")
    return 0
