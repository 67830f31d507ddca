import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _codec_registry():
    """Recipes a test registers by using them (``codecs.get("quant+match+ans")``) are undone after
    it, so that no test sees the registry another left behind."""
    from dlrmcomp.codecs import base

    saved = dict(base._registry)
    yield
    base._registry.clear()
    base._registry.update(saved)
