import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from dlrmcomp import EBSchedule, ErrorBound
from dlrmcomp.bench.payload import CRITEO_KAGGLE_ROWS
from dlrmcomp.errorbound import decay_multiplier


def test_step_decay_pinned_values():
    s = EBSchedule(constant=2, early_stage=65536, decay="step")
    assert s.multiplier(0) == pytest.approx(2.0)
    assert s.multiplier(6554) == pytest.approx(1.9)
    assert s.multiplier(58982) == pytest.approx(1.1)
    assert s.multiplier(65535) == pytest.approx(1.1)
    assert s.multiplier(65536) == 1.0 and s.multiplier(10**7) == 1.0


@pytest.mark.parametrize("t", [0, 1000, 32768, 65535])
def test_linear_log_constant_formulas(t):
    c, e = 2.0, 65536
    assert decay_multiplier(t, "linear", c, e) == pytest.approx(c * (1 - (t / e) * (1 - 1 / c)))
    assert decay_multiplier(t, "log", c, e) == pytest.approx(
        c * ((1 - math.log(1 + (t / e) * (math.e - 1))) * (1 - 1 / c) + 1 / c))
    assert decay_multiplier(t, "constant", c, e) == c


@given(t=st.integers(0, 200000), decay=st.sampled_from(["step", "linear", "log"]), c=st.floats(1.0, 8.0))
def test_multiplier_decays_monotonically_from_c_to_one(t, decay, c):
    m, m_next = decay_multiplier(t, decay, c), decay_multiplier(t + 1, decay, c)
    assert 1.0 - 1e-12 <= m_next <= m + 1e-12 <= c + 1e-12


def test_table_bounds_and_seed_environment():
    env = {"TIGHTEN_EB_TABLES": "0 9 10", "LOOSEN_EB_TABLES": "5 8", "TIGHTEN_EB_VALUE": "0.01",
           "LOOSEN_EB_VALUE": "0.05", "BASE_ERROR_BOUND": "0.03", "EB_CONSTANT": "2",
           "EARLY_STAGE": "100", "DECAY_FUNC": "linear"}
    s = EBSchedule.from_env(env)
    assert (s.bound(0, 100), s.bound(5, 100), s.bound(1, 100)) == (0.01, 0.05, 0.03)
    assert s.bound(9, 0) == pytest.approx(0.02) and s.decay == "linear"
    defaults = EBSchedule.from_env({})
    assert defaults.tighten_tables == (0, 9, 10, 19, 20, 21, 22) and defaults.decay == "step"
    assert defaults.loosen_tables == (5, 8, 12, 15, 16, 17, 18, 24, 25)


def test_auto_tightens_largest_and_loosens_smallest():
    s = EBSchedule.auto(CRITEO_KAGGLE_ROWS)
    sizes = np.array(CRITEO_KAGGLE_ROWS)
    assert len(s.tighten_tables) == 8 and len(s.loosen_tables) == 8
    assert sizes[list(s.tighten_tables)].min() > sizes[[i for i in range(26) if i not in s.tighten_tables]].max()
    assert sizes[list(s.loosen_tables)].max() < sizes[[i for i in range(26) if i not in s.loosen_tables]].min()
    # the artifact's Kaggle lists: 8 largest tightened, its loosened tables among our loosened
    assert set(s.tighten_tables) == {2, 3, 9, 11, 15, 20, 23, 25}
    assert {8, 16, 19, 21, 22}.issubset(s.loosen_tables)


def test_schedule_file_round_trip(tmp_path):
    s = EBSchedule(base=0.02, tighten_tables=(1, 2), loosen_tables=(3,), decay="log")
    s.save(tmp_path / "s.json")
    assert EBSchedule.load(tmp_path / "s.json") == s
    assert EBSchedule.load("fixed:0.04").bound(7, 0) == 0.04
    with pytest.raises(ValueError, match="schedule"):
        EBSchedule.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="both"):
        EBSchedule(tighten_tables=(1,), loosen_tables=(1,))


def test_error_bound_resolution():
    x = np.array([np.nan, -1.0, 3.0, np.inf])
    assert ErrorBound(0.1, "rel").resolve(x) == pytest.approx(0.4)
    assert ErrorBound(0.1, "abs").resolve(x) == 0.1
    assert ErrorBound(0.1).resolve(np.ones(5)) == 0.0
    for bad in (0, -0.1, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError):
            ErrorBound(bad)
