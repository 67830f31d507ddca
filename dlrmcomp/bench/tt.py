"""Measurements of TT embedding tables (seed 003): lookup speed (naive TT vs EcoRec's prefix reuse
vs a dense ``nn.EmbeddingBag``), peak memory with and without micro-batches, AUC and parameter
compression against dense tables in training, and the table-wise pipeline's overlap."""
from __future__ import annotations

import dataclasses
import tempfile
import time
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.samples import sample_spec
from ..data.synthetic import KAGGLE_CARDINALITIES
from ..models.tt import TTConfig, TTEmbeddingBag, chunk_bounds, parameter_counts

#: the quality runs' optimizer: with SGD at lr 0.1 the TT cores (small, so small gradients) lag far behind
ADAGRAD = dict(optimizer="adagrad", lr=0.05)
#: sizes per profile: the speed sweep (batch, rows, dim, ranks), the memory sweep and the training runs
PROFILES = {
    "smoke": dict(speed=[(1024, 10**5, 16, 16), (2048, 10**6, 16, 16)], memory_batches=[2048, 4096],
                  memory_rows=10**6, quality=dict(iters=20, batch_size=128, scale=1e-3, test_size=1000, **ADAGRAD),
                  quality_ranks=[8, 16], pipeline=dict(iters=4, batch_size=512), repeat=1),
    "demo": dict(speed=[(4096, 10**7, 32, 32), (16384, 10**7, 32, 32), (16384, 10**5, 32, 32),
                        (16384, 10**8, 32, 32)],
                 memory_batches=[5000, 10000, 20000, 40000], memory_rows=10**8,
                 quality=dict(iters=300, batch_size=512, scale=1e-3, test_size=20000, **ADAGRAD),
                 quality_ranks=[8, 16, 32],
                 pipeline=dict(iters=20, batch_size=4096), repeat=2),
    "full": dict(speed=[(b, n, d, r) for b in (4096, 16384, 65536) for n in (10**5, 10**6, 10**7, 10**8)
                        for d in (16, 32, 64) for r in (16, 32, 64)],
                 memory_batches=[5000, 10000, 20000, 40000, 80000], memory_rows=10**8,
                 quality=dict(iters=3000, batch_size=512, scale=1e-2, test_size=50000, **ADAGRAD),
                 quality_ranks=[8, 16, 32],
                 pipeline=dict(iters=40, batch_size=16384), repeat=5),
}
#: a dense table larger than this is not built (it is reported as skipped)
DENSE_MAX_BYTES = 4 << 30


ORDERS = ("hashed", "frequency")


