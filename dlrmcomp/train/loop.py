"""The trainer, the same at every world size: data -> sharded DLRM -> the embedding all-to-all
through one ``CommCodec`` a direction -> SGD/Adagrad, with evaluation, JSONL logging, EMB dumps,
``summary.json`` and (one process) checkpoint/resume."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import CriteoData, DumpWriter, SyntheticCriteo
from ..dist.alltoall import Clock, Comm, RankFailure, is_comm_error
from ..dist.comms import QCommsConfig
from ..dist.model import ShardedDLRM, local_sizes, plan_tables, table_costs
from ..dist.train import all_gather, all_reduce, gather, world_info
from ..errorbound import SEEDS_EARLY_STAGE, EBSchedule
from ..io import write_json
from ..dist.pipeline import PipelineConfig, TableWisePipeline, plan_groups, unique_costs
from ..models import DLRM, PRESETS, TTConfig
from .device import DeviceFeed, resolve_device
from .logs import JsonlLog
from .metrics import binary_metrics

#: ``compression``: none (fp32 both ways), simulate (the seeds' quantize-dequantize), codec (real bytes)
MODES = ("none", "simulate", "codec")


@dataclass
class TrainConfig:
    """Everything a run depends on (saved in ``summary.json`` and the checkpoint).

    ``data``: "synthetic", "criteo:TRAIN[,TEST]" or "avazu:TRAIN[,TEST]" (no TEST: the last 10% of TRAIN).
    ``compression``: one of :data:`MODES`; it picks the all-to-all codecs (:func:`comm_specs`),
    which ``fwd_comm`` / ``bwd_comm`` override (fp32 | simulate | fp16 | bf16 | int8 | a codec).
    ``schedule``: "env" | "auto" | "fixed:EB" | a JSON file (see ``EBSchedule.load``); ``auto``'s
    decay follows the run (:func:`~dlrmcomp.errorbound.run_early_stage`: a fifth of ``iters``, at
    most the seeds' 65,536); ``early_stage`` overrides any schedule's decay length (None keeps it).
    ``dedup``: index-aware dedup of the forward payload; ``shard_by``: "size" | "lookup" |
    "unique" (the table-wise sharding cost with several ranks). ``embedding`` "tt": tables of
    ``tt_min_rows`` rows or more as TT cores of ``tt_ranks`` (:func:`tt_config`);
    ``pipeline_*``: EcoRec's table-wise pipeline of the all-to-all.
    """

    preset: str = "tiny"
    data: str = "synthetic"
    scale: float = 1e-3
    zipf: float = 1.2
    test_size: int = 20000
    iters: int = 1000
    batch_size: int = 256
    lr: float = 0.1
    optimizer: str = "sgd"
    eval_every: int = 250
    log_every: int = 50
    test_batch_size: int = 16384
    compression: str = "none"
    codec: str = "quant+ans"
    schedule: str = "auto"
    early_stage: int | None = None
    grad_codec: str | None = None
    grad_schedule: str | None = None
    fwd_comm: str | None = None
    bwd_comm: str | None = None
    dedup: bool = False
    shard_by: str = "size"
    dump_every: int = 0
    checkpoint_every: int = 0
    seed: int = 0
    threads: int = 1  # torch intra-op threads: 1 is fastest for the small CPU presets
    # hot/cold training (seed 004, :mod:`dlrmcomp.hotcold`): inputs all | fae | slipstream
    inputs: str = "all"
    hot_budget: str = "256MiB"  # FAE: hot-table memory; hot rows = budget // (4 * dim)
    ip_sampling_rate: float = 0.05  # FAE: fraction of the inputs the profiler counts
    hot_split: str | None = None  # a saved split folder (RUN/hotcold) to reuse instead of profiling
    target_drop: float = 0.3  # Slipstream: D, the droppable fraction T is bisected toward
    alpha: int | None = None  # Slipstream: stale lookups that make an input droppable (None: all fields)
    sample_rate: float = 0.001  # Slipstream: fraction of the hot inputs sampled for the search of T
    starting_minibatch: int = 1000  # Slipstream: first snapshot (capped at a quarter of the hot batches)
    minibatch_percentage: float = 0.03  # Slipstream: hot batches between the two snapshots
    # TT embeddings (seed 003, :mod:`dlrmcomp.models.tt`): tables of tt_min_rows rows or more as TT cores
    embedding: str = "dense"  # dense | tt
    tt_ranks: str = "16,16"  # r1,r2
    tt_min_rows: int = 1000
    tt_chunks: int = 1  # micro-batches of the unique indices (each at least 20,000)
    # EcoRec's table-wise pipeline (:mod:`dlrmcomp.dist.pipeline`): groups a rank (0: one all-to-all)
    pipeline_groups: int = 0
    pipeline_overlap: bool = True  # False: the same groups one after another (the baseline)
    pipeline_reorder: bool = True  # each rank's cheap tables (fewest unique indices) first
    pipeline_skew: float = 0.0  # slope of the group sizes in [0, 1]

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def make_data(cfg: TrainConfig):
    """The data source named by ``cfg.data``."""
    if cfg.data == "synthetic":
        return SyntheticCriteo(scale=cfg.scale, zipf=cfg.zipf, test_size=cfg.test_size, seed=cfg.seed)
    if cfg.data.startswith("criteo:"):
        paths = cfg.data.split(":", 1)[1].split(",")
        return CriteoData(paths[0], paths[1] if len(paths) > 1 else None)
    if cfg.data.startswith("avazu:"):
        from ..data.avazu import AvazuData

        paths = cfg.data.split(":", 1)[1].split(",")
        return AvazuData(paths[0], paths[1] if len(paths) > 1 else None)
    if cfg.data.startswith("npz:"):
        from ..data import NpzData

        return NpzData(cfg.data.split(":", 1)[1])
    raise ValueError("data must be 'synthetic', 'criteo:TRAIN[,TEST]', 'avazu:TRAIN[,TEST]' or 'npz:PATH' (the "
                     "reference DLRM's processed .npz, or its raw-data path with the day files beside it), "
                     f"got {cfg.data!r}")


def comm_specs(cfg: TrainConfig) -> tuple[str, str]:
    """(forward, backward) all-to-all codecs of a config: ``fwd_comm`` / ``bwd_comm`` when set,
    else from ``compression``: none -> fp32 both ways; simulate -> simulate (the gradient too,
    at ``grad_schedule``, when ``grad_codec`` is set); codec -> ``codec`` (backward ``grad_codec``,
    else fp32)."""
    if cfg.compression not in MODES:
        raise ValueError(f"compression mode must be one of {MODES}, got {cfg.compression!r}")
    forward = {"none": "fp32", "simulate": "simulate", "codec": cfg.codec}[cfg.compression]
    backward = "fp32"
    if cfg.compression != "none" and cfg.grad_codec:
        backward = "simulate" if cfg.compression == "simulate" else cfg.grad_codec
    return cfg.fwd_comm or forward, cfg.bwd_comm or backward


def tt_config(cfg: TrainConfig) -> TTConfig | None:
    """The TT tables of a config (None: dense tables)."""
    if cfg.embedding not in ("dense", "tt"):
        raise ValueError(f"embedding must be 'dense' or 'tt', got {cfg.embedding!r}")
    if cfg.embedding == "dense":
        return None
    if cfg.inputs != "all":
        raise ValueError(f"inputs {cfg.inputs!r}: hot/cold training needs dense tables (embedding 'dense')")
    ranks = tuple(int(r) for r in str(cfg.tt_ranks).split(","))
    return TTConfig(ranks, cfg.tt_min_rows, chunks=cfg.tt_chunks)


def make_schedule(spec: str, table_sizes, early_stage: int | None, iters: int | None = None) -> EBSchedule:
    schedule = EBSchedule.load(spec, table_sizes=table_sizes, iters=iters)
    return dataclasses.replace(schedule, early_stage=early_stage) if early_stage else schedule


def make_optimizer(name: str, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(model.parameters(), lr=lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adagrad', got {name!r}")


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, batch_size: int = 16384, device: torch.device | None = None,
             gather_probs: Callable[[np.ndarray], list[np.ndarray]] | None = None) -> dict[str, float]:
    """Test-set AUC, accuracy and logloss of ``model(batch) -> logits`` (a :class:`DLRM`, or one
    rank's :class:`ShardedDLRM` with ``gather_probs`` joining the ranks' probabilities in rank
    order). The trainer evaluates without compression: the seeds skip it when testing."""
    model.eval()
    probs = []
    for b in data.test_batches(batch_size):
        p = torch.sigmoid(model(b if device is None else b.to(device))).cpu().numpy()
        probs.append(np.concatenate(gather_probs(p)) if gather_probs is not None else p)
    model.train()
    return binary_metrics(data.test_labels, np.concatenate(probs))


def _ratios(raw: np.ndarray, comp: np.ndarray) -> list[float | None]:
    return [float(r / c) if c else None for r, c in zip(raw, comp)]


class Trainer:
    """One run at any world size into ``out_dir``: ``log.jsonl``, ``summary.json``, ``dumps/`` and,
    with one process, ``checkpoint.pt``.

    Without a process group the world size is 1: one process holds every table and the
    all-to-all is a local pass through the codecs (no ``torch.distributed``). Inside one (call
    :func:`dlrmcomp.dist.train.init_process_group` first, or launch with ``dlrmcomp train
    --nproc N``) tables are sharded table-wise, the MLPs are data-parallel and every rank runs
    this class; rank 0 writes the files. At every world size the payload and its gradient go
    through the ``CommCodec`` of each direction (:func:`comm_specs`), and ``log.jsonl`` has a
    ``comm`` record per iteration (bytes raw vs sent per table, summed over ranks; size-exchange
    bytes; encode / exchange / decode seconds, the slowest rank's; ``step_s``), a ``train`` record
    every ``log_every`` and an ``eval`` record every ``eval_every`` iterations. Bytes are counted
    where a codec encodes them or a collective moves them, so one process with fp32 or simulate
    counts none. ``device``: "auto" (the GPU when one is present), "cpu", "cuda[:N]".
    Checkpoint/resume is single-process: with several ranks it is refused.
    """

    def __init__(self, cfg: TrainConfig, out_dir, data=None, device: str | torch.device | None = None):
        if cfg.preset not in PRESETS:
            raise ValueError(f"unknown preset {cfg.preset!r}; choose from {sorted(PRESETS)}")
        self.cfg, self.out = cfg, Path(out_dir)
        self.rank, self.world = world_info()
        if self.world > 1 and cfg.checkpoint_every:
            raise ValueError("checkpoint_every: checkpoint/resume is single-process (world size 1); "
                             "a distributed run cannot be resumed")
        self.device_spec = str(device or "auto")
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # events, streams and collectives go to this GPU
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self.data = data if data is not None else make_data(cfg)
        sizes = self.data.table_sizes
        n, dim = len(sizes), PRESETS[cfg.preset].dim
        torch.manual_seed(cfg.seed)
        full = DLRM.from_preset(cfg.preset, sizes, tt=tt_config(cfg))
        self.schedule = make_schedule(cfg.schedule, sizes, cfg.early_stage, cfg.iters)
        grad_schedule = make_schedule(cfg.grad_schedule, sizes, cfg.early_stage, cfg.iters) if cfg.grad_schedule else None
        self.qcomms = QCommsConfig(*comm_specs(cfg), self.schedule, grad_schedule or self.schedule, cfg.dedup)
        batch = self.data.batch(0, cfg.batch_size) if cfg.shard_by != "size" or cfg.pipeline_groups else None
        self.plan = plan_tables(table_costs(sizes, dim, cfg.shard_by, batch), self.world)
        self.comm = Comm(self.plan, self.rank, dim, n, *self.qcomms.codecs())
        pipeline = None
        if cfg.pipeline_groups:
            groups = plan_groups(self.plan, unique_costs(batch), PipelineConfig(
                cfg.pipeline_groups, cfg.pipeline_overlap, cfg.pipeline_reorder, cfg.pipeline_skew))
            pipeline = TableWisePipeline(self.comm, groups, cfg.pipeline_overlap, self.device)
        self.model = ShardedDLRM(full, self.comm, cfg.dedup, self.device, pipeline=pipeline)
        del full
        self.optimizer = make_optimizer(cfg.optimizer, self.model, cfg.lr)
        self.hotcold = None  # FAE / Slipstream's batch order and hot table (cfg.inputs != "all")
        if cfg.inputs != "all":
            if self.world > 1 or cfg.checkpoint_every:
                raise ValueError(f"inputs {cfg.inputs!r}: hot/cold training is one process without checkpoints")
            from ..hotcold import build_schedule

            self.hotcold = build_schedule(cfg, self.data, self.model, self.optimizer, self.device, self.out)
        self.dumps = DumpWriter(self.out / "dumps", sizes, dim, cfg.batch_size) \
            if cfg.dump_every and self.rank == 0 else None
        # run state: everything a checkpoint must carry besides model and optimizer
        self.state = {"iteration": 0, "window_loss": 0.0, "window_n": 0, "last_eval": None,
                      "bytes_raw": np.zeros(n, np.int64), "bytes_comp": np.zeros(n, np.int64),
                      "window_raw": np.zeros(n, np.int64), "window_comp": np.zeros(n, np.int64),
                      "grad_raw": np.zeros(n, np.int64), "grad_comp": np.zeros(n, np.int64)}
        self._loss: torch.Tensor | None = None  # loss summed on the device since the last flush
        self._pending: list = []  # (iteration, forward stats, backward stats, step clock) not yet logged

    def describe(self) -> str:
        """What the run does, in one line (printed at its start)."""
        cfg, s = self.cfg, self.schedule
        where = f"device {self.device}"
        if self.device_spec == "auto":
            where += " (auto: the GPU)" if self.device.type == "cuda" else " (auto: no GPU here)"
        line = (f"dlrmcomp train: world size {self.world}, {where}; all-to-all forward {self.qcomms.forward}, "
                f"backward {self.qcomms.backward}")
        if self.hotcold is not None:
            line += f"; {self.hotcold.describe()}"
        if getattr(self.comm.forward_codec, "schedule", None) is None:
            return line
        if s.decay == "constant":
            return f"{line}; schedule {cfg.schedule}: constant bounds"
        e = s.early_stage
        if cfg.early_stage:
            decay = f"the bounds decay over the first {e:,} iterations (--early-stage)"
        elif cfg.schedule == "auto":
            decay = (f"the bounds decay over the first {e:,} of {cfg.iters:,} iterations (auto: a fifth of "
                     f"the run, at most the seeds' {SEEDS_EARLY_STAGE:,})")
        elif e >= cfg.iters:
            decay = (f"the bounds decay over {e:,} iterations, longer than this run ({cfg.iters:,}): it never "
                     "reaches the base bounds")
        else:
            decay = f"the bounds decay over the first {e:,} of {cfg.iters:,} iterations"
        return f"{line}; schedule {cfg.schedule}: {decay}"

    # -- checkpoints (one process) --------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save({"config": dataclasses.asdict(self.cfg), "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "state": self.state,
                    "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self) -> None:
        ckpt = torch.load(self.checkpoint_path, weights_only=False, map_location=self.device)
        saved = {**ckpt["config"], "iters": self.cfg.iters}
        if saved != {**dataclasses.asdict(self.cfg), "iters": self.cfg.iters}:
            raise ValueError(f"{self.checkpoint_path} was written with a different config")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = ckpt["state"]
        torch.set_rng_state(ckpt["torch_rng"].cpu())

    # -- the loop ---------------------------------------------------------------------------
    def _local(self, batch_size: int) -> tuple[int, int]:
        """This rank's samples of the global batch: [a, b)."""
        starts = np.r_[0, np.cumsum(local_sizes(batch_size, self.world))]
        return int(starts[self.rank]), int(starts[self.rank + 1])

    def _bounds(self, it: int) -> list[float | None]:
        """The forward codec's relative bound per table at ``it`` (None without a schedule)."""
        schedule = getattr(self.comm.forward_codec, "schedule", None)
        n = len(self.data.table_sizes)
        return schedule.bounds(n, it) if schedule is not None else [None] * n

    def _dump(self, it: int, batch) -> None:
        """EMB dump of iteration ``it``: every table's pooled rows of the whole batch before the
        exchange (each rank's tables gathered on rank 0)."""
        with torch.no_grad():
            mine = {t: x.cpu().numpy() for t, x in zip(self.model.tables, self.model.local_pooled(batch))}
        parts = gather(mine, "EMB dump")
        if self.dumps is not None:
            pooled = {t: x for part in parts for t, x in part.items()}
            self.dumps.write(it // self.cfg.dump_every, it, [pooled[t] for t in sorted(pooled)], self._bounds(it))

    def _step(self, it: int, batch) -> None:
        self.comm.iteration = it
        a, b = self._local(batch.size)
        try:
            logits = self.model(batch)
            loss = F.binary_cross_entropy_with_logits(logits, batch.labels[a:b].to(self.device))
            self.optimizer.zero_grad()
            loss.backward()
        except Exception as exc:  # noqa: BLE001
            if self.world > 1 and is_comm_error(exc) and not isinstance(exc, RankFailure):
                raise RankFailure(f"rank {self.rank}: iteration {it} failed in a collective (a peer rank died or "
                                  f"stalled?): {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
            raise
        self.optimizer.step()
        part = loss.detach().double()  # the global batch's mean: this rank's share, summed at the flush
        if self.world > 1:
            part = part * ((b - a) / batch.size)
        self._loss = part if self._loss is None else self._loss + part

    def _flush(self, log: JsonlLog | None) -> None:
        """Fold the iterations since the last flush into the run state and write their ``comm``
        records: one wait for the device, and with several ranks one reduction each of the loss,
        the byte counts and the times."""
        s, pending, self._pending = self.state, self._pending, []
        if self._loss is not None:
            s["window_loss"] += float(all_reduce(self._loss, "loss").item())
            self._loss = None
        if not pending:
            return
        self.comm.check()
        n = len(self.data.table_sizes)
        taken = [(it, fwd.take(), bwd.take(), clock.seconds()[0]) for it, fwd, bwd, clock in pending]
        counts = [[v for d in (fwd, bwd) for v in (*d["bytes_raw"], *d["bytes_sent"], d["size_bytes"])]
                  for _, fwd, bwd, _ in taken]
        times = [[d[k] for d in (fwd, bwd) for k in ("encode_s", "exchange_s", "decode_s")] for _, fwd, bwd, _ in taken]
        counts = all_reduce(torch.tensor(counts, dtype=torch.float64, device=self.device), "comm bytes")
        times = all_reduce(torch.tensor(times, dtype=torch.float64, device=self.device), "comm times", "max")
        totals = {"forward": ("bytes_raw", "bytes_comp"), "backward": ("grad_raw", "grad_comp")}
        for (it, *_, step_s), c, t in zip(taken, counts.cpu().numpy().astype(np.int64), times.cpu().tolist()):
            rec = {"kind": "comm", "iteration": it + 1}
            for k, name in enumerate(("forward", "backward")):
                row = c[k * (2 * n + 1):(k + 1) * (2 * n + 1)]
                raw, sent = row[:n], row[n:2 * n]
                rec[name] = {"bytes_raw": int(raw.sum()), "bytes_sent": int(sent.sum()), "size_bytes": int(row[2 * n]),
                             "table_bytes_raw": raw.tolist(), "table_bytes_sent": sent.tolist(),
                             "encode_s": t[3 * k], "exchange_s": t[3 * k + 1], "decode_s": t[3 * k + 2]}
                s[totals[name][0]] += raw
                s[totals[name][1]] += sent
                if name == "forward":
                    s["window_raw"] += raw
                    s["window_comp"] += sent
            rec["step_s"] = step_s
            if log is not None:
                log.write(rec)

    def _log_train(self, log: JsonlLog | None, it: int) -> None:
        s = self.state
        if log is not None:
            log.write({"kind": "train", "iteration": it + 1, "loss": s["window_loss"] / max(s["window_n"], 1),
                       "eb": self._bounds(it), "ratio": _ratios(s["window_raw"], s["window_comp"]),
                       "bytes_raw": int(s["window_raw"].sum()), "bytes_comp": int(s["window_comp"].sum())})
        s["window_loss"], s["window_n"] = 0.0, 0
        s["window_raw"][:] = 0
        s["window_comp"][:] = 0

    def _check_start(self, resume: bool) -> None:
        """Rank 0 checks the output folder; every rank raises what it found (none waits for a failed one)."""
        if resume and self.world > 1:
            raise ValueError("resume: checkpoint/resume is single-process (world size 1); "
                             "a distributed run cannot be resumed")
        problem = None
        if self.rank == 0 and resume and not self.checkpoint_path.is_file():
            problem = f"nothing to resume: no checkpoint in {self.out} (train with checkpoint_every > 0)"
        elif self.rank == 0 and not resume and (self.out / "log.jsonl").exists():
            problem = f"{self.out} already holds a run; give a new output folder, or resume it"
        problem = next((p for p in all_gather(problem, "start") if p), None)
        if problem:
            raise ValueError(problem)

    def run(self, resume: bool = False, progress: bool = True, on_step: Callable[[int], None] | None = None,
            verbose: bool | None = None) -> dict:
        """Train to ``cfg.iters`` (from the checkpoint if ``resume`` and one exists); the summary.
        ``verbose`` (default: ``progress``) prints :meth:`describe` first (rank 0, stderr)."""
        cfg = self.cfg
        self._check_start(resume)
        if resume:
            self.load_checkpoint()
        s = self.state
        start = s["iteration"]
        lead = self.rank == 0
        log = JsonlLog(self.out / "log.jsonl", keep_until=start if start else None) if lead else None
        if self.dumps is not None:
            self.dumps.resume(start)
        if lead and (progress if verbose is None else verbose):
            print(self.describe(), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        torch.set_num_threads(cfg.threads)
        feed = DeviceFeed(self.data, cfg.batch_size, self.device, cfg.iters)
        batches = ((it, feed(it)) for it in range(start, cfg.iters)) if self.hotcold is None else \
            self.hotcold.batches(log)
        bar = tqdm(initial=start, total=self._steps(), disable=not (progress and lead),
                   desc=f"train {cfg.compression}", leave=False)
        try:
            for it, batch in batches:
                if cfg.dump_every and it % cfg.dump_every == 0:
                    self._dump(it, batch)
                clock = Clock(self.device)
                clock.mark()
                self._step(it, batch)
                clock.mark()
                self._pending.append((it, *self.comm.split_stats().values(), clock))
                s["window_n"] += 1
                s["iteration"] = it + 1
                done = it + 1 == self._steps()
                if (it + 1) % cfg.log_every == 0 or done:
                    self._flush(log)
                    self._log_train(log, it)
                if (it + 1) % cfg.eval_every == 0 or done:
                    s["last_eval"] = self.evaluate()
                    if log is not None:
                        log.write({"kind": "eval", "iteration": it + 1, **s["last_eval"]})
                    bar.set_postfix(auc=f"{s['last_eval']['auc']:.4f}")
                if cfg.checkpoint_every and ((it + 1) % cfg.checkpoint_every == 0 or done):
                    self._flush(log)
                    self.save_checkpoint()
                if on_step is not None:
                    on_step(it)
                bar.total = self._steps()
                bar.update()
        finally:
            feed.close()
            bar.close()
        self._flush(log)
        summary = self.summary(time.perf_counter() - t0)
        if self.hotcold is not None:
            summary["hotcold"] = self.hotcold.summary()
        if lead:
            write_json(self.out / "summary.json", summary)
        return summary

    def _steps(self) -> int:
        """Iterations of the run: ``cfg.iters``, or what the hot/cold schedule plans (Slipstream's
        skipping shortens it)."""
        return self.cfg.iters if self.hotcold is None else self.hotcold.steps

    def evaluate(self) -> dict[str, float]:
        """Test metrics of the current weights, the all-to-all uncompressed (the seeds test so)."""
        join = (lambda p: all_gather(p, "eval")) if self.world > 1 else None  # noqa: E731
        full = self.hotcold.table.full_tables() if self.hotcold is not None else contextlib.nullcontext()
        with self.comm.uncompressed(), full:
            return evaluate(self.model, self.data, self.cfg.test_batch_size, self.device, join)

    def summary(self, seconds: float) -> dict:
        s = self.state
        raw, comp = int(s["bytes_raw"].sum()), int(s["bytes_comp"].sum())
        g_raw, g_comp = int(s["grad_raw"].sum()), int(s["grad_comp"].sum())
        final = s["last_eval"] or self.evaluate()
        return {"test_auc": final["auc"], "test_accuracy": final["accuracy"], "test_logloss": final["logloss"],
                "bayes_auc": self.data.bayes_auc, "iterations": s["iteration"], "seconds": seconds,
                "mean_ratio": raw / comp if comp else None, "table_ratios": _ratios(s["bytes_raw"], s["bytes_comp"]),
                "bytes_raw": raw, "bytes_compressed": comp,
                "grad_bytes_raw": g_raw, "grad_bytes_compressed": g_comp,
                "grad_mean_ratio": g_raw / g_comp if g_comp else None,
                "world": self.world, "device": str(self.device), "plan": self.plan,
                "qcomms": {"forward": self.qcomms.forward, "backward": self.qcomms.backward, "dedup": self.qcomms.dedup},
                "table_sizes": list(self.data.table_sizes), "config": dataclasses.asdict(self.cfg),
                "schedule": self.schedule.to_dict() if getattr(self.comm.forward_codec, "schedule", None) else None}

    def state_dict_full(self) -> dict[str, torch.Tensor]:
        """Every table's rows (gathered from the ranks) and the MLP weights on the CPU, keyed like
        a :class:`DLRM`'s ``state_dict`` (the same at every world size)."""
        mine = {t: self.model.table(j).detach().cpu() for j, t in enumerate(self.model.tables)}
        tables = {k: v for part in all_gather(mine, "state") for k, v in part.items()}
        dense = self.model.dense.module if hasattr(self.model.dense, "module") else self.model.dense
        out = {k: v.detach().cpu() for k, v in dense.state_dict().items()}
        out["sparse_arch.bag.weight"] = torch.cat([tables[t] for t in sorted(tables)])
        return out


def train(cfg: TrainConfig, out_dir, resume: bool = False, progress: bool = True, data=None,
          on_step: Callable[[int], None] | None = None, device: str | torch.device | None = None) -> dict:
    """Run one training job (see :class:`Trainer`); returns the summary written to summary.json."""
    return Trainer(cfg, out_dir, data, device).run(resume=resume, progress=progress, on_step=on_step)
