"""FAE's per-epoch schedule (and Slipstream's skipping) for the one-process trainer.

Per epoch: the cold inputs first, with the full tables where they live (host memory: on a GPU
run the fused table stays on the CPU and only the pooled rows move); then the hot rows are copied
into one concatenated hot table on the training device (with the optimizer's per-row state), the
hot inputs train there with remapped indices, and the hot rows are copied back. Inputs keep their
order inside each phase. With a :class:`~dlrmcomp.hotcold.slipstream.StaleSkipper` the hot phase
snapshots the hot table, classifies the remaining hot inputs and skips the droppable ones.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from torch import nn

from ..data.batch import Batch
from .profile import EpochInputs, HotColdSplit, profile_inputs
from .slipstream import StaleSkipper

#: ``--inputs``: all (the plain trainer), fae (hot/cold schedule), slipstream (fae + skipping)
INPUTS = ("all", "fae", "slipstream")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class HostBag(nn.Module):
    """A fused ``EmbeddingBag`` in host memory used by a model on ``device``: lookups on the CPU,
    pooled rows [B, D] moved to the device (the seeds' ``mixed_forward``)."""

    def __init__(self, bag: nn.EmbeddingBag, device: torch.device):
        super().__init__()
        self.bag, self.device = bag, device

    @property
    def weight(self) -> torch.Tensor:
        return self.bag.weight

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.bag(indices.cpu(), offsets.cpu()).to(self.device)


class HotTable:
    """The hot rows of a world-size-1 :class:`~dlrmcomp.dist.model.ShardedDLRM` as one table on
    ``device`` [H, D]. :meth:`enter` copies them (and the optimizer's per-row state) in and points
    the model and optimizer at it, :meth:`leave` copies them back; both are timed."""

    def __init__(self, model, optimizer: torch.optim.Optimizer, split: HotColdSplit, device):
        self.model, self.optimizer, self.device = model, optimizer, torch.device(device)
        self.full = model.bag
        if self.device.type != "cpu":
            self.full.to("cpu")  # in place: the optimizer keeps the same parameter
            model.bag = HostBag(self.full, self.device)
        self.cold_view = model.bag
        self.rows = torch.from_numpy(split.hot_rows)
        self.hot = nn.EmbeddingBag(max(self.rows.numel(), 1), self.full.embedding_dim, mode="sum", sparse=True,
                                   device=self.device)
        hot_offsets = torch.from_numpy(split.hot_offsets).to(self.device)
        self._layouts = {False: (model._offsets, model.row_offsets),  # noqa: SLF001
                         True: ([int(v) for v in split.hot_offsets], hot_offsets)}
        self.active = False
        self.sync_in_s = self.sync_out_s = 0.0
        self._full_state: dict = {}

    def _point(self, hot: bool) -> None:
        self.model.bag = self.hot if hot else self.cold_view
        self.model._offsets, self.model.row_offsets = self._layouts[hot]  # noqa: SLF001
        self.active = hot

    def _swap_param(self, old: torch.Tensor, new: torch.Tensor) -> None:
        for group in self.optimizer.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]

    def _copy_back(self) -> None:
        with torch.no_grad():
            self.full.weight[self.rows] = self.hot.weight[:self.rows.numel()].cpu()

    def enter(self) -> None:
        t0 = time.perf_counter()
        n, shape = self.rows.numel(), self.full.weight.shape
        with torch.no_grad():
            self.hot.weight[:n] = self.full.weight[self.rows].to(self.device)
        self._full_state = self.optimizer.state.pop(self.full.weight, {})
        self.optimizer.state[self.hot.weight] = {
            k: torch.zeros_like(self.hot.weight).index_copy_(0, torch.arange(n, device=self.device),
                                                             v[self.rows].to(self.device))
            if torch.is_tensor(v) and v.shape == shape else v for k, v in self._full_state.items()}
        self._swap_param(self.full.weight, self.hot.weight)
        self._point(True)
        _sync(self.device)
        self.sync_in_s += time.perf_counter() - t0

    def leave(self) -> None:
        t0 = time.perf_counter()
        self._copy_back()
        hot_state = self.optimizer.state.pop(self.hot.weight, {})
        for k, v in hot_state.items():
            full = self._full_state.get(k)
            if torch.is_tensor(full) and full.shape == self.full.weight.shape:
                full[self.rows] = v[:self.rows.numel()].cpu()
            else:
                self._full_state[k] = v
        if self._full_state:
            self.optimizer.state[self.full.weight] = self._full_state
        self._swap_param(self.hot.weight, self.full.weight)
        self._point(False)
        self.sync_out_s += time.perf_counter() - t0

    @contextlib.contextmanager
    def full_tables(self):
        """Inside: the model reads the full tables (hot rows written back first), e.g. to evaluate."""
        if not self.active:
            yield
            return
        self._copy_back()
        self._point(False)
        try:
            yield
        finally:
            self._point(True)


