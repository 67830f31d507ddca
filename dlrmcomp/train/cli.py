"""``dlrmcomp train``: one training run into ``--out`` (log.jsonl, summary.json, dumps/), in one
process or, with ``--nproc N``, on N model-parallel ranks: the same trainer at world size N.

``--nproc N`` re-launches the same command under ``torch.distributed.run`` (torchrun) with N
workers; each worker is ``python -m dlrmcomp.train <the train flags>``. Plain
``torchrun --nproc-per-node N -m dlrmcomp.train --out RUN ...`` works the same.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys

from ..dist.comms import BASELINES
from ..models import PRESETS
from . import PROFILES, profile_config
from .device import DEVICES, device_kind
from .loop import MODES, TrainConfig, Trainer

#: summary values printed as one JSON line at the end
PRINTED = ("test_auc", "test_accuracy", "test_logloss", "bayes_auc", "mean_ratio", "seconds", "world")
#: single-process options a distributed run does not offer (rejected rather than ignored)
NOT_DISTRIBUTED = ("resume", "checkpoint_every")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--profile", choices=sorted(PROFILES), default="smoke", help="run size (other flags override it)")
    add("--preset", choices=sorted(PRESETS), help="model preset (default: the profile's, else tiny)")
    add("--data", help="synthetic | criteo:TRAIN[,TEST] | avazu:TRAIN[,TEST] | npz:PATH (the reference DLRM's "
                       "processed file)")
    add("--scale", type=float, help="synthetic data: table sizes as a fraction of Criteo Kaggle's (1 = full)")
    add("--zipf", type=float, help="synthetic data: Zipf exponent of the lookups")
    add("--test-size", type=int, help="test samples")
    add("--device", choices=DEVICES, default="auto",
        help="where every rank trains (auto: the GPU when one is present, else the CPU)")
    add("--compression", choices=MODES, help="none | simulate (quantize-dequantize, the seeds' mode) | "
                                             "codec (real bytes through --codec)")
    add("--codec", help="codec name for --compression codec (e.g. quant+ans)")
    add("--schedule", help="error bounds: env | auto (decay over a fifth of the run, at most 65,536 "
                           "iterations) | fixed:EB | FILE.json")
    add("--early-stage", type=int, help="iterations of the bound decay (default: the schedule's)")
    add("--grad-codec", help="also compress the payload gradient with this codec")
    add("--grad-schedule", help="bounds for the gradient (default: --schedule)")
    add("--iters", type=int)
    add("--batch-size", type=int)
    add("--lr", type=float)
    add("--optimizer", choices=("sgd", "adagrad"))
    add("--eval-every", type=int)
    add("--log-every", type=int)
    add("--dump-every", type=int, help="EMB dump every K iterations (0: none)")
    add("--checkpoint-every", type=int, help="checkpoint every K iterations (0: none; one process only)")
    add("--seed", type=int)
    add("--threads", type=int, help="torch intra-op threads (default 1; raise for the kaggle/terabyte presets)")
    add("--resume", action="store_true", help="continue from OUT/checkpoint.pt (one process only)")
    add("--no-progress", action="store_true")
    add("--out", required=True, help="run directory")
    g = parser.add_argument_group("the embedding all-to-all (any world size)")
    g.add_argument("--fwd-comm", help=f"forward codec: {'|'.join(BASELINES)}|simulate|CODEC (default: from "
                                      "--compression: fp32, simulate or --codec)")
    g.add_argument("--bwd-comm", help="backward codec (default: from --compression and --grad-codec, else fp32)")
    g.add_argument("--dedup", action="store_true", help="index-aware dedup of the forward payload")
    g.add_argument("--shard-by", choices=("size", "lookup", "unique"), default="size",
                   help="table-wise sharding cost (unique: unique indices of the first batch, EcoRec's)")
    g = parser.add_argument_group("hot/cold training: FAE and Slipstream (seed 004; one process)")
    g.add_argument("--inputs", choices=("all", "fae", "slipstream"),
                   help="all (default) | fae: cold inputs, then hot inputs on a hot table | slipstream: fae, "
                        "skipping inputs whose embeddings went stale")
    g.add_argument("--hot-budget", help="hot-table memory, e.g. 256MiB (default)")
    g.add_argument("--ip-sampling-rate", type=float, help="fraction of the inputs the profiler counts (0.05)")
    g.add_argument("--hot-split", help="reuse a saved split (an earlier run's OUT/hotcold) instead of profiling")
    g.add_argument("--target-drop", type=float, help="Slipstream: target droppable fraction D (0.3)")
    g.add_argument("--alpha", type=int, help="Slipstream: stale lookups that make an input droppable "
                                             "(default: the field count, 26 for Criteo, 22 for Avazu)")
    g.add_argument("--sample-rate", type=float, help="Slipstream: hot inputs sampled for the search of T (0.001)")
    g.add_argument("--starting-minibatch", type=int, help="Slipstream: hot batch of the first snapshot (1000)")
    g.add_argument("--minibatch-percentage", type=float, help="Slipstream: hot batches between snapshots (0.03)")
    g = parser.add_argument_group("TT embeddings and EcoRec's table-wise pipeline (seed 003; any world size)")
    g.add_argument("--embedding", choices=("dense", "tt"), help="dense tables (default) | tt: TT cores")
    g.add_argument("--tt-ranks", help="TT ranks R1,R2 (default 16,16)")
    g.add_argument("--tt-min-rows", type=int, help="tables with at least N rows become TT (default 1000)")
    g.add_argument("--tt-chunks", type=int, help="micro-batches of a TT lookup's unique indices (default 1)")
    g.add_argument("--pipeline-groups", type=int, help="table groups a rank whose all-to-alls overlap the next "
                                                       "group's lookups (default 0: one all-to-all)")
    g.add_argument("--pipeline-overlap", type=int, choices=(0, 1), help="1 (default): overlap; 0: the same "
                                                                        "groups in sequence")
    g.add_argument("--pipeline-reorder", type=int, choices=(0, 1), help="1 (default): cheap tables first")
    g.add_argument("--pipeline-skew", type=float, help="slope of the group sizes in [0, 1] (default 0)")
    g = parser.add_argument_group("model-parallel ranks (torch.distributed)")
    g.add_argument("--nproc", type=int, help="launch N model-parallel workers via torchrun")
    g.add_argument("--backend", choices=("gloo", "nccl"), default="gloo",
                   help="torch.distributed backend (gloo with --device cuda: ranks may share GPUs)")
    g.add_argument("--comm-timeout", type=float, default=120.0,
                   help="seconds before a collective with a dead or stalled peer fails")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlrmcomp train", description=__doc__)
    add_arguments(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The profile's config with every flag that names a :class:`TrainConfig` field applied."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return profile_config(args.profile, **{k: v for k, v in vars(args).items() if k in fields and v is not None})


def _argv(parser: argparse.ArgumentParser, args: argparse.Namespace, skip=("nproc",)) -> list[str]:
    """The command line that reproduces ``args`` (minus ``skip``; defaults left out)."""
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


def launch(args: argparse.Namespace) -> int:
    """Run the worker command under torchrun with ``args.nproc`` processes; its exit code."""
    unsupported = [f"--{k.replace('_', '-')}" for k in NOT_DISTRIBUTED if getattr(args, k, None)]
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)}: checkpoint/resume is single-process; not supported with --nproc")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
           "-m", "dlrmcomp.train", *_argv(build_parser(), args)]
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"dlrmcomp train: launching {args.nproc} ranks ({args.backend}, device {args.device})",
          file=sys.stderr, flush=True)
    return subprocess.call(cmd, env=env)


def main(args: argparse.Namespace) -> int:
    """``dlrmcomp train``: in this process (world size 1), or ``--nproc N`` ranks via torchrun."""
    if (args.nproc or 1) > 1:
        return launch(args)
    trainer = Trainer(config_from_args(args), args.out, device=args.device)
    summary = trainer.run(resume=args.resume, progress=not args.no_progress, verbose=True)
    print(json.dumps({k: summary[k] for k in PRINTED}))
    return 0


def worker_main(argv: list[str] | None = None) -> int:
    """One torchrun worker: parse the train flags, join the group, train, print rank 0's summary."""
    import torch.distributed as dist

    from ..dist import train as group
    from ..dist.alltoall import RankFailure

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    try:
        rank, world, device = group.init_process_group(args.backend, args.comm_timeout, device=device_kind(args.device))
        summary = Trainer(cfg, args.out, device=device).run(progress=False, verbose=rank == 0)
    except RankFailure as exc:
        print(f"dlrmcomp train: {exc}", file=sys.stderr, flush=True)
        os._exit(3)  # noqa: SLF001  - skip teardown that would wait on the dead peer
    if rank == 0:
        print(json.dumps({k: summary[k] for k in PRINTED}), flush=True)
    dist.destroy_process_group()
    return 0


def entry(argv: list[str] | None = None) -> int:
    """``python -m dlrmcomp.train``: a torchrun worker (RANK and WORLD_SIZE set), else :func:`main`."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return worker_main(argv)
    from ..cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(entry())
