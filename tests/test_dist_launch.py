"""The ranks-per-GPU launcher on CPU: which device each rank takes, and that the CLI hands
``--device`` to the torchrun workers. No GPU and no process group needed."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from dlrmcomp.dist import train as dist_train
from dlrmcomp.train import cli as train_cli
from dlrmcomp.dist.train import rank_device


@pytest.mark.parametrize("backend, device, local, n_gpus, expected", [
    ("gloo", "cuda", 0, 1, "cuda:0"),
    ("gloo", "cuda", 1, 1, "cuda:0"),  # two ranks sharing one GPU
    ("gloo", "cuda", 3, 2, "cuda:1"),
    ("gloo", "cuda", 5, 4, "cuda:1"),
    ("gloo", "auto", 1, 8, "cpu"),
    ("gloo", "cpu", 0, 1, "cpu"),
    ("nccl", "auto", 3, 8, "cuda:3"),  # NCCL: one GPU a rank
    ("nccl", "cuda", 1, 2, "cuda:1"),
])
def test_rank_device(backend, device, local, n_gpus, expected):
    assert rank_device(backend, device, local, n_gpus) == torch.device(expected)


def test_rank_device_rejects():
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        rank_device("gloo", "cuda", 0, 0)
    with pytest.raises(ValueError, match="backend must be"):
        rank_device("mpi", "auto", 0, 1)
    with pytest.raises(ValueError, match="backend must be"):
        rank_device("gloo", "tpu", 0, 1)


@pytest.fixture
def no_group(monkeypatch):
    """init_process_group without a rendezvous: records set_device and the group's arguments."""
    calls = {"set_device": [], "group": []}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls["set_device"].append(d))
    monkeypatch.setattr(dist_train.dist, "init_process_group", lambda *a, **k: calls["group"].append((a, k)))
    monkeypatch.setattr(dist_train, "set_timeout", lambda s: None)
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    return calls


@pytest.mark.parametrize("local", ["0", "1"])
def test_gloo_cuda_ranks_share_the_gpu(no_group, monkeypatch, local):
    monkeypatch.setenv("LOCAL_RANK", local)
    rank, world, device = dist_train.init_process_group("gloo", 5.0, rank=int(local), world=2, port=29999,
                                                        device="cuda")
    assert (rank, world, device) == (int(local), 2, torch.device("cuda", 0))
    assert no_group["set_device"] == [torch.device("cuda", 0)]
    (args, kwargs), = no_group["group"]
    assert args == ("gloo",) and kwargs["rank"] == int(local) and kwargs["world_size"] == 2


def test_gloo_auto_stays_on_the_cpu(no_group, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_train.init_process_group("gloo", 5.0, rank=1, world=2, port=29999)[2] == torch.device("cpu")
    assert no_group["set_device"] == []


def launched_worker(monkeypatch, argv: list[str]) -> tuple[list[str], dict]:
    """``dlrmcomp <argv>`` with torchrun replaced: (the worker's arguments, the launch env)."""
    from dlrmcomp.cli import main

    launched = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, env=None: launched.append((cmd, env)) or 0)
    assert main(argv) == 0
    (cmd, env), = launched
    i = cmd.index(f"--nproc-per-node={argv[argv.index('--nproc') + 1]}")
    assert cmd[:i] == [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    assert cmd[i + 1] == "-m" and cmd[i + 2].startswith("dlrmcomp.")
    return cmd[i + 3:], env


def test_train_cli_passes_device_to_the_workers(monkeypatch, tmp_path):
    worker, env = launched_worker(monkeypatch, ["train", "--nproc", "2", "--backend", "gloo", "--device", "cuda",
                                                "--out", str(tmp_path), "--fwd-comm", "gpu:quant+ans"])
    assert "--nproc" not in worker
    assert worker[worker.index("--device") + 1] == "cuda"
    assert env["NCCL_NVLS_ENABLE"] == "0"
    args = train_cli.build_parser().parse_args(worker)
    assert (args.backend, args.device, args.fwd_comm, args.out) == ("gloo", "cuda", "gpu:quant+ans", str(tmp_path))

    # and the worker hands it to init_process_group, which maps the ranks onto the GPU
    seen = {}

    class Stop(Exception):
        pass

    def fake_init(backend, timeout, **kw):
        seen.update(backend=backend, **kw)
        raise Stop

    monkeypatch.setattr(dist_train, "init_process_group", fake_init)
    with pytest.raises(Stop):
        train_cli.worker_main(worker)
    assert seen == {"backend": "gloo", "device": "cuda"}


def test_default_device_is_not_forwarded(monkeypatch, tmp_path):
    worker, _ = launched_worker(monkeypatch, ["train", "--nproc", "2", "--out", str(tmp_path)])
    assert "--device" not in worker and train_cli.build_parser().parse_args(worker).device == "auto"
