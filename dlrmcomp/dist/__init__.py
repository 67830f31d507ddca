"""The embedding all-to-all and the model around it, at any world size: table-wise sharding, DDP
MLPs, and an exchange with forward/backward codecs (TorchRec's QCommsConfig: fp32, simulate,
fp16 / bf16 / int8, our codecs) and index-aware dedup. With one rank the exchange is a local pass
through the codecs and needs no process group.

The trainer is :class:`dlrmcomp.train.Trainer` (this package does not import it). Launch several
ranks with ``dlrmcomp train --nproc N [--backend gloo|nccl]`` or
``torchrun --nproc-per-node N -m dlrmcomp.train --out RUN ...``.
"""
from .alltoall import Comm, CommStats, RankFailure, exchange, pooled_all_to_all
from .comms import BASELINES, CommCodec, QCommsConfig, SimulateCodec, get_comm_codec
from .model import ShardedDLRM, dedup_savings, local_sizes, plan_tables, table_costs
from .train import init_process_group

__all__ = ["BASELINES", "Comm", "CommCodec", "CommStats", "QCommsConfig", "RankFailure", "ShardedDLRM",
           "SimulateCodec", "dedup_savings", "exchange", "get_comm_codec", "init_process_group", "local_sizes",
           "plan_tables", "pooled_all_to_all", "table_costs"]
