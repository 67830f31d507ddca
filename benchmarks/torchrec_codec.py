"""TorchRec's quantized comms (FP16, INT8) vs dlrmcomp's error-bounded fixed-rate codec at the same bytes.

Part 1, error: each codec encodes and decodes (a) a synthetic Zipf payload (26 tables x ``--batch``
x ``--dim``, ``dlrmcomp.bench.payload``) and (b) the real forward payload and gradient of the last
iteration of the fp32 training run below (rank 0), as TorchRec's pooled all-to-all would. Columns:
bytes per value, max and RMS error, worst error relative to the table's range, and elements over
our bound. TorchRec's INT8 is fbgemm's fused row-wise 8-bit codec at its default 32 values a row
(40 bytes); ours at ``--dim`` 32 sends the same 40 bytes a row. For reference, what the entropy-coded
frame codecs (``quant+ans``, ``quant+dedup+ans``) send at the same bounds.

Part 2, AUC: torchrec's DLRM with its EmbeddingBagCollection sharded table-wise on ``--nproc`` gloo
ranks (CPU), trained ``--iters`` SGD steps on dlrmcomp's synthetic Criteo-like stream with the same
seed and initial weights for every codec (both directions of the all-to-all compressed), then test
AUC on the held-out set (the data's Bayes AUC is the ceiling).

Usage::

    python benchmarks/torchrec_codec.py --out DIR [--iters 600 --batch 256 --dim 32 --nproc 2]

Needs torchrec (``pip install 'dlrmcomp[torchrec]'`` then ``pip install --no-deps torchrec==1.8.0``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlrmcomp import EBSchedule, codecs
from dlrmcomp.adapters.torchrec import EBQuantCommCodec, FixedRateFormat
from dlrmcomp.dist import testing

OP = "POOLED_EMBEDDINGS_ALL_TO_ALL"
VARIANTS = ("fp32", "fp16", "int8", "ours-int8", "ours-int8-finest")


def schedule_for(variant: str, table_sizes, early_stage: int, dim: int) -> EBSchedule:
    """``ours-int8``: the artifact's bounds (tighten 0.01 / base 0.03 / loosen 0.05, x2 decaying to
    x1), tables classified by size; ``ours-int8-finest``: int8's smallest bound, every table."""
    if variant == "ours-int8-finest":
        return EBSchedule.fixed(FixedRateFormat(dim, "int8").min_rel_bound)
    return EBSchedule.auto(table_sizes, early_stage=early_stage)


class Recorder:
    """TorchRec's no-op codec that keeps the last payload it was given (for part 1)."""

    quantized_dtype = torch.float32

    def __init__(self):
        self.last = None

    def encode(self, x, ctx=None):
        self.last = x.detach().clone()
        return x

    def decode(self, x, ctx=None):
        return x

    def calc_quantized_size(self, n, ctx=None):
        return n

    def create_context(self):
        return None

    def padded_size(self, x, dims, rank, ctx):
        return (x.shape[0] if x.dim() == 1 else x.shape[1]), 0


def layout_for(n_tables: int, world: int) -> list[list[int]]:
    return [list(range(r, n_tables, world)) for r in range(world)]


def registry_for(variant: str, schedule: EBSchedule | None, dim: int):
    from torchrec.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs_registry
    from torchrec.distributed.types import QuantizedCommCodecs

    from dlrmcomp.adapters.torchrec import qcomm_codecs_registry

    if variant == "fp32":
        return {OP: QuantizedCommCodecs(forward=Recorder(), backward=Recorder())}
    if variant in ("fp16", "int8"):
        kind = CommType.FP16 if variant == "fp16" else CommType.INT8
        return get_qcomm_codecs_registry(QCommsConfig(kind, kind), comm_ops=None, device=torch.device("cpu"))
    return qcomm_codecs_registry(schedule, row_dim=dim)