def zipf_lookups(n: int, batch: int, pooling: int = 1, alpha: float = 1.05, seed: int = 0, order: str = "hashed",
                 device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` bags of ``pooling`` Zipf(``alpha``) lookups into ``n`` rows: (indices, offsets).
    ``order`` "hashed": the popularity ranks scattered over the table (hot rows rarely share a
    prefix); "frequency": row id = popularity rank (a vocabulary sorted by count: hot rows share
    prefixes)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    rng = np.random.default_rng(seed)
    ranks = rng.zipf(alpha, batch * pooling).astype(np.uint64) - 1
    ids = (ranks * np.uint64(2654435761) if order == "hashed" else ranks) % np.uint64(n)
    return (torch.from_numpy(ids.astype(np.int64)).to(device),
            torch.arange(0, batch * pooling, pooling, device=device))


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _fwd_bwd_seconds(table: nn.Module, idx, off, repeat: int, steps: int | None = None) -> float:
    """Seconds of one forward + backward (the module's call, the pooled rows summed; gradients set
    to None before each, as a training step does): median over ``repeat`` runs, after a warm-up run,
    of ``steps`` steps in a row between device syncs (default 1 on the CPU, 5 on a GPU: a step of
    a few ms there, so the launches of one overlap the kernels of the one before, as in training)."""
    steps = steps or (5 if idx.device.type == "cuda" else 1)
    times = []
    for k in range(repeat + 1):
        _sync(idx.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            table.zero_grad(set_to_none=True)
            table(idx, off).sum().backward()
        _sync(idx.device)
        if k:
            times.append((time.perf_counter() - t0) / steps)
    return float(np.median(times))


def exactness(n: int = 5000, dim: int = 16, ranks: tuple[int, int] = (8, 8), batch: int = 512, seed: int = 0) -> dict:
    """Largest absolute difference (float64) of each lookup from an ``EmbeddingBag`` on the
    reconstructed table: pooled rows and core gradients, naive, EcoRec in one chunk and in 7."""
    torch.manual_seed(seed)
    table = TTEmbeddingBag(n, dim, ranks, dtype=torch.float64)
    idx, off = zipf_lookups(n, batch, pooling=3, seed=seed)
    grad = torch.randn(batch, dim, dtype=torch.float64)
    ref = nn.functional.embedding_bag(idx, table.full_weight(), off, mode="sum")
    ref_grads = torch.autograd.grad(ref, list(table.cores), grad)
    out = {}
    variants = {"naive": ("naive", 1), "ecorec": ("ecorec", 1), "ecorec, 7 chunks": ("ecorec", 7)}
    for name, (method, chunks) in variants.items():
        table.method, table.chunks, table.min_chunk = method, chunks, 1
        pooled = table(idx, off)
        grads = torch.autograd.grad(pooled, list(table.cores), grad)
        out[name] = {"pooled": float((pooled - ref).abs().max().detach()),
                     "grad": max(float((g - r).abs().max()) for g, r in zip(grads, ref_grads))}
    return out


def lookup_speed(configs: Sequence[tuple[int, int, int, int]], device="cpu", pooling: int = 1, alpha: float = 1.05,
                 repeat: int = 3, methods: Sequence[str] = ("dense", "naive", "ecorec"),
                 orders: Sequence[str] = ORDERS) -> pd.DataFrame:
    """Forward + backward milliseconds of each method per (batch, rows, dim, rank) config (both TT
    ranks = rank) and row order; ``speedup_vs_naive`` is naive TT time / this method's time."""
    rows = []
    for order, (batch, n, dim, rank) in ((o, c) for o in orders for c in configs):
        idx, off = zipf_lookups(n, batch, pooling, alpha, order=order, device=device)
        base = dict(order=order, batch=batch, rows=n, dim=dim, rank=rank, pooling=pooling,
                    unique=int(torch.unique(idx).numel()))
        times = {}
        for method in methods:
            if method == "dense":
                if n * dim * 4 > DENSE_MAX_BYTES:
                    rows.append({**base, "method": method, "ms": None, "note": "dense table too large"})
                    continue
                table = nn.EmbeddingBag(n, dim, mode="sum", sparse=True, device=device)
            else:
                torch.manual_seed(0)
                table = TTEmbeddingBag(n, dim, (rank, rank), method=method, device=device)
            times[method] = _fwd_bwd_seconds(table, idx, off, repeat)
            rows.append({**base, "method": method, "ms": 1e3 * times[method]})
            del table
        for r in rows[-len(methods):]:
            r["speedup_vs_naive"] = times["naive"] / (r["ms"] / 1e3) if r["ms"] and "naive" in times else None
    return pd.DataFrame(rows)


def intermediate_bytes(table: TTEmbeddingBag, idx: torch.Tensor, off: torch.Tensor) -> int:
    """Analytic peak of the tensors a lookup's forward + backward allocates besides the cores
    (float32), from the actual unique indices and prefixes, for the GPU's way (``G2`` slices
    gathered per prefix; the CPU's grouped GEMMs gather none): the CPU stand-in for
    ``torch.cuda.max_memory_allocated``."""
    q1, q2, q3 = table.q_shapes
    _, r1, r2, _ = table.ranks
    dim, lookups, bags = table.embedding_dim, idx.numel(), off.numel()
    gathered = q1 * r1 + r1 * q2 * r2  # G1 and G2 slices of a prefix
    product = q1 * q2 * r2  # a prefix's G1 G2 (and its gradient)
    per_index = r2 * q3 + 2 * product + 2 * dim  # G3 slice, gathered product + gradient, row + gradient
    if table.method == "naive":  # every lookup's chain is kept for the backward
        return 4 * (lookups * (gathered + 2 * product + per_index) + bags * dim)
    uniq = torch.unique(idx)
    prefixes, pinv = torch.unique_consecutive(uniq // table.p_shapes[2], return_inverse=True)
    chunk = 0
    for a, b in chunk_bounds(uniq.numel(), table.chunks, table.min_chunk):
        chunk_prefixes = int(pinv[b - 1] - pinv[a]) + 1  # at most one computed by the chunk before
        chunk = max(chunk, chunk_prefixes * gathered + (b - a) * per_index)
    kept = 2 * prefixes.numel() * product  # the products, kept for the backward, and their gradient
    batch_part = kept + 2 * uniq.numel() * dim + lookups * (dim + 3) + 2 * bags * dim  # + rows, index data, output
    return 4 * (chunk + batch_part)


def memory_peak(n: int, dim: int, ranks: tuple[int, int], batches: Sequence[int], device="cpu",
                chunk_size: int = 20000, pooling: int = 1, alpha: float = 1.05, order: str = "hashed") -> pd.DataFrame:
    """Peak memory of one forward + backward per batch, EcoRec's lookup without micro-batches and
    with chunks of ``chunk_size`` unique indices (memory flat in the batch), and naive TT.
    CUDA: ``torch.cuda.max_memory_allocated`` (cores included); CPU: :func:`intermediate_bytes`
    plus the cores and their gradients."""
    torch.manual_seed(0)
    table = TTEmbeddingBag(n, dim, ranks, device=device)
    core_bytes = 4 * table.num_parameters
    cuda = torch.device(device).type == "cuda"
    variants = {"naive": ("naive", 1, 1), "ecorec, one chunk": ("ecorec", 1, 1),
                f"ecorec, chunks of {chunk_size:,}": ("ecorec", 10**9, chunk_size)}
    rows = []
    for batch in batches:
        idx, off = zipf_lookups(n, batch, pooling, alpha, order=order, device=device)
        for name, (method, chunks, min_chunk) in variants.items():
            table.method, table.chunks, table.min_chunk = method, chunks, min_chunk
            table.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                table(idx, off).sum().backward()
                torch.cuda.synchronize(device)
                peak, how = torch.cuda.max_memory_allocated(device), "measured"
            else:
                peak, how = 2 * core_bytes + intermediate_bytes(table, idx, off), "analytic"
            rows.append(dict(batch=batch, rows=n, dim=dim, ranks=list(ranks), variant=name, peak_gb=peak / 1e9,
                             core_gb=core_bytes / 1e9, how=how, unique=int(torch.unique(idx).numel())))
    return pd.DataFrame(rows)


def compression_table(ranks: Sequence[int], dim: int = 16, min_rows: int = 1000,
                      table_sizes: Sequence[int] = KAGGLE_CARDINALITIES) -> pd.DataFrame:
    """Embedding parameters dense vs TT at each rank (r1 = r2) for ``table_sizes``."""
    return pd.DataFrame([{"rank": r, "min_rows": min_rows,
                          **parameter_counts(table_sizes, dim, TTConfig((r, r), min_rows))} for r in ranks])


def quality_table(ranks: Sequence[int], criteo: str | None = "sample", criteo_iters: int = 30, **train) -> pd.DataFrame:
    """:func:`quality` on the synthetic default (tables of 1,000 rows or more become TT) and, if
    given, Criteo data (from 200 rows: its tables are small) for ``criteo_iters`` iterations (30 of
    512: about 2 epochs of the 7,200-row sample; more overfit): ``criteo`` "TRAIN[,TEST]", or
    "sample" for the sample in ../shared/data/real (train and dev; skipped when absent), or None."""
    runs = [quality(ranks, **train)]
    if criteo == "sample":
        spec = sample_spec("criteo", heldout="dev")
        criteo = spec.split(":", 1)[1] if spec else None
    if criteo:
        real = {k: v for k, v in train.items() if k not in ("scale", "test_size")}
        real["iters"] = min(real.get("iters", criteo_iters), criteo_iters)
        runs.append(quality(ranks, data=f"criteo:{criteo}", min_rows=200, **real))
    return pd.concat(runs, ignore_index=True)


def quality(ranks: Sequence[int], data: str = "synthetic", min_rows: int = 1000, out_dir=None, **train) -> pd.DataFrame:
    """Test AUC / logloss of dense tables and of TT tables at each rank (one process), with the
    trained model's embedding parameters and the ratio to dense."""
    from ..train import TrainConfig, Trainer

    base = TrainConfig(data=data, eval_every=10**9, log_every=10**9, **train)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = out_dir or tmp
        for rank in [None, *ranks]:
            cfg = base if rank is None else \
                base.replace(embedding="tt", tt_ranks=f"{rank},{rank}", tt_min_rows=min_rows)
            trainer = Trainer(cfg, f"{root}/{'dense' if rank is None else f'tt{rank}'}")
            s = trainer.run(progress=False)
            sizes, dim = trainer.data.table_sizes, trainer.model.dim
            counts = parameter_counts(sizes, dim, TTConfig((rank, rank), min_rows)) if rank else \
                {"dense": sum(sizes) * dim, "tt": sum(sizes) * dim, "ratio": 1.0}
            rows.append(dict(data=data.split(":")[0] if data != "synthetic" else f"synthetic x{cfg.scale:g}",
                             embedding="dense" if rank is None else "tt", rank=rank, auc=s["test_auc"],
                             logloss=s["test_logloss"], bayes_auc=s["bayes_auc"], params=counts["tt"],
                             ratio=counts["ratio"], seconds=s["seconds"]))
    df = pd.DataFrame(rows)
    df["auc_change"] = df.auc - df.auc[0]
    return df


def pipeline_overlap(world: int = 2, groups: int = 4, skew: float = 1.0, out_dir=None, timeout: float = 300,
                     **train) -> pd.DataFrame:
    """Seconds a step of ``world`` gloo CPU ranks training TT tables: one all-to-all, the
    table-wise pipeline without overlap (the same groups in sequence) and with it."""
    from ..dist import testing
    from ..train import TrainConfig, read_jsonl
    from ..train.testing import train_worker

    base = TrainConfig(embedding="tt", eval_every=10**9, log_every=10**9, test_size=1000, **train)
    variants = {"one all-to-all": {}, "pipeline, no overlap": dict(pipeline_groups=groups, pipeline_overlap=False,
                                                                    pipeline_skew=skew),
                "pipeline, overlap": dict(pipeline_groups=groups, pipeline_skew=skew)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, changes) in enumerate(variants.items()):
            out = f"{out_dir or tmp}/pipeline{k}"
            cfg = dataclasses.asdict(base.replace(**changes))
            codes = testing.spawn(train_worker, world, out, cfg, timeout=timeout)
            if codes != [0] * world:
                raise RuntimeError(f"{name}: ranks exited with {codes}")
            summary = torch.load(f"{out}/dist_result.pt", weights_only=False)["summary"]
            log = read_jsonl(f"{out}/log.jsonl")
            step = log[log.kind == "comm"].step_s.iloc[1:]  # the first step warms up
            rows.append(dict(variant=name, world=world, groups=changes.get("pipeline_groups", 1),
                             step_ms=1e3 * float(np.median(step)), test_logloss=summary["test_logloss"]))
    return pd.DataFrame(rows)


def speed_target(speed: pd.DataFrame, batch: int = 16384) -> dict[str, float]:
    """Per row order, the smallest prefix-reuse speed-up over naive TT at ``batch`` (the target: >= 2)."""
    got = speed[(speed.method == "ecorec") & (speed.batch == batch)]
    return {order: float(g.speedup_vs_naive.min()) for order, g in got.groupby("order")}
