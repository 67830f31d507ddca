"""``dlrmcomp train``: one training run into ``--out`` (log.jsonl, summary.json, dumps/)."""
from __future__ import annotations

import argparse
import dataclasses
import json

from ..models import PRESETS
from . import PROFILES, profile_config, train
from .compression import MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--profile", choices=sorted(PROFILES), default="smoke", help="run size (other flags override it)")
    add("--preset", choices=sorted(PRESETS), help="model preset (default: the profile's, else tiny)")
    add("--data", help="synthetic | criteo:TRAIN[,TEST]")
    add("--scale", type=float, help="synthetic data: table sizes as a fraction of Criteo Kaggle's (1 = full)")
    add("--zipf", type=float, help="synthetic data: Zipf exponent of the lookups")
    add("--test-size", type=int, help="test samples")
    add("--compression", choices=MODES, help="payload compression mode")
    add("--codec", help="codec name for --compression codec (e.g. quant+ans)")
    add("--schedule", help="error bounds: env | auto | fixed:EB | FILE.json")
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
    add("--checkpoint-every", type=int, help="checkpoint every K iterations (0: none)")
    add("--seed", type=int)
    add("--threads", type=int, help="torch intra-op threads (default 1; raise for the kaggle/terabyte presets)")
    add("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    add("--no-progress", action="store_true")
    add("--out", required=True, help="run directory")
    from ..dist.cli import add_dist_arguments  # --nproc, --backend, ...: model-parallel (dlrmcomp.dist)

    add_dist_arguments(parser)


def main(args: argparse.Namespace) -> int:
    if getattr(args, "nproc", None):
        from ..dist.cli import launch

        return launch(args)
    fields = {f.name for f in dataclasses.fields(profile_config(args.profile))}
    overrides = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    cfg = profile_config(args.profile, **overrides)
    summary = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    keys = ("test_auc", "test_accuracy", "test_logloss", "bayes_auc", "mean_ratio", "seconds")
    print(json.dumps({k: summary[k] for k in keys}))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="dlrmcomp train", description=__doc__)
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
