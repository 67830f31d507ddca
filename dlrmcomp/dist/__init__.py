"""Model-parallel DLRM on torch.distributed: table-wise sharding, DDP MLPs, and a compressed
embedding all-to-all with forward/backward codecs (TorchRec's QCommsConfig) and index-aware dedup.

Launch with ``dlrmcomp train --nproc N [--backend gloo|nccl]`` or
``torchrun --nproc-per-node N -m dlrmcomp.dist --out RUN ...``.
"""
from .alltoall import Comm, CommStats, RankFailure, exchange, pooled_all_to_all
from .comms import BASELINES, CommCodec, QCommsConfig, get_comm_codec
from .model import ShardedDLRM, dedup_savings, local_sizes, plan_tables, table_costs

__all__ = ["BASELINES", "Comm", "CommCodec", "CommStats", "QCommsConfig", "RankFailure", "ShardedDLRM",
           "dedup_savings", "exchange", "get_comm_codec", "local_sizes", "plan_tables", "pooled_all_to_all",
           "table_costs"]
