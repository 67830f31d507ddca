"""Model-parallel training: :class:`DistTrainer` (one per rank) and the process-group setup.

Same :class:`~dlrmcomp.train.TrainConfig`, data, schedules and log format as the one-process
trainer, plus one ``{"kind": "comm"}`` record per iteration in ``log.jsonl`` with, per direction,
bytes raw vs sent per table (summed over ranks), the size-exchange bytes, and encode / exchange /
decode seconds (the slowest rank's). Rank 0 writes the log and ``summary.json``.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..io import write_json
from ..models import DLRM, PRESETS
from ..train.logs import JsonlLog
from ..train.loop import TrainConfig, make_data, make_optimizer, make_schedule
from ..train.metrics import binary_metrics
from .alltoall import Comm, RankFailure, guard, set_timeout
from .comms import QCommsConfig
from .model import ShardedDLRM, local_sizes, plan_tables, table_costs

_COMM_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout", "peer", "socket", "closed")


def init_process_group(backend: str = "gloo", timeout: float = 60.0, rank: int | None = None,
                       world: int | None = None, port: int | None = None,
                       device: str = "auto") -> tuple[int, int, torch.device]:
    """Join the group (``RANK``/``WORLD_SIZE``/``MASTER_*`` from torchrun, or the arguments);
    returns (rank, world, device). Every collective then fails after ``timeout`` seconds.
    ``device``: "auto" (NCCL: one GPU a rank; gloo: the CPU) or "cuda" with gloo: CUDA tensors,
    several ranks per GPU (local rank modulo the GPU count), gloo staging through host memory."""
    rank = int(os.environ["RANK"]) if rank is None else rank
    world = int(os.environ["WORLD_SIZE"]) if world is None else world
    if port is not None:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
    if backend == "nccl":
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        local = int(os.environ.get("LOCAL_RANK", rank))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif backend == "gloo" and device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", rank))
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    elif backend == "gloo" and device in ("auto", "cpu"):
        device = torch.device("cpu")
    else:
        raise ValueError(f"backend must be 'gloo' or 'nccl' and device auto/cpu/cuda, got {backend!r}, {device!r}")
    set_timeout(timeout)
    with guard("init_process_group (rendezvous)"):
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout))
    return rank, world, device


def qcomms_from_config(cfg: TrainConfig, schedule, grad_schedule, forward: str | None = None,
                       backward: str | None = None, dedup: bool = False) -> QCommsConfig:
    """``--compression codec --codec C [--grad-codec G]`` -> forward C / backward G, unless
    ``forward``/``backward`` (fp32|fp16|bf16|int8|codec) are given."""
    if cfg.compression == "simulate":
        raise ValueError("compression 'simulate' is single-process; with --nproc use 'codec' (real bytes) "
                         "or --fwd-comm/--bwd-comm")
    fwd = forward or (cfg.codec if cfg.compression == "codec" else "fp32")
    bwd = backward or (cfg.grad_codec if cfg.compression == "codec" and cfg.grad_codec else "fp32")
    return QCommsConfig(fwd, bwd, schedule, grad_schedule or schedule, dedup)


def _is_comm_error(exc: BaseException) -> bool:
    if isinstance(exc, RankFailure) or type(exc).__name__.startswith("Dist"):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _COMM_WORDS)


class DistTrainer:
    """One rank of a model-parallel run (call :func:`init_process_group` first)."""

    def __init__(self, cfg: TrainConfig, out_dir, qcomms: QCommsConfig | None = None, shard_by: str = "size",
                 device: torch.device | str = "cpu", data=None, forward: str | None = None,
                 backward: str | None = None, dedup: bool = False):
        if cfg.preset not in PRESETS:
            raise ValueError(f"unknown preset {cfg.preset!r}; choose from {sorted(PRESETS)}")
        self.cfg, self.out, self.device = cfg, Path(out_dir), torch.device(device)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self.data = data if data is not None else make_data(cfg)
        sizes = self.data.table_sizes
        torch.manual_seed(cfg.seed)
        full = DLRM.from_preset(cfg.preset, sizes)
        self.schedule = make_schedule(cfg.schedule, sizes, cfg.early_stage)
        grad_schedule = make_schedule(cfg.grad_schedule, sizes, cfg.early_stage) if cfg.grad_schedule else None
        self.qcomms = qcomms or qcomms_from_config(cfg, self.schedule, grad_schedule, forward, backward, dedup)
        dim = PRESETS[cfg.preset].dim
        batch = self.data.batch(0, cfg.batch_size) if shard_by == "lookup" else None
        self.plan = plan_tables(table_costs(sizes, dim, shard_by, batch), self.world)
        fwd, bwd = self.qcomms.codecs()
        self.comm = Comm(self.plan, self.rank, dim, len(sizes), fwd, bwd)
        self.model = ShardedDLRM(full, self.comm, self.qcomms.dedup, self.device)
        del full
        self.optimizer = make_optimizer(cfg.optimizer, self.model, cfg.lr)
        self.totals = {"forward": np.zeros((2, len(sizes)), np.int64), "backward": np.zeros((2, len(sizes)), np.int64)}

    def _local(self, batch_size: int) -> tuple[int, int]:
        starts = np.r_[0, np.cumsum(local_sizes(batch_size, self.world))]
        return int(starts[self.rank]), int(starts[self.rank + 1])

    def step(self, it: int) -> float:
        """One iteration; returns the global batch's mean loss."""
        batch = self.data.batch(it, self.cfg.batch_size)
        self.comm.iteration, self.comm.record = it, True
        a, b = self._local(batch.size)
        try:
            logits = self.model(batch)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.labels[a:b].to(self.device))
            self.optimizer.zero_grad()
            loss.backward()
        except Exception as exc:  # noqa: BLE001
            if _is_comm_error(exc) and not isinstance(exc, RankFailure):
                raise RankFailure(f"rank {self.rank}: iteration {it} failed in a collective (a peer rank died or "
                                  f"stalled?): {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
            raise
        self.optimizer.step()
        total = torch.tensor([loss.item() * (b - a)], dtype=torch.float64, device=self.device)
        with guard("all_reduce (loss)"):
            dist.all_reduce(total)
        return float(total.item()) / batch.size

    def _comm_record(self, it: int) -> dict:
        self.comm.check()
        stats = self.comm.take_stats()
        rec = {"kind": "comm", "iteration": it + 1}
        for name, s in stats.items():
            counts = torch.tensor(np.r_[s["bytes_raw"], s["bytes_sent"], s["size_bytes"]], dtype=torch.float64,
                                  device=self.device)
            times = torch.tensor([s["encode_s"], s["exchange_s"], s["decode_s"]], dtype=torch.float64,
                                 device=self.device)
            with guard("all_reduce (comm stats)"):
                dist.all_reduce(counts)
                dist.all_reduce(times, op=dist.ReduceOp.MAX)
            c = counts.cpu().numpy().astype(np.int64)
            n = len(s["bytes_raw"])
            self.totals[name][0] += c[:n]
            self.totals[name][1] += c[n:2 * n]
            t = times.cpu().tolist()
            rec[name] = {"bytes_raw": int(c[:n].sum()), "bytes_sent": int(c[n:2 * n].sum()),
                         "size_bytes": int(c[2 * n]), "table_bytes_raw": c[:n].tolist(),
                         "table_bytes_sent": c[n:2 * n].tolist(), "encode_s": t[0], "exchange_s": t[1],
                         "decode_s": t[2]}
        return rec

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        self.comm.record = False
        probs = []
        for batch in self.data.test_batches(self.cfg.test_batch_size):
            local = torch.sigmoid(self.model(batch)).cpu().numpy()
            parts: list = [None] * self.world
            with guard("all_gather_object (eval)"):
                dist.all_gather_object(parts, local)
            probs.append(np.concatenate(parts))
        self.model.train()
        self.comm.record = True
        return binary_metrics(self.data.test_labels, np.concatenate(probs))

    def run(self, progress: bool = False) -> dict:
        cfg = self.cfg
        log = JsonlLog(self.out / "log.jsonl") if self.rank == 0 else None
        t0 = time.perf_counter()
        window, n, last_eval = 0.0, 0, None
        win = {"raw": np.zeros(len(self.data.table_sizes), np.int64)}
        win["sent"] = win["raw"].copy()
        for it in range(cfg.iters):
            start = time.perf_counter()
            window += self.step(it)
            n += 1
            rec = {**self._comm_record(it), "step_s": time.perf_counter() - start}
            win["raw"] += rec["forward"]["table_bytes_raw"]
            win["sent"] += rec["forward"]["table_bytes_sent"]
            if log:
                log.write(rec)
            done = it + 1 == cfg.iters
            if (it + 1) % cfg.log_every == 0 or done:
                if log:
                    ratio = [float(r / c) if c else None for r, c in zip(win["raw"], win["sent"])]
                    eb = self.schedule.bounds(len(self.data.table_sizes), it) if self.comm.forward_codec is not None \
                        and hasattr(self.comm.forward_codec, "schedule") else [None] * len(self.data.table_sizes)
                    log.write({"kind": "train", "iteration": it + 1, "loss": window / n, "eb": eb, "ratio": ratio,
                               "bytes_raw": int(win["raw"].sum()), "bytes_comp": int(win["sent"].sum())})
                window, n = 0.0, 0
                win["raw"][:] = 0
                win["sent"][:] = 0
            if (it + 1) % cfg.eval_every == 0 or done:
                last_eval = self.evaluate()
                if log:
                    log.write({"kind": "eval", "iteration": it + 1, **last_eval})
        summary = self.summary(last_eval or self.evaluate(), time.perf_counter() - t0)
        if self.rank == 0:
            write_json(self.out / "summary.json", summary)
        return summary

    def summary(self, final: dict, seconds: float) -> dict:
        f, b = self.totals["forward"], self.totals["backward"]
        raw, sent = int(f[0].sum()), int(f[1].sum())
        return {"test_auc": final["auc"], "test_accuracy": final["accuracy"], "test_logloss": final["logloss"],
                "bayes_auc": self.data.bayes_auc, "iterations": self.cfg.iters, "seconds": seconds,
                "mean_ratio": raw / sent if sent else None,
                "table_ratios": [float(r / c) if c else None for r, c in zip(f[0], f[1])],
                "bytes_raw": raw, "bytes_compressed": sent,
                "grad_bytes_raw": int(b[0].sum()), "grad_bytes_compressed": int(b[1].sum()),
                "world": self.world, "plan": self.plan,
                "qcomms": {"forward": self.qcomms.forward, "backward": self.qcomms.backward,
                           "dedup": self.qcomms.dedup},
                "table_sizes": list(self.data.table_sizes), "config": dataclasses.asdict(self.cfg)}

    def state_dict_full(self) -> dict[str, torch.Tensor]:
        """Every table's rows (gathered) and the MLP weights, keyed like a :class:`DLRM`'s
        ``state_dict`` (for comparing with one-process training)."""
        mine = {t: self.model.table(j).detach().cpu() for j, t in enumerate(self.model.tables)}
        parts: list = [None] * self.world
        with guard("all_gather_object (state)"):
            dist.all_gather_object(parts, mine)
        tables = {k: v for p in parts for k, v in p.items()}
        dense = self.model.dense.module if hasattr(self.model.dense, "module") else self.model.dense
        out = {k: v.detach().cpu() for k, v in dense.state_dict().items()}
        out["sparse_arch.bag.weight"] = torch.cat([tables[t] for t in sorted(tables)])
        return out
