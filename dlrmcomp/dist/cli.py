"""``dlrmcomp train --nproc N`` and ``torchrun -m dlrmcomp.dist``: model-parallel training.

``--nproc N`` re-launches the same command under ``torch.distributed.run`` (torchrun) with N
workers; each worker is ``python -m dlrmcomp.dist <the train flags>``. Plain
``torchrun --nproc-per-node N -m dlrmcomp.dist --out RUN ...`` works the same.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys

from .comms import BASELINES

_DIST_DESTS = ("nproc", "backend", "device", "fwd_comm", "bwd_comm", "dedup", "shard_by", "comm_timeout")


def add_dist_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model-parallel (dlrmcomp.dist)")
    g.add_argument("--nproc", type=int, help="launch N model-parallel workers via torchrun")
    g.add_argument("--backend", choices=("gloo", "nccl"), default="gloo", help="torch.distributed backend")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: NCCL one GPU a rank, gloo the CPU; cuda with gloo: CUDA tensors, ranks sharing GPUs")
    g.add_argument("--fwd-comm", help=f"forward all-to-all codec: {'|'.join(BASELINES)}|CODEC (default: --codec "
                                      "with --compression codec, else fp32)")
    g.add_argument("--bwd-comm", help="backward all-to-all codec (default: --grad-codec, else fp32)")
    g.add_argument("--dedup", action="store_true", help="index-aware dedup of the forward payload")
    g.add_argument("--shard-by", choices=("size", "lookup"), default="size", help="table-wise sharding cost")
    g.add_argument("--comm-timeout", type=float, default=120.0,
                   help="seconds before a collective with a dead or stalled peer fails")


def _argv(parser: argparse.ArgumentParser, args: argparse.Namespace, skip=("nproc",)) -> list[str]:
    """The command line that reproduces ``args`` (minus ``skip``)."""
    out = []
    for action in parser._actions:  # noqa: SLF001
        if not action.option_strings or action.dest in skip or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False or value == action.default and action.default is not None:
            continue
        opt = action.option_strings[-1]
        out += [opt] if value is True else [opt, str(value)]
    return out


def build_parser() -> argparse.ArgumentParser:
    from ..train.cli import add_arguments

    p = argparse.ArgumentParser(prog="python -m dlrmcomp.dist", description=__doc__)
    add_arguments(p)  # also adds the dist flags (train's parser delegates to add_dist_arguments)
    if not any(a.dest == "nproc" for a in p._actions):  # noqa: SLF001
        add_dist_arguments(p)
    return p


#: single-process flags the distributed trainer does not implement (rejected rather than ignored)
NOT_DISTRIBUTED = ("resume", "checkpoint_every", "dump_every", "threads")


def launch(args: argparse.Namespace) -> int:
    """Run the worker command under torchrun with ``args.nproc`` processes; its exit code."""
    unsupported = [f"--{k.replace('_', '-')}" for k in NOT_DISTRIBUTED if getattr(args, k, None)]
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)} not supported with --nproc (model-parallel training)")
    argv = _argv(build_parser(), args)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
           "-m", "dlrmcomp.dist", *argv]
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.call(cmd, env=env)


def worker_main(argv: list[str] | None = None) -> int:
    """One torchrun worker: parse the train + dist flags, train, print rank 0's summary."""
    from ..train import profile_config
    from .train import DistTrainer, init_process_group

    args = build_parser().parse_args(argv)
    fields = {f.name for f in dataclasses.fields(profile_config(args.profile))}
    cfg = profile_config(args.profile, **{k: v for k, v in vars(args).items() if k in fields and v is not None})
    import torch.distributed as dist

    from .alltoall import RankFailure

    try:
        rank, world, device = init_process_group(args.backend, args.comm_timeout, device=args.device)
        trainer = DistTrainer(cfg, args.out, shard_by=args.shard_by, device=device, forward=args.fwd_comm,
                              backward=args.bwd_comm, dedup=args.dedup)
        summary = trainer.run()
    except RankFailure as exc:
        print(f"dlrmcomp.dist: {exc}", file=sys.stderr, flush=True)
        os._exit(3)  # noqa: SLF001  - skip teardown that would wait on the dead peer
    if rank == 0:
        keys = ("test_auc", "test_accuracy", "test_logloss", "mean_ratio", "seconds", "world")
        print(json.dumps({k: summary[k] for k in keys}), flush=True)
    dist.destroy_process_group()
    return 0
