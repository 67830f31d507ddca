"""Error bounds: one bound resolved against data, and the SC'24 two-level schedule.

``ErrorBound`` turns a relative or absolute bound into the absolute bound a quantizer uses
(SZ3's ``calAbsErrorBound``). ``EBSchedule`` is the artifact's dual-level adaptation: a
per-table relative bound (tighten / loosen / base) times a per-iteration multiplier that starts
at ``constant`` (C) and decays to 1 by ``early_stage`` (E).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

MODES = ("abs", "rel")
DECAYS = ("step", "linear", "log", "constant")


def check_bound(eb: float) -> float:
    """Validate a bound value: a finite float > 0."""
    try:
        eb = float(eb)
    except (TypeError, ValueError):
        raise ValueError(f"error bound must be a number, got {eb!r}") from None
    if not math.isfinite(eb) or eb <= 0:
        raise ValueError(f"error bound must be finite and > 0, got {eb!r}")
    return eb


def finite_range(x: np.ndarray) -> tuple[float, float]:
    """(min, max) over the finite values of ``x``; (0.0, 0.0) when there are none."""
    x = np.asarray(x)
    if x.size == 0:
        return 0.0, 0.0
    lo, hi = float(np.min(x)), float(np.max(x))
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi
    finite = x[np.isfinite(x)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


@dataclass(frozen=True)
class ErrorBound:
    """A pointwise bound: ``abs`` (|x - x'| <= value) or ``rel`` (value x finite range of x).

    >>> ErrorBound(0.1, "rel").resolve(np.array([0.0, 2.0]))
    0.2
    """

    value: float
    mode: str = "rel"

    def __post_init__(self):
        object.__setattr__(self, "value", check_bound(self.value))
        if self.mode not in MODES:
            raise ValueError(f"error-bound mode must be one of {MODES}, got {self.mode!r}")

    def resolve(self, x: np.ndarray) -> float:
        """The absolute bound for data ``x`` (0.0 for a rel bound on constant data)."""
        if self.mode == "abs":
            return self.value
        lo, hi = finite_range(x)
        with np.errstate(over="ignore"):
            return float(self.value * (np.float64(hi) - np.float64(lo)))


def decay_multiplier(t: int, decay: str = "step", constant: float = 2.0, early_stage: int = 65536) -> float:
    """The seeds' ``stage_check(t)``: C at t=0, decaying to 1 at t >= E.

    >>> [round(decay_multiplier(t), 6) for t in (0, 6553, 6554, 58982, 65536)]
    [2.0, 2.0, 1.9, 1.1, 1.0]
    """
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
    c, e = float(constant), int(early_stage)
    if t < 0:
        raise ValueError(f"iteration must be >= 0, got {t}")
    if decay == "constant":
        return c
    if t >= e:
        return 1.0
    frac = t / e
    if decay == "linear":
        return c * (1 - frac * (1 - 1 / c))
    if decay == "log":
        return c * ((1 - math.log(1 + frac * (math.e - 1))) * (1 - 1 / c) + 1 / c)
    # step: the seeds' k = floor(10 t / E) steps at the fractional iterations j E / 10; counting
    # iteration t at its midpoint puts each step on the nearest whole iteration, round(j E / 10).
    k = math.floor(10 * (t + 0.5) / e)
    return c * max(1 - k * (1 - 1 / c) / 10, 1 / c)


def _parse_tables(text: str | None, default: Sequence[int]) -> tuple[int, ...]:
    if text is None:
        return tuple(default)
    try:
        return tuple(int(tok) for tok in text.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"table list must be integers separated by spaces, got {text!r}") from None


#: The seeds' EARLY_STAGE: 65,536 iterations, about a fifth of a Criteo Kaggle epoch at batch 128.
SEEDS_EARLY_STAGE = 65536
#: ``auto``'s decay covers this fraction of a run (the seeds' share of a Kaggle epoch).
RUN_FRACTION = 5


def run_early_stage(iters: int) -> int:
    """The decay length ``auto`` gives a run of ``iters`` iterations: a fifth of the run
    (``iters // 5``, at least 1), never more than the seeds' 65,536.

    A run shorter than 5 x 65,536 iterations would otherwise spend all or most of itself at the
    doubled early bounds; from 327,680 iterations on it is the seeds' value.

    >>> run_early_stage(3000), run_early_stage(10**6)
    (600, 65536)
    """
    return max(1, min(SEEDS_EARLY_STAGE, int(iters) // RUN_FRACTION))


# Values from the artifact's run script (seeds/000: SC_ADAE_scripts).
ARTIFACT_TIGHTEN_TABLES = (0, 9, 10, 19, 20, 21, 22)
ARTIFACT_LOOSEN_TABLES = (5, 8, 12, 15, 16, 17, 18, 24, 25)


@dataclass(frozen=True)
class EBSchedule:
    """Relative bound for (table, iteration) = table bound x decay multiplier.

    Tables in ``tighten_tables`` get ``tighten``, tables in ``loosen_tables`` get ``loosen``,
    all others ``base``; the multiplier follows ``decay`` (see :func:`decay_multiplier`).

    >>> s = EBSchedule(tighten_tables=(0,), loosen_tables=(2,))
    >>> round(s.bound(0, 0), 6), s.bound(1, 65536), s.bound(2, 10**6)
    (0.02, 0.03, 0.05)
    """

    base: float = 0.03
    tighten: float = 0.01
    loosen: float = 0.05
    tighten_tables: tuple[int, ...] = ()
    loosen_tables: tuple[int, ...] = ()
    constant: float = 2.0
    early_stage: int = SEEDS_EARLY_STAGE
    decay: str = "step"

    def __post_init__(self):
        for name in ("base", "tighten", "loosen", "constant"):
            object.__setattr__(self, name, check_bound(getattr(self, name)))
        object.__setattr__(self, "tighten_tables", tuple(int(t) for t in self.tighten_tables))
        object.__setattr__(self, "loosen_tables", tuple(int(t) for t in self.loosen_tables))
        both = set(self.tighten_tables) & set(self.loosen_tables)
        if both:
            raise ValueError(f"tables {sorted(both)} are both tightened and loosened")
        if int(self.early_stage) <= 0:
            raise ValueError(f"early_stage must be > 0, got {self.early_stage}")
        if self.decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}, got {self.decay!r}")

    def table_bound(self, table: int) -> float:
        if table in self.tighten_tables:
            return self.tighten
        if table in self.loosen_tables:
            return self.loosen
        return self.base

    def multiplier(self, t: int) -> float:
        return decay_multiplier(t, self.decay, self.constant, self.early_stage)

    def bound(self, table: int, t: int) -> float:
        """Relative bound of ``table`` at iteration ``t``."""
        return self.table_bound(table) * self.multiplier(t)

    def bounds(self, n_tables: int, t: int) -> list[float]:
        return [self.bound(i, t) for i in range(n_tables)]

    def table_class(self, table: int) -> str:
        return "tighten" if table in self.tighten_tables else "loosen" if table in self.loosen_tables else "base"

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "EBSchedule":
        """Read the seeds' variables (TIGHTEN_EB_TABLES, ..., DECAY_FUNC); artifact defaults."""
        env = os.environ if environ is None else environ
        return cls(
            base=float(env.get("BASE_ERROR_BOUND", 0.03)),
            tighten=float(env.get("TIGHTEN_EB_VALUE", 0.01)),
            loosen=float(env.get("LOOSEN_EB_VALUE", 0.05)),
            tighten_tables=_parse_tables(env.get("TIGHTEN_EB_TABLES"), ARTIFACT_TIGHTEN_TABLES),
            loosen_tables=_parse_tables(env.get("LOOSEN_EB_TABLES"), ARTIFACT_LOOSEN_TABLES),
            constant=float(env.get("EB_CONSTANT", 2)),
            early_stage=int(env.get("EARLY_STAGE", 65536)),
            decay=env.get("DECAY_FUNC", "step"),
        )

    @classmethod
    def auto(cls, table_sizes: Sequence[int], tighten_fraction: float = 0.3,
             loosen_fraction: float = 0.3, iters: int | None = None, **params) -> "EBSchedule":
        """Classify tables by cardinality, the rule the artifact's lists follow.

        The ``round(tighten_fraction * n)`` largest tables are tightened and the
        ``round(loosen_fraction * n)`` smallest loosened (ties broken by table index); with the
        defaults, 26 Criteo tables give 8 tightened and 8 loosened, close to the artifact's 8 / 6
        (Kaggle) and 7 / 9 (Terabyte). ``iters`` (the run's length) sets the decay length to
        :func:`run_early_stage` unless ``early_stage`` is given. Other keyword arguments go to
        the constructor.
        """
        if iters is not None:
            params.setdefault("early_stage", run_early_stage(iters))
        if not 0 <= tighten_fraction <= 1 or not 0 <= loosen_fraction <= 1:
            raise ValueError("fractions must lie in [0, 1]")
        if tighten_fraction + loosen_fraction > 1:
            raise ValueError("tighten_fraction + loosen_fraction must be <= 1")
        n = len(table_sizes)
        order = sorted(range(n), key=lambda i: (-int(table_sizes[i]), i))
        n_tight, n_loose = round(tighten_fraction * n), round(loosen_fraction * n)
        return cls(tighten_tables=tuple(sorted(order[:n_tight])),
                   loosen_tables=tuple(sorted(order[n - n_loose:] if n_loose else ())), **params)

    @classmethod
    def fixed(cls, eb: float) -> "EBSchedule":
        """One bound for every table and iteration (no adaptation)."""
        return cls(base=eb, tighten=eb, loosen=eb, decay="constant", constant=1.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tighten_tables"], d["loosen_tables"] = list(self.tighten_tables), list(self.loosen_tables)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "EBSchedule":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown schedule fields: {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, spec: str | Path, table_sizes: Sequence[int] | None = None,
             iters: int | None = None) -> "EBSchedule":
        """``env`` | ``auto`` (needs ``table_sizes``; with ``iters``, the decay follows the run:
        :func:`run_early_stage`) | ``fixed:EB`` | path to a JSON file."""
        spec = str(spec)
        if spec == "env":
            return cls.from_env()
        if spec == "auto":
            if table_sizes is None:
                raise ValueError("schedule 'auto' needs the table sizes")
            return cls.auto(table_sizes, iters=iters)
        if spec.startswith("fixed:"):
            return cls.fixed(float(spec.split(":", 1)[1]))
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"schedule must be env, auto, fixed:EB or a JSON file; {spec!r} is none")
        return cls.from_dict(json.loads(path.read_text()))
