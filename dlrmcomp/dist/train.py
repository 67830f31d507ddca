"""The process group: joining it (:func:`init_process_group`, :func:`rank_device`) and the object
collectives the trainer needs, which fall back to the one local value without a group.

The trainer itself is :class:`dlrmcomp.train.Trainer`, the same at every world size (the module
keeps its name because scripts import ``init_process_group`` from here).
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from .alltoall import guard, set_timeout


def world_info() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather(obj, what: str) -> list:
    """Every rank's ``obj`` in rank order (``[obj]`` without a group)."""
    if world_info()[1] == 1:
        return [obj]
    parts: list = [None] * dist.get_world_size()
    with guard(f"all_gather_object ({what})"):
        dist.all_gather_object(parts, obj)
    return parts


def gather(obj, what: str) -> list | None:
    """Every rank's ``obj`` in rank order on rank 0, None on the others (``[obj]`` without a group)."""
    rank, world = world_info()
    if world == 1:
        return [obj]
    parts: list | None = [None] * world if rank == 0 else None
    with guard(f"gather_object ({what})"):
        dist.gather_object(obj, parts, dst=0)
    return parts


def all_reduce(t: torch.Tensor, what: str, op: str = "sum") -> torch.Tensor:
    """``t`` summed (``op="max"``: the largest) over the ranks, in place (as is without a group)."""
    if world_info()[1] > 1:
        with guard(f"all_reduce ({what})"):
            dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t


def rank_device(backend: str, device: str, local_rank: int, n_gpus: int) -> torch.device:
    """The device of the rank with ``local_rank`` on a host with ``n_gpus`` GPUs: NCCL one GPU a
    rank (``cuda:local_rank``, whatever ``device`` says); gloo with ``device="cuda"`` several ranks
    per GPU (``cuda:local_rank % n_gpus``); gloo with "auto" or "cpu" the CPU. ValueError otherwise."""
    if backend == "nccl":
        return torch.device("cuda", local_rank)
    if backend == "gloo" and device == "cuda":
        if n_gpus < 1:
            raise ValueError("--device cuda needs a CUDA GPU (torch.cuda.device_count() is 0)")
        return torch.device("cuda", local_rank % n_gpus)
    if backend == "gloo" and device in ("auto", "cpu"):
        return torch.device("cpu")
    raise ValueError(f"backend must be 'gloo' or 'nccl' and device auto/cpu/cuda, got {backend!r}, {device!r}")


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
    n_gpus = torch.cuda.device_count() if backend == "nccl" or device == "cuda" else 0
    device = rank_device(backend, device, local, n_gpus)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    set_timeout(timeout)
    with guard("init_process_group (rendezvous)"):
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout))
    return rank, world, device
