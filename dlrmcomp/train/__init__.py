"""Training with compression of the embedding all-to-all, one trainer at every world size;
profiles for smoke / demo / full runs."""
from .device import DeviceFeed, resolve_device
from .logs import parse_reference_log, read_jsonl
from .loop import MODES, TrainConfig, Trainer, comm_specs, evaluate, make_data, train
from .metrics import auc_score, binary_metrics

#: Run sizes per profile: smoke = seconds (tests, CI), demo = the issue's numbers, full = long.
PROFILES = {
    "smoke": dict(iters=120, batch_size=256, scale=1e-3, test_size=4096, eval_every=60, log_every=20, dump_every=60),
    "demo": dict(iters=2000, batch_size=512, scale=1e-3, test_size=20000, eval_every=250, log_every=50, dump_every=500),
    "full": dict(preset="kaggle", iters=30000, batch_size=512, scale=1e-2, test_size=100000, eval_every=2500,
                 log_every=250, dump_every=4096),
}


def profile_config(profile: str, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of a profile, with ``overrides`` applied."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    return TrainConfig(**{**PROFILES[profile], **overrides})


from .compare import compare, summary_table  # noqa: E402  (needs profile_config)

__all__ = ["MODES", "compare", "summary_table", "PROFILES", "DeviceFeed", "TrainConfig", "Trainer", "auc_score",
           "binary_metrics", "comm_specs", "evaluate", "make_data", "parse_reference_log", "profile_config",
           "read_jsonl", "resolve_device", "train"]