class HotColdSchedule:
    """The batch order of FAE (``skipper`` None) or Slipstream over ``inputs`` for ``epochs``.

    :meth:`batches` yields (iteration, batch) and moves the hot table in and out between phases;
    ``steps`` is the number of iterations planned (it shrinks when inputs are skipped).
    """

    def __init__(self, inputs: EpochInputs, split: HotColdSplit, table: HotTable, batch_size: int, epochs: int,
                 skipper: StaleSkipper | None = None):
        if len(split.hot_inputs) + len(split.cold_inputs) != len(inputs):
            raise ValueError(f"the hot/cold split covers {len(split.hot_inputs) + len(split.cold_inputs)} inputs, "
                             f"the epoch has {len(inputs)}")
        self.inputs, self.split, self.table, self.skipper = inputs, split, table, skipper
        self.batch_size, self.epochs = int(batch_size), int(epochs)
        self.hot_ids = split.to_hot(inputs.ids[split.hot_inputs])  # rows in the hot table [H_in, T]
        per_epoch = self._count(len(split.cold_inputs)) + self._count(len(split.hot_inputs))
        self.steps = self.epochs * per_epoch
        self.decisions: list = []
        self.skipped: list[np.ndarray] = []  # per decision: the input indices skipped
        self.epoch_s: list[float] = []
        self.trained = 0

    def describe(self) -> str:
        """The schedule in a few words (the trainer's first line)."""
        info, mode = self.split.info(), "slipstream" if self.skipper else "fae"
        line = (f"inputs {mode}: {info['hot_fraction']:.1%} hot (Lambda {info['lambda']}, {info['hot_rows']:,} "
                f"hot rows = {info['hot_table_bytes'] / 2 ** 20:.1f} MiB on {self.table.device}), "
                f"{self.epochs} epoch(s)")
        if self.skipper:
            line += f", D {self.skipper.target_drop}, alpha {self.skipper.alpha}"
        return line

    def _count(self, n: int) -> int:
        return -(-n // self.batch_size)

    def _hot_batch(self, positions: np.ndarray) -> Batch:
        """The hot inputs at ``positions`` (of ``split.hot_inputs``), indices remapped to the hot table."""
        idx = self.split.hot_inputs[positions]
        return Batch.from_numpy(self.inputs.dense[idx], self.hot_ids[positions], self.inputs.labels[idx])

    def _snapshot(self) -> tuple[torch.Tensor, float]:
        t0 = time.perf_counter()
        w = self.table.hot.weight.detach().clone()
        _sync(self.table.device)
        return w, time.perf_counter() - t0

    def batches(self, log=None):
        """(iteration, batch) for every planned step; writes a ``profile`` record first, then a
        ``hotcold`` record per epoch (and a ``slipstream`` record per decision) to ``log``."""
        if log is not None:
            log.write({"kind": "profile", "iteration": 0, **self.split.info()})
        it, b = 0, self.batch_size
        cold = self.split.cold_inputs
        for epoch in range(self.epochs):
            t0 = time.perf_counter()
            for i in range(0, len(cold), b):
                yield it, self.inputs.take(cold[i:i + b])
                it += 1
            self.trained += len(cold)
            self.table.enter()
            order = np.arange(len(self.split.hot_inputs))
            first, second = self.skipper.window(self._count(len(order))) if self.skipper else (-1, -1)
            before, snapshot_s, decision, k, pos = None, 0.0, None, 0, 0
            while pos < len(order):  # order shrinks when Slipstream skips inputs
                yield it, self._hot_batch(order[pos:pos + b])
                self.trained += len(order[pos:pos + b])
                it += 1
                if k == first:
                    before, snapshot_s = self._snapshot()
                elif k == second and pos + b < len(order):
                    after, s = self._snapshot()
                    rest = order[pos + b:]
                    fused = self.hot_ids[rest] + self.split.hot_offsets[:-1]  # rows of the hot table [N, T]
                    drop, decision = self.skipper.split(epoch, before, after, fused, len(order), snapshot_s + s)
                    self.steps -= self._count(len(rest)) - self._count(int((~drop).sum()))
                    order = np.concatenate([order[:pos + b], rest[~drop]])
                    self.skipped.append(self.split.hot_inputs[rest[drop]])
                    self.decisions.append(decision)
                    if log is not None:
                        log.write({**decision.record(), "iteration": it})
                k, pos = k + 1, pos + b
            self.table.leave()
            self.epoch_s.append(time.perf_counter() - t0)
            if log is not None:
                log.write({"kind": "hotcold", "epoch": epoch, "iteration": it, "cold_batches": self._count(len(cold)),
                           "hot_batches": self._count(len(order)), "skipped": decision.skipped if decision else 0,
                           "epoch_s": self.epoch_s[-1], "sync_in_s": self.table.sync_in_s,
                           "sync_out_s": self.table.sync_out_s})

    def summary(self) -> dict:
        """Hot fraction, Lambda, T, skipped fraction and overheads (``summary.json``'s ``hotcold``)."""
        d = self.decisions
        skipped = sum(x.skipped for x in d)
        total = self.epochs * len(self.inputs)
        overheads = {k: sum(getattr(x, k) for x in d) for k in ("snapshot_s", "threshold_s", "classify_s")}
        return {**self.split.info(), "epochs": self.epochs, "steps": self.steps, "trained_inputs": self.trained,
                "skipped_inputs": skipped, "skipped_fraction": skipped / total if total else 0.0,
                "skipped_hot_fraction": skipped / max(self.epochs * len(self.split.hot_inputs), 1),
                "T": [x.threshold for x in d], "sample_drop": [x.sample_fraction for x in d],
                "target_drop": self.skipper.target_drop if self.skipper else None,
                "alpha": self.skipper.alpha if self.skipper else None,
                "sync_in_s": self.table.sync_in_s, "sync_out_s": self.table.sync_out_s, **overheads,
                "slipstream_overhead_s": sum(overheads.values()), "epoch_s": self.epoch_s}


def epoch_batches(data, batch_size: int, iters: int) -> int:
    """Batches in one epoch of ``data``: a file's training part, or ``iters`` for an endless stream."""
    return len(data.train) // batch_size if hasattr(data, "train") else int(iters)


def build_schedule(cfg, data, model, optimizer, device, out_dir=None) -> HotColdSchedule:
    """The schedule of ``cfg.inputs`` (fae | slipstream) for a Trainer's model and optimizer: the
    epoch's inputs in memory, the split (loaded from ``cfg.hot_split``, else profiled and saved
    in ``out_dir/hotcold``), whole epochs (``round(cfg.iters / batches per epoch)``, at least 1)."""
    if cfg.inputs not in INPUTS[1:]:
        raise ValueError(f"inputs must be one of {INPUTS}, got {cfg.inputs!r}")
    if getattr(model, "tt", False):
        raise ValueError(f"inputs {cfg.inputs!r}: the hot table copies rows of plain tables, not TT cores")
    inputs = data if isinstance(data, EpochInputs) else \
        EpochInputs(data, cfg.batch_size, epoch_batches(data, cfg.batch_size, cfg.iters))
    per_epoch = max(1, len(inputs) // cfg.batch_size)
    if cfg.hot_split:
        split = HotColdSplit.load(cfg.hot_split)
    else:
        split = profile_inputs(inputs.ids, inputs.table_sizes, model.dim, cfg.hot_budget, cfg.ip_sampling_rate,
                               cfg.seed)
        if out_dir is not None:
            split.save(out_dir / "hotcold")
    skipper = None
    if cfg.inputs == "slipstream":
        skipper = StaleSkipper(cfg.target_drop, cfg.alpha or len(inputs.table_sizes), cfg.sample_rate,
                               cfg.starting_minibatch, cfg.minibatch_percentage, seed=cfg.seed)
    table = HotTable(model, optimizer, split, device)
    return HotColdSchedule(inputs, split, table, cfg.batch_size, max(1, round(cfg.iters / per_epoch)), skipper)
