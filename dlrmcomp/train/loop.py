"""The training loop: data -> DLRM (with the payload hook) -> SGD/Adagrad, with evaluation,
JSONL logging, checkpoint/resume, EMB dumps and ``summary.json``."""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import CriteoData, DumpWriter, SyntheticCriteo
from ..errorbound import EBSchedule
from ..io import write_json
from ..models import DLRM, PRESETS
from .compression import PayloadCompressor
from .logs import JsonlLog
from .metrics import binary_metrics


@dataclass
class TrainConfig:
    """Everything a run depends on (saved in ``summary.json`` and the checkpoint).

    ``data``: "synthetic" or "criteo:TRAIN[,TEST]" (no TEST: the last 10% of TRAIN).
    ``schedule``: "env" | "auto" | "fixed:EB" | a JSON file (see ``EBSchedule.load``);
    ``early_stage`` overrides the schedule's decay length (None keeps it).
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
    dump_every: int = 0
    checkpoint_every: int = 0
    seed: int = 0
    threads: int = 1  # torch intra-op threads: 1 is fastest for the small CPU presets

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def make_data(cfg: TrainConfig):
    """The data source named by ``cfg.data``."""
    if cfg.data == "synthetic":
        return SyntheticCriteo(scale=cfg.scale, zipf=cfg.zipf, test_size=cfg.test_size, seed=cfg.seed)
    if cfg.data.startswith("criteo:"):
        paths = cfg.data.split(":", 1)[1].split(",")
        return CriteoData(paths[0], paths[1] if len(paths) > 1 else None)
    raise ValueError(f"data must be 'synthetic' or 'criteo:TRAIN[,TEST]', got {cfg.data!r}")


def make_schedule(spec: str, table_sizes, early_stage: int | None) -> EBSchedule:
    schedule = EBSchedule.load(spec, table_sizes=table_sizes)
    return dataclasses.replace(schedule, early_stage=early_stage) if early_stage else schedule


def make_optimizer(name: str, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(model.parameters(), lr=lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adagrad', got {name!r}")


@torch.no_grad()
def evaluate(model: DLRM, data, batch_size: int = 16384) -> dict[str, float]:
    """Test-set AUC, accuracy and logloss (no compression: the seeds skip it when testing)."""
    model.eval()
    probs = np.concatenate([torch.sigmoid(model(b)).numpy() for b in data.test_batches(batch_size)])
    model.train()
    return binary_metrics(data.test_labels, probs)


def _ratios(raw: np.ndarray, comp: np.ndarray) -> list[float | None]:
    return [float(r / c) if c else None for r, c in zip(raw, comp)]


class Trainer:
    """One run in ``out_dir``: ``log.jsonl``, ``checkpoint.pt``, ``summary.json``, ``dumps/``."""

    def __init__(self, cfg: TrainConfig, out_dir, data=None):
        if cfg.preset not in PRESETS:
            raise ValueError(f"unknown preset {cfg.preset!r}; choose from {sorted(PRESETS)}")
        self.cfg, self.out = cfg, Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = data if data is not None else make_data(cfg)
        sizes = self.data.table_sizes
        torch.manual_seed(cfg.seed)
        self.model = DLRM.from_preset(cfg.preset, sizes)
        self.optimizer = make_optimizer(cfg.optimizer, self.model, cfg.lr)
        self.schedule = make_schedule(cfg.schedule, sizes, cfg.early_stage)
        grad_schedule = make_schedule(cfg.grad_schedule, sizes, cfg.early_stage) if cfg.grad_schedule else None
        self.hook = PayloadCompressor(cfg.compression, len(sizes), cfg.codec, self.schedule,
                                      cfg.grad_codec, grad_schedule)
        self.dumps = DumpWriter(self.out / "dumps", sizes, PRESETS[cfg.preset].dim, cfg.batch_size) \
            if cfg.dump_every else None
        n = len(sizes)
        # run state: everything a checkpoint must carry besides model and optimizer
        self.state = {"iteration": 0, "window_loss": 0.0, "window_n": 0, "last_eval": None,
                      "bytes_raw": np.zeros(n, np.int64), "bytes_comp": np.zeros(n, np.int64),
                      "window_raw": np.zeros(n, np.int64), "window_comp": np.zeros(n, np.int64),
                      "grad_raw": np.zeros(n, np.int64), "grad_comp": np.zeros(n, np.int64)}

    # -- checkpoints ---------------------------------------------------------------------------
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
        ckpt = torch.load(self.checkpoint_path, weights_only=False)
        saved = {**ckpt["config"], "iters": self.cfg.iters}
        if saved != {**dataclasses.asdict(self.cfg), "iters": self.cfg.iters}:
            raise ValueError(f"{self.checkpoint_path} was written with a different config")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = ckpt["state"]
        torch.set_rng_state(ckpt["torch_rng"])

    # -- the loop ---------------------------------------------------------------------------
    def _step(self, it: int) -> float:
        batch = self.data.batch(it, self.cfg.batch_size)
        self.hook.iteration = it
        hook = self.hook
        if self.dumps is not None and it % self.cfg.dump_every == 0:
            def hook(pooled, it=it):
                self.dumps.write(it // self.cfg.dump_every, it, [x.detach().numpy() for x in pooled],
                                 self.hook.bounds(it))
                return self.hook(pooled)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self.model(batch, hook), batch.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def _collect_bytes(self) -> None:
        s = self.state
        raw, comp = self.hook.forward.take()
        s["window_raw"] += raw
        s["window_comp"] += comp
        s["bytes_raw"] += raw
        s["bytes_comp"] += comp
        if self.hook.backward is not None:
            raw, comp = self.hook.backward.take()
            s["grad_raw"] += raw
            s["grad_comp"] += comp

    def _log_train(self, log: JsonlLog, it: int) -> None:
        s = self.state
        log.write({"kind": "train", "iteration": it + 1, "loss": s["window_loss"] / max(s["window_n"], 1),
                   "eb": self.hook.bounds(it), "ratio": _ratios(s["window_raw"], s["window_comp"]),
                   "bytes_raw": int(s["window_raw"].sum()), "bytes_comp": int(s["window_comp"].sum())})
        s["window_loss"], s["window_n"] = 0.0, 0
        s["window_raw"][:] = 0
        s["window_comp"][:] = 0

    def run(self, resume: bool = False, progress: bool = True,
            on_step: Callable[[int], None] | None = None) -> dict:
        """Train to ``cfg.iters`` (from the checkpoint if ``resume`` and one exists); the summary."""
        cfg, s = self.cfg, self.state
        if resume and not self.checkpoint_path.is_file():
            raise ValueError(f"nothing to resume: no checkpoint in {self.out} (train with checkpoint_every > 0)")
        if not resume and (self.out / "log.jsonl").exists():
            raise ValueError(f"{self.out} already holds a run; give a new output folder, or resume it")
        if resume:
            self.load_checkpoint()
            s = self.state
        start = s["iteration"]
        log = JsonlLog(self.out / "log.jsonl", keep_until=start if start else None)
        if self.dumps is not None:
            self.dumps.resume(start)
        t0 = time.perf_counter()
        torch.set_num_threads(cfg.threads)
        bar = tqdm(range(start, cfg.iters), initial=start, total=cfg.iters, disable=not progress,
                   desc=f"train {cfg.compression}", leave=False)
        for it in bar:
            s["window_loss"] += self._step(it)
            s["window_n"] += 1
            self._collect_bytes()
            s["iteration"] = it + 1
            done = it + 1 == cfg.iters
            if (it + 1) % cfg.log_every == 0 or done:
                self._log_train(log, it)
            if (it + 1) % cfg.eval_every == 0 or done:
                s["last_eval"] = evaluate(self.model, self.data, cfg.test_batch_size)
                log.write({"kind": "eval", "iteration": it + 1, **s["last_eval"]})
                bar.set_postfix(auc=f"{s['last_eval']['auc']:.4f}")
            if cfg.checkpoint_every and ((it + 1) % cfg.checkpoint_every == 0 or done):
                self.save_checkpoint()
            if on_step is not None:
                on_step(it)
        summary = self.summary(time.perf_counter() - t0)
        write_json(self.out / "summary.json", summary)
        return summary

    def summary(self, seconds: float) -> dict:
        s = self.state
        raw, comp = int(s["bytes_raw"].sum()), int(s["bytes_comp"].sum())
        final = s["last_eval"] or evaluate(self.model, self.data, self.cfg.test_batch_size)
        out = {"test_auc": final["auc"], "test_accuracy": final["accuracy"], "test_logloss": final["logloss"],
               "bayes_auc": self.data.bayes_auc, "iterations": s["iteration"], "seconds": seconds,
               "mean_ratio": raw / comp if comp else None, "table_ratios": _ratios(s["bytes_raw"], s["bytes_comp"]),
               "bytes_raw": raw, "bytes_compressed": comp,
               "table_sizes": list(self.data.table_sizes), "config": dataclasses.asdict(self.cfg),
               "schedule": self.schedule.to_dict() if self.hook.enabled else None}
        if self.hook.backward is not None:
            g_raw, g_comp = int(s["grad_raw"].sum()), int(s["grad_comp"].sum())
            out.update(grad_bytes_raw=g_raw, grad_bytes_compressed=g_comp,
                       grad_mean_ratio=g_raw / g_comp if g_comp else None)
        return out


def train(cfg: TrainConfig, out_dir, resume: bool = False, progress: bool = True, data=None,
          on_step: Callable[[int], None] | None = None) -> dict:
    """Run one training job (see :class:`Trainer`); returns the summary written to summary.json."""
    return Trainer(cfg, out_dir, data).run(resume=resume, progress=progress, on_step=on_step)
