"""Hot/cold training: FAE's input profiler and per-epoch schedule, and Slipstream's skipping of
inputs whose embeddings went stale (seed 004)."""
from .profile import EpochInputs, HotColdSplit, hot_rows_for_budget, parse_bytes, profile_inputs
from .schedule import INPUTS, HostBag, HotColdSchedule, HotTable, build_schedule, epoch_batches
from .slipstream import StaleSkipper, droppable, linf_change, threshold_for_drop

__all__ = ["INPUTS", "EpochInputs", "HostBag", "HotColdSchedule", "HotColdSplit", "HotTable", "StaleSkipper",
           "build_schedule", "droppable", "epoch_batches", "hot_rows_for_budget", "linf_change", "parse_bytes",
           "profile_inputs", "threshold_for_drop"]
