"""Training workers for multi-process checks, started with :func:`dlrmcomp.dist.testing.spawn`."""
from __future__ import annotations

import os

import torch


def train_worker(rank, world, port, outdir, cfg_dict):
    """A short run of :class:`~dlrmcomp.train.TrainConfig` ``cfg_dict`` on ``world`` gloo ranks;
    rank 0 saves the gathered weights and the summary to ``outdir/dist_result.pt``."""
    from ..dist.train import init_process_group
    from . import TrainConfig, Trainer

    init_process_group("gloo", timeout=30, rank=rank, world=world, port=port)
    trainer = Trainer(TrainConfig(**cfg_dict), outdir, device="cpu")
    summary = trainer.run(progress=False)
    state = trainer.state_dict_full()
    if rank == 0:
        torch.save({"state": state, "summary": summary}, os.path.join(outdir, "dist_result.pt"))
    torch.distributed.destroy_process_group()