def train_worker(rank, world, port, outdir, variant, cfg):
    """One training run: rank 0 writes ``<variant>.json`` (and, for fp32, the recorded payloads)."""
    from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.types import ShardingPlan
    from torchrec.models.dlrm import DLRM

    from dlrmcomp.adapters.torchrec import set_layout, table_wise_plan
    from dlrmcomp.data.synthetic import SyntheticCriteo
    from dlrmcomp.dist.train import init_process_group
    from dlrmcomp.train.metrics import auc_score

    init_process_group("gloo", timeout=120, rank=rank, world=world, port=port)
    data = SyntheticCriteo(scale=cfg["scale"], test_size=cfg["test_size"], seed=0)
    n_tables, dim = len(data.table_sizes), cfg["dim"]
    names = [f"t{i}" for i in range(n_tables)]
    configs = [EmbeddingBagConfig(name=n, embedding_dim=dim, num_embeddings=rows, feature_names=[f"f{i}"])
               for i, (n, rows) in enumerate(zip(names, data.table_sizes))]
    schedule = schedule_for(variant, data.table_sizes, cfg["iters"] // 2, dim)
    registry = registry_for(variant, schedule, dim)
    layout = layout_for(n_tables, world)
    set_layout(registry, layout)
    sharder = EmbeddingBagCollectionSharder(qcomm_codecs_registry=registry)
    torch.manual_seed(0)
    model = DLRM(embedding_bag_collection=EmbeddingBagCollection(tables=configs, device=torch.device("meta")),
                 dense_in_features=13, dense_arch_layer_sizes=[64, dim], over_arch_layer_sizes=[64, 32, 1],
                 dense_device=torch.device("cpu"))
    plan = ShardingPlan({"sparse_arch.embedding_bag_collection":
                         table_wise_plan(model.sparse_arch.embedding_bag_collection, layout, sharder)})
    model = DistributedModelParallel(model, device=torch.device("cpu"), plan=plan, sharders=[sharder])
    with torch.no_grad():  # the same tables for every variant (dense layers: seed 0, synced from rank 0)
        for key, value in model.state_dict().items():
            if ".embedding_bags." in key:
                t = int(key.split(".embedding_bags.")[1].split(".")[0][1:])
                g = torch.Generator().manual_seed(1000 + t)
                for shard in value.local_shards():
                    rows = data.table_sizes[t]
                    shard.tensor.copy_((torch.rand(rows, dim, generator=g) * 2 - 1) / np.sqrt(rows))
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
    keys = [f"f{i}" for i in range(n_tables)]

    def inputs(batch, lo, hi):
        ids = torch.cat([ix[lo:hi] for ix in batch.indices])
        return batch.dense[lo:hi], KeyedJaggedTensor(keys=keys, values=ids, lengths=torch.ones(ids.numel(), dtype=torch.int32))

    b = cfg["batch"]
    losses, t0 = [], time.time()
    model.train()
    for k in range(cfg["iters"]):
        batch = data.batch(k, b * world)
        dense, kjt = inputs(batch, rank * b, (rank + 1) * b)
        logits = model(dense, kjt).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.labels[rank * b:(rank + 1) * b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seconds = time.time() - t0
    recorded = None
    if variant == "fp32":
        recorded = {"forward": registry[OP].forward.last, "backward": registry[OP].backward.last, "layout": layout}
    model.eval()
    scores, labels = [], []
    with torch.no_grad():
        for tb in data.test_batches(b * world):
            n = tb.size - tb.size % world
            per = n // world
            dense, kjt = inputs(tb, rank * per, (rank + 1) * per)
            scores.append(torch.sigmoid(model(dense, kjt).squeeze(-1)).numpy())
            labels.append(tb.labels[rank * per:(rank + 1) * per].numpy())
    gathered = [None] * world
    torch.distributed.all_gather_object(gathered, (np.concatenate(scores), np.concatenate(labels)))
    stats = {}
    if variant.startswith("ours"):
        stats = {"violations": registry[OP].forward.violations + registry[OP].backward.violations}
    if rank == 0:
        s = np.concatenate([g[0] for g in gathered])
        y = np.concatenate([g[1] for g in gathered])
        out = {"variant": variant, "test_auc": auc_score(y, s), "bayes_auc": float(data.bayes_auc),
               "train_loss_last50": float(np.mean(losses[-50:])), "s_per_iter": seconds / cfg["iters"], **stats}
        Path(outdir, f"{variant}.json").write_text(json.dumps(out))
        if recorded is not None:
            torch.save(recorded, Path(outdir, "payload.pt"))
    torch.distributed.destroy_process_group()


# -- part 1: error at the same bytes ---------------------------------------------------------------

def fbgemm_codec(kind: str):
    from fbgemm_gpu.quantize_comm import QuantizedCommCodec
    from fbgemm_gpu.split_embedding_configs import SparseType

    return QuantizedCommCodec(SparseType.FP16 if kind == "fp16" else SparseType.INT8)


def table_positions(layout, direction: str, batch: int, dim: int) -> dict[int, torch.Tensor]:
    """Flat positions of each table's values in the payload TorchRec hands rank 0's codec: forward
    [B_global, tables of rank 0, D]; backward one [B_local, tables of s, D] block per destination s."""
    blocks = [layout[0]] if direction == "forward" else layout
    pos, at = {}, 0
    for ts in blocks:
        n = batch * len(ts) * dim
        grid = torch.arange(at, at + n).reshape(batch, len(ts), dim)
        for j, t in enumerate(ts):
            pos[t] = grid[:, j, :].reshape(-1)
        at += n
    return pos


def errors(x: torch.Tensor, y: torch.Tensor, pos: dict[int, torch.Tensor]) -> dict:
    d = (y.reshape(-1) - x).abs()
    rel = max(float(d[i].max()) / max(float(x[i].max() - x[i].min()), 1e-30) for i in pos.values())
    return {"max_err": float(d.max()), "rms_err": float(d.pow(2).mean().sqrt()), "max_err/table_range": rel}


def error_rows(payload: str, x: torch.Tensor, direction: str, layout, batch: int, schedule: EBSchedule,
               t: int, dim: int) -> list[dict]:
    """Every codec on the flat payload ``x`` of rank 0 (``layout``: tables per rank)."""
    pos = table_positions(layout, direction, batch, dim)
    assert sum(i.numel() for i in pos.values()) == x.numel()
    out = []
    for kind in ("fp16", "int8"):
        codec = fbgemm_codec(kind)
        ctx = codec.create_context()
        enc = codec.encode(x, ctx)
        label = "TorchRec FP16" if kind == "fp16" else "TorchRec INT8 (row-wise, 32 a row)"
        out.append({"payload": payload, "codec": label, "bytes/value": enc.numel() * enc.element_size() / x.numel(),
                    **errors(x, codec.decode(enc, ctx), pos), "violations": None})
    finest = {dt: EBSchedule.fixed(FixedRateFormat(dim, dt).min_rel_bound) for dt in ("int8", "int16")}
    for code_dtype, sched, label in (("int8", schedule, "ours int8, schedule"),
                                     ("int8", finest["int8"], "ours int8, finest bound (1/509)"),
                                     ("int16", finest["int16"], "ours int16, finest bound (1/126,972)")):
        codec = EBQuantCommCodec(sched, dim, code_dtype, direction, layout)
        codec.clock.set(t)
        ctx = codec.create_context()
        ctx.rank = 0
        enc = codec.encode(x, ctx)
        out.append({"payload": payload, "codec": label, "bytes/value": enc.numel() / x.numel(),
                    **errors(x, codec.decode(enc), pos), "violations": codec.violations})
    # what entropy coding sends at the schedule's bounds: one frame per table (bytes only)
    for name in ("quant+ans", "quant+dedup+ans"):
        total = sum(len(codecs.get(name, eb=schedule.bound(tb, t)).encode(x[i].reshape(-1, dim).numpy()))
                    for tb, i in pos.items())
        out.append({"payload": payload, "codec": f"ours {name} frames, schedule (variable size)",
                    "bytes/value": total / x.numel(), "max_err": None, "rms_err": None,
                    "max_err/table_range": None, "violations": 0})
    return out


def part1(args, out: Path) -> pd.DataFrame:
    from dlrmcomp.bench.payload import embedding_payload
    from dlrmcomp.data.synthetic import SyntheticCriteo

    sizes = SyntheticCriteo(scale=args.scale, test_size=10).table_sizes
    t_late = args.iters  # past the early stage: the tables' base bounds
    schedule = schedule_for("ours-int8", sizes, args.iters // 2, args.dim)
    b_global = args.batch * args.nproc
    zipf = np.stack(embedding_payload(batch=b_global, dim=args.dim, n_tables=len(sizes)), axis=1)  # [B, T, D]
    rows = error_rows("zipf (synthetic)", torch.from_numpy(zipf).reshape(-1), "forward", [list(range(len(sizes)))],
                      b_global, schedule, t_late, args.dim)
    rec = torch.load(out / "payload.pt")
    rows += error_rows("training forward (rank 0)", rec["forward"].reshape(-1), "forward", rec["layout"], b_global,
                       schedule, t_late, args.dim)
    rows += error_rows("training gradient (rank 0)", rec["backward"].reshape(-1), "backward", rec["layout"],
                       args.batch, schedule, t_late, args.dim)
    return pd.DataFrame(rows)


def table(df: pd.DataFrame, fmt: str) -> str:
    """Markdown with numbers as ``fmt`` and missing values as "-"."""
    cell = lambda v: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else (  # noqa: E731
        fmt.format(v) if isinstance(v, float) else str(v))
    return df.astype(object).map(cell).to_markdown(index=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--batch", type=int, default=256, help="per rank")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1e-3)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--test-size", type=int, default=20000)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--no-training", action="store_true", help="reuse the runs already in --out (part 1 again)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = {"iters": args.iters, "batch": args.batch, "dim": args.dim, "scale": args.scale, "lr": args.lr,
           "test_size": args.test_size}
    variants = args.variants.split(",")
    if "fp32" not in variants and not (args.out / "payload.pt").exists():
        variants.insert(0, "fp32")  # part 1 reads its recorded payloads
    for v in [] if args.no_training else variants:
        t0 = time.time()
        codes = testing.spawn(train_worker, args.nproc, str(args.out), v, cfg, timeout=3600)
        if codes != [0] * args.nproc:
            raise SystemExit(f"{v}: ranks exited {codes}")
        print(f"{v}: {time.time() - t0:.0f} s", flush=True)
    done = [v for v in VARIANTS if (args.out / f"{v}.json").exists()]
    auc = pd.DataFrame([json.loads((args.out / f"{v}.json").read_text()) for v in done])
    bytes_per_value = {"fp32": 4.0, "fp16": 2.0, "int8": (32 + 8) / 32}
    bytes_per_value.update({v: FixedRateFormat(args.dim, "int8").row_bytes / args.dim for v in variants if v.startswith("ours")})
    auc.insert(1, "bytes/value", auc["variant"].map(bytes_per_value))
    err = part1(args, args.out)
    auc.to_csv(args.out / "auc.csv", index=False)
    err.to_csv(args.out / "error.csv", index=False)
    print("\n## Error at the same bytes\n")
    print(table(err, "{:.4g}"))
    print(f"\n## Test AUC after {args.iters} iterations (batch {args.batch} x {args.nproc} ranks, dim {args.dim})\n")
    print(table(auc, "{:.4f}"))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
