"""Hot/cold training measured (issue 15; what notebook 06 and ``benchmarks/hotcold.py`` call).

- :func:`hot_fractions`: hot rows, Lambda and the hot fraction of the inputs per memory budget.
- :func:`compare`: baseline, FAE and Slipstream trained on the same epoch inputs, seed and epochs:
  AUC, time per epoch, hot fraction, Lambda, T, skipped fraction and overheads. On a GPU a fourth
  row, ``host``, is the baseline with the tables in host memory (FAE with a zero budget: every
  input cold), the one FAE is meant to beat.
- :func:`drop_sweep`: the skipped fraction against the target D, from one run's snapshots.
- :func:`payload_ratios`: the all-to-all payload of hot and of cold batches through a codec.

Time per epoch is the steps' own seconds (forward, backward, optimizer; the ``comm`` records'
``step_s``: their median times their number, robust to other processes on a shared machine)
plus the schedule's overheads (hot-table copies in and out, snapshots, threshold search,
classification), divided by the epochs: batch loading and evaluation are left out of every row
alike. ``epoch_cpu_s`` is the process's CPU seconds of the whole run (one torch thread; the final
evaluation included) per epoch: on a CPU shared with other jobs it is the steadier clock, and the
speedups on the CPU use it (on a GPU: ``epoch_s``). ``wall_s`` is the whole run.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.samples import sample_spec
from ..data.synthetic import SyntheticCriteo
from ..hotcold import EpochInputs, droppable, epoch_batches, profile_inputs, threshold_for_drop
from ..train import Trainer, make_data, profile_config, read_jsonl

#: run sizes: the training comparison's data and steps, the budgets profiled, the D values swept
PROFILES = {
    "smoke": dict(iters=80, batch_size=128, scale=1e-3, test_size=4096, real_epochs=1, profile_scale=1e-2,
                  profile_batches=40, budgets=("1MiB", "4MiB", "16MiB", "64MiB"), drops=(0.1, 0.3, 0.5),
                  datasets=("synthetic",)),
    "demo": dict(iters=1000, batch_size=256, scale=1e-2, test_size=20000, real_epochs=8, profile_scale=1.0,
                 profile_batches=1000, budgets=("1MiB", "4MiB", "16MiB", "64MiB", "256MiB", "1GiB"),
                 drops=(0.1, 0.2, 0.3, 0.5, 0.7), datasets=("synthetic", "criteo", "avazu")),
    "full": dict(iters=4000, batch_size=512, scale=1e-1, test_size=50000, real_epochs=16, profile_scale=1.0,
                 profile_batches=4000, budgets=("1MiB", "4MiB", "16MiB", "64MiB", "256MiB", "1GiB"),
                 drops=(0.1, 0.2, 0.3, 0.5, 0.7), datasets=("synthetic", "criteo", "avazu")),
}

#: training knobs every comparison run shares (the seeds' Slipstream values, a window scaled to the runs)
SLIPSTREAM = dict(target_drop=0.3, starting_minibatch=1000, minibatch_percentage=0.03, sample_rate=0.001)


def data_spec(name: str) -> str | None:
    """``TrainConfig.data`` of a data set name (None when its sample files are absent)."""
    return "synthetic" if name == "synthetic" else sample_spec(name)


def run_config(profile: str, name: str, **changes):
    """The comparison's :class:`~dlrmcomp.train.TrainConfig` for data set ``name`` (None if absent):
    real samples train ``real_epochs`` epochs of 128-input batches and profile every input (they
    hold 7-8K inputs: the seeds' 5% would count ~380)."""
    size = PROFILES[profile]
    spec = data_spec(name)
    if spec is None:
        return None
    cfg = profile_config("smoke", data=spec, scale=size["scale"], test_size=size["test_size"], iters=size["iters"],
                         batch_size=size["batch_size"], dump_every=0, log_every=50, eval_every=10 ** 9, **SLIPSTREAM)
    if name != "synthetic":
        cfg = cfg.replace(batch_size=128, ip_sampling_rate=1.0)
        cfg = cfg.replace(iters=size["real_epochs"] * epoch_batches(make_data(cfg), 128, cfg.iters))
    return cfg.replace(**changes)


def hot_fractions(ids: np.ndarray, table_sizes, budgets, dim: int = 16, ip_sampling_rate: float = 0.05,
                  seed: int = 0) -> pd.DataFrame:
    """Per budget: hot rows, Lambda, hot fraction of the inputs ``ids`` [N, T] and profile seconds
    with ``ip_sampling_rate`` of the inputs counted, and the hot fraction when all are counted."""
    rows = []
    for budget in budgets:
        info = profile_inputs(ids, table_sizes, dim, budget, ip_sampling_rate, seed).info()
        every = profile_inputs(ids, table_sizes, dim, budget, 1.0, seed).info()
        rows.append({"budget": budget, **{k: info[k] for k in ("budget_bytes", "hot_rows", "lambda", "hot_fraction",
                                                               "profile_s")},
                     "hot_rows_all_counted": every["hot_rows"], "lambda_all_counted": every["lambda"],
                     "hot_fraction_all_counted": every["hot_fraction"]})
    return pd.DataFrame(rows)


def synthetic_ids(scale: float, n_batches: int, batch_size: int = 512, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """(ids [n_batches * batch_size, 26], table sizes) of the synthetic stream at ``scale`` (1 = the
    full Criteo Kaggle cardinalities)."""
    data = SyntheticCriteo(scale=scale, test_size=16, seed=seed)
    return EpochInputs(data, batch_size, n_batches).ids, data.table_sizes


def epoch_seconds(run_dir: Path, summary: dict, epochs: int) -> float:
    """(median step seconds x steps + the hot/cold overheads) / epochs; see the module docstring."""
    step_s = read_jsonl(run_dir / "log.jsonl").query("kind == 'comm'")["step_s"]
    steps = step_s.median() * step_s.size
    hc = summary.get("hotcold") or {}
    overhead = sum(hc.get(k, 0.0) for k in ("sync_in_s", "sync_out_s", "slipstream_overhead_s"))
    return float(steps + overhead) / epochs


def _row(mode: str, run_dir: Path, summary: dict, epochs: int, cpu_s: float) -> dict:
    hc = summary.get("hotcold") or {}
    return {"mode": mode, "test_auc": summary["test_auc"], "iterations": summary["iterations"], "epochs": epochs,
            "epoch_s": epoch_seconds(run_dir, summary, epochs), "epoch_cpu_s": cpu_s / epochs,
            "wall_s": summary["seconds"],
            "hot_fraction": hc.get("hot_fraction"), "lambda": hc.get("lambda"),
            "T": hc["T"][0] if hc.get("T") else None, "skipped_fraction": hc.get("skipped_fraction"),
            "sync_s": hc.get("sync_in_s", 0.0) + hc.get("sync_out_s", 0.0) if hc else None,
            "slipstream_overhead_s": hc.get("slipstream_overhead_s") if hc else None}


def speed_clock(device: str) -> str:
    """The time-per-epoch column the speedups use on ``device`` (see the module docstring)."""
    return "epoch_s" if torch.device(device).type == "cuda" else "epoch_cpu_s"


def compare(cfg, device: str = "cpu", out_dir=None, modes=("all", "fae", "slipstream"),
            repeat: int = 1) -> tuple[pd.DataFrame, dict]:
    """Train ``modes`` on the same epoch inputs (``cfg`` with ``inputs`` replaced); on a GPU also
    ``host`` (see the module docstring). ``repeat``: rounds over the modes, each time keeping its
    fastest (the runs are deterministic: only the clocks differ). (table with speedups and AUC
    deltas, the last round's trainers by mode)."""
    out = Path(out_dir or tempfile.mkdtemp(prefix="hotcold_"))
    data = make_data(cfg)
    inputs = EpochInputs(data, cfg.batch_size, epoch_batches(data, cfg.batch_size, cfg.iters))
    epochs = max(1, round(cfg.iters / max(1, len(inputs) // cfg.batch_size)))
    runs = [(m, cfg.replace(inputs=m)) for m in modes]
    if torch.device(device).type == "cuda":
        runs.insert(1, ("host", cfg.replace(inputs="fae", hot_budget="0")))
    rows, trainers = [], {}
    for r in range(repeat):
        for mode, run_cfg in runs:
            run_dir = out / (f"{mode}_{r}" if r else mode)
            trainer = Trainer(run_cfg, run_dir, data=inputs, device=device)
            cpu0 = time.process_time()
            summary = trainer.run(progress=False)
            rows.append(_row(mode, run_dir, summary, epochs, time.process_time() - cpu0))
            trainers[mode] = trainer
    clocks = ("epoch_s", "epoch_cpu_s", "wall_s")
    df = pd.DataFrame(rows)
    df = df.groupby("mode", sort=False).agg({c: "min" if c in clocks else "first" for c in df.columns[1:]})
    df["auc_minus_baseline"] = df.test_auc - df.test_auc["all"]
    clock = df[speed_clock(device)]
    if "fae" in df.index:
        df["speedup_vs_fae"] = clock["fae"] / clock
    df["speedup_vs_baseline"] = clock["host" if "host" in df.index else "all"] / clock
    return df.reset_index(), trainers


def drop_sweep(trainer, targets) -> pd.DataFrame:
    """Skipped fraction of the remaining hot inputs against the target D, for the change and
    inputs of ``trainer``'s (a Slipstream run's) last decision; T bisected per D as in training."""
    skipper = trainer.hotcold.skipper
    change, inputs, sample = skipper.last
    rows = []
    for d in targets:
        t, frac = threshold_for_drop(change, sample, d, skipper.alpha)
        rows.append({"target_drop": d, "T": t, "sample_drop": frac,
                     "skipped_fraction": float(droppable(change, inputs, t, skipper.alpha).mean())})
    return pd.DataFrame(rows)


def payload_ratios(trainer, codec: str = "quant+dedup+ans", eb: float = 0.01, batches: int = 4) -> pd.DataFrame:
    """Ratio (raw fp32 bytes / frame bytes) of the pooled-embedding payload [B, D] per table of up
    to ``batches`` hot and cold batches of a hot/cold ``trainer``'s epoch (split by the seeds' 5%
    profile at its budget), through its trained tables, with ``codec`` and with index-aware dedup
    (distinct rows per table: what dedup before the exchange would send)."""
    from .. import codecs
    from ..dist.model import dedup_savings

    cfg, inputs, b = trainer.cfg, trainer.hotcold.inputs, trainer.cfg.batch_size
    split = profile_inputs(inputs.ids, inputs.table_sizes, trainer.model.dim, cfg.hot_budget, 0.05, cfg.seed)
    coder = codecs.get(codec, eb=eb)
    rows = []
    for kind, idx in (("hot", split.hot_inputs), ("cold", split.cold_inputs)):
        for k in range(min(batches, len(idx) // b)):
            batch = inputs.take(idx[k * b:(k + 1) * b])
            with torch.no_grad():
                pooled = trainer.model.local_pooled(batch).cpu().numpy()
            raw = sum(p.nbytes for p in pooled)
            sent = sum(len(coder.encode(np.ascontiguousarray(p))) for p in pooled)
            rows.append({"batch": kind, "codec": codec, "ratio": raw / sent,
                         "index_dedup_ratio": dedup_savings(batch, 1)["ratio"]})
    return pd.DataFrame(rows).groupby(["batch", "codec"], as_index=False).mean()
