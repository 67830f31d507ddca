"""Where a TT lookup's time goes: torch.profiler over forward + backward (the module's call, as
``benchmarks/tt.py`` times it) of naive TT vs EcoRec's prefix reuse, Zipf(1.05) lookups hashed over
the rows.

Per method: milliseconds a step (median of ``--repeat`` runs of ``--iters`` steps), the top ops by
self device time (CUDA) or self CPU time (CPU), and per step: the aten ops called (all, and those
that run a kernel themselves: the CPU's proxy for launches), CUDA kernel launches, and host
syncs (CUDA: counted by ``torch.cuda.set_sync_debug_mode``; CPU: the calls of ops that sync on
CUDA: unique, unique_consecutive, nonzero, bincount, ``.item()``; ``.tolist()`` does not show).
``--gathered`` runs the GPU's way on the CPU (core slices gathered for batched GEMMs, no per-i2
loop): its op counts are the CPU's stand-in for the kernels of a CUDA step.

Usage::

    python scripts/profile_tt.py [--device cpu|cuda] [--batch 16384] [--rows 1e7] [--dim 32] [--rank 32]
                                 [--methods naive,ecorec] [--iters 5] [--repeat 5] [--top 15]
                                 [--threads 1] [--gathered]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from contextlib import nullcontext
from unittest import mock

import torch
from torch.profiler import ProfilerActivity, profile

from dlrmcomp.bench.tt import zipf_lookups
from dlrmcomp.models.tt import TTEmbeddingBag

#: ops that make the host wait for the GPU on CUDA (output size or value read back)
SYNCING = {"aten::_unique2", "aten::unique_consecutive", "aten::nonzero", "aten::bincount", "aten::masked_select",
           "aten::_local_scalar_dense"}
#: ops that only make views, allocate or dispatch to others (no kernel of their own)
NO_KERNEL = {"view", "as_strided", "empty", "empty_strided", "empty_like", "new_empty", "resize_", "detach", "detach_",
             "resolve_conj", "resolve_neg", "flatten", "unflatten", "transpose", "t", "numpy_T", "permute", "select",
             "slice", "narrow", "split", "chunk", "reshape", "_reshape_alias", "_unsafe_view", "view_as", "expand",
             "expand_as", "unsqueeze", "squeeze", "alias", "lift_fresh", "contiguous", "to", "_to_copy", "matmul"}
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def op_counts(prof, iters: int, cuda: bool) -> dict[str, float]:
    """Per step: aten ops (all), kernel ops (no view, allocation or conversion, and no such op
    beneath), CUDA kernel launches, and the ops that sync on CUDA (the CPU's proxy)."""
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU]
    aten = [e for e in events if e.name.startswith("aten::")]

    def runs_kernel(e) -> bool:
        return e.name.startswith("aten::") and e.name[6:] not in NO_KERNEL

    def below(e):
        for c in e.cpu_children:
            yield from [c] if runs_kernel(c) else below(c)

    kernels = [e for e in aten if runs_kernel(e) and next(below(e), None) is None]
    out = {"aten ops": len(aten) / iters, "kernel ops": len(kernels) / iters}
    if cuda:
        out["kernel launches"] = sum(e.name in LAUNCHES for e in events) / iters
        out["device kernels"] = sum(e.device_type == torch.autograd.DeviceType.CUDA for e in prof.events()) / iters
    else:
        out["syncing ops (on CUDA)"] = sum(e.name in SYNCING for e in aten) / iters
    return out


def cuda_syncs(step) -> int:
    """Host syncs of one step, from torch's sync debug mode."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


def profile_method(method: str, args, idx, off, device) -> dict[str, float]:
    """Time and profile ``--iters`` forward + backward steps of one method; print its op table."""
    n, cuda = int(args.rows), device.type == "cuda"
    torch.manual_seed(0)
    table = TTEmbeddingBag(n, args.dim, (args.rank, args.rank), method=method, device=device)

    def step():
        table.zero_grad(set_to_none=True)
        table(idx, off).sum().backward()

    for _ in range(3):
        step()
    times = []
    for _ in range(args.repeat):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.iters):
            step()
        sync(device)
        times.append((time.perf_counter() - t0) / args.iters)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(args.iters):
            step()
        sync(device)
    counts = {"ms": 1e3 * statistics.median(times), **op_counts(prof, args.iters, cuda)}
    if cuda:
        counts["host syncs"] = cuda_syncs(step)
    print(f"\n## {method}: " + ", ".join(f"{k} {v:.4g}" for k, v in counts.items()))
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=args.top))
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--rows", type=float, default=1e7)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--methods", default="naive,ecorec")
    p.add_argument("--iters", type=int, default=5, help="steps profiled / timed per run (default 5)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs, the median is shown (default 5)")
    p.add_argument("--gathered", action="store_true", help="on the CPU, the GPU's way (see above)")
    p.add_argument("--top", type=int, default=15, help="rows of the op table (default 15)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device, n = torch.device(args.device), int(args.rows)
    idx, off = zipf_lookups(n, args.batch, device=device)
    print(f"# TT lookup profile: {device}, batch {args.batch}, N {n:.0e}, D {args.dim}, ranks {args.rank}, "
          f"{torch.unique(idx).numel()} unique, torch {torch.__version__}")
    summary = {}
    way = mock.patch("dlrmcomp.models.tt._grouped", lambda core: False) if args.gathered else nullcontext()
    with way:
        for method in args.methods.split(","):
            summary[method] = profile_method(method, args, idx, off, device)
    print("\n## per forward + backward step")
    keys = list(next(iter(summary.values())))
    print("| method | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for method, counts in summary.items():
        print(f"| {method} | " + " | ".join(f"{counts[k]:.4g}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
