"""A TorchRec ``QuantizedCommCodec``: fixed-rate, error-bounded quantization driven by an EBSchedule.

TorchRec's sharders take a ``qcomm_codecs_registry`` (comm op name -> ``QuantizedCommCodecs``,
a forward and a backward codec) and call, per all-to-all, ``encode`` on the flat payload,
``calc_quantized_size`` to size every rank's slice *before* sending, and ``decode`` on the
concatenation of the slices it received. :class:`EBQuantCommCodec` speaks that protocol
(``torchrec.distributed.types.QuantizedCommCodec``; plain torch, so it runs and tests without
torchrec), and :func:`qcomm_codecs_registry` builds the registry::

    from dlrmcomp import EBSchedule
    from dlrmcomp.adapters.torchrec import qcomm_codecs_registry, tables_per_rank
    registry = qcomm_codecs_registry(EBSchedule.auto(table_sizes), row_dim=64)
    sharder = EmbeddingBagCollectionSharder(qcomm_codecs_registry=registry)
    # after planning (table-wise): per-table bounds need to know which table each row is
    set_layout(registry, tables_per_rank(plan["sparse_arch.embedding_bag_collection"], names, world))

It sits next to TorchRec's own codecs: ``get_qcomm_codecs_registry(QCommsConfig(...))`` gives
FP16/BF16/FP8/INT8 entries, and any entry (or any direction) can be swapped for ours.

**Wire format** (:class:`FixedRateFormat`, the layout of fbgemm's fused 8-bit row-wise codec):
the payload is cut into rows of ``row_dim`` values (``row_dim`` = the embedding dimension, so a
row is one sample's pooled vector of one table); each row is sent as its codes (uint8, or int16
for ``code_dtype="int16"``; padded to 4 bytes) followed by an fp32 ``base`` (the row's minimum)
and an fp32 ``step``. The value is ``base + code * step``. With ``step`` just under ``2 eb_abs``,
every element is within ``eb_abs``; the codes never overflow, so no escapes are needed, as long
as the relative bound is at least :attr:`FixedRateFormat.min_rel_bound` (about 1/509 for int8,
1/126,900 for int16), checked against the schedule when the codec is built.

**Bounds.** ``eb_abs = schedule.bound(table, t) * range(table's rows in this payload)``: the
seeds' per-table, per-iteration bound, resolved for each all-to-all. Forward and backward codecs
share an :class:`IterationClock`: by default each forward encode starts a new iteration and the
backward codec uses the iteration of the last forward. With a table layout (:func:`set_layout`,
table-wise sharding and one embedding dimension) each table gets its own bound; without one, the
whole payload is one "table" with the schedule's base bound. The encoder checks every element
against its bound (``verify=True``) and counts misses in :attr:`EBQuantCommCodec.violations`:
non-finite values (which a fixed-rate code cannot carry: every element of their table counts), or
a row so far from zero against its bound that float32 cannot resolve the grid there (not seen in
the tests, down to int16's finest bound on data 50 ranges from zero).

**What the entropy-coded codecs add.** Fixed-rate codes cost 8 (or 16) bits per value whatever
the bound: at D = 64 that is 72 bytes per 64 floats, a ratio of 3.56, the same bytes as TorchRec's
INT8 at ``row_dim`` 64, which uses all 256 levels and so has the smaller error at equal bytes. At
eb 0.03 our codes take only ~17 distinct values (about 4 bits of entropy): ``quant+ans`` sends
about 10x fewer bytes than fp32 and ``quant+dedup+ans`` ~70x (benchmarks/RESULTS.md), with the
same bound and escapes for any value. Their size is only known after encoding, which TorchRec's
all-to-all (sizes from ``calc_quantized_size``) cannot carry; dlrmcomp's own exchange
(``dlrmcomp.dist``) sends the sizes first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errorbound import EBSchedule

#: code dtype -> (torch dtype of the codes, largest code, offset added to code for storage)
CODE_DTYPES = {"int8": (torch.uint8, 255, 0), "int16": (torch.int16, 65535, -32768)}
#: step <= 2 eb_abs (1 - margin): room for float32 rounding in the codes' arithmetic
MARGINS = {"int8": 2.0 ** -10, "int16": 2.0 ** -5}
HEADER_BYTES = 8  # fp32 base + fp32 step per row
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class FixedRateFormat:
    """Rows of ``row_dim`` values -> [codes, padded to 4 bytes | fp32 base | fp32 step] each.

    >>> f = FixedRateFormat(64)
    >>> f.row_bytes, f.quantized_size(64 * 10), round(f.min_rel_bound, 6)
    (72, 720, 0.001963)
    """

    row_dim: int
    code_dtype: str = "int8"

    def __post_init__(self):
        if self.code_dtype not in CODE_DTYPES:
            raise ValueError(f"code_dtype must be one of {tuple(CODE_DTYPES)}, got {self.code_dtype!r}")
        if int(self.row_dim) <= 0:
            raise ValueError(f"row_dim must be > 0, got {self.row_dim}")
        object.__setattr__(self, "row_dim", int(self.row_dim))

    @property
    def levels(self) -> int:
        """Largest code (codes run 0..levels)."""
        return CODE_DTYPES[self.code_dtype][1]

    @property
    def code_bytes(self) -> int:
        itemsize = torch.empty(0, dtype=CODE_DTYPES[self.code_dtype][0]).element_size()
        return (self.row_dim * itemsize + 3) // 4 * 4

    @property
    def row_bytes(self) -> int:
        return self.code_bytes + HEADER_BYTES

    @property
    def margin(self) -> float:
        return MARGINS[self.code_dtype]

    @property
    def min_rel_bound(self) -> float:
        """Smallest relative bound whose grid spans any row in ``levels`` steps (no escapes)."""
        return 1.0 / (2 * self.levels * (1 - self.margin)) * (1 + 2.0 ** -16)

    def rows(self, n_values: int) -> int:
        if n_values % self.row_dim:
            raise ValueError(f"{n_values} values are not whole rows of {self.row_dim}; the embedding "
                             "dimension (row_dim) must divide every slice of the all-to-all")
        return n_values // self.row_dim

    def quantized_size(self, n_values: int) -> int:
        """Bytes for ``n_values`` floats (exact)."""
        return self.rows(n_values) * self.row_bytes

    def encode(self, x: torch.Tensor, eb_abs: torch.Tensor) -> torch.Tensor:
        """Flat float ``x`` + per-row absolute bounds [rows] -> flat uint8 buffer."""
        rows = x.reshape(self.rows(x.numel()), self.row_dim).float()
        lo, hi = rows.amin(dim=1), rows.amax(dim=1)
        # room for float32 rounding: ``margin`` of the bound for the codes' arithmetic, and half an ulp
        # of the row's largest magnitude for the final ``base + code * step``, as far as the codes
        # still span the row (beyond that, float32 cannot resolve the bound there: counted misses)
        step = 2 * (eb_abs.float() * (1 - self.margin) - torch.maximum(lo.abs(), hi.abs()) * 2.0 ** -24)
        step = torch.maximum(step, (hi - lo) / self.levels).clamp_min(0)
        safe = torch.where(step > 0, step, torch.ones_like(step))  # zero bound: constant rows, codes 0
        q = (rows - lo[:, None]).div_(safe[:, None]).round_().clamp_(0, self.levels)
        code_dtype, _, offset = CODE_DTYPES[self.code_dtype]
        codes = q.add_(offset).to(code_dtype) if offset else q.to(code_dtype)
        n, used = rows.shape[0], self.row_dim * codes.element_size()
        out = torch.empty(n, self.row_bytes, dtype=torch.uint8, device=x.device)
        out[:, :used] = codes.view(torch.uint8).view(n, used)
        out[:, used:self.code_bytes] = 0
        out[:, self.code_bytes:] = torch.stack([lo, step], dim=1).view(torch.uint8)
        return out.view(-1)

    def decode(self, buf: torch.Tensor) -> torch.Tensor:
        """uint8 buffer of whole rows -> flat float32 values."""
        if buf.numel() % self.row_bytes:
            raise ValueError(f"{buf.numel()} bytes are not whole rows of {self.row_bytes}")
        b = buf.view(buf.numel() // self.row_bytes, self.row_bytes)
        code_dtype, _, offset = CODE_DTYPES[self.code_dtype]
        codes = b[:, :self.row_dim * torch.empty(0, dtype=code_dtype).element_size()].contiguous().view(code_dtype)
        side = b[:, self.code_bytes:].contiguous().view(torch.float32)  # [rows, 2]: base, step
        q = codes.float() - offset if offset else codes.float()
        return (q * side[:, 1:2] + side[:, 0:1]).reshape(-1)


class IterationClock:
    """The training iteration a forward/backward codec pair reads.

    ``auto=True``: each forward encode starts the next iteration (0, 1, ...); the backward codec
    reads :attr:`current`. Models with more than one forward all-to-all per step use
    ``auto=False`` and call :meth:`set` once per step.
    """

    def __init__(self, start: int = 0, auto: bool = True):
        self.current, self._next, self.auto = int(start), int(start), bool(auto)

    def forward(self) -> int:
        self.current = self._next
        if self.auto:
            self._next += 1
        return self.current

    def set(self, t: int) -> None:
        self.current = self._next = int(t)


@dataclass
class CommContext:
    """Per all-to-all state torchrec threads from ``create_context`` to ``decode``."""

    row_dim: int
    rank: int | None = None
    #: read by torchrec (padding for FP8/MX4 row groups); we never pad
    padded_dim_sum_per_rank: list[int] | None = None


@dataclass(frozen=True)
class EncodeRecord:
    """The last encode: iteration, global table ids (-1: the whole payload), their relative and
    absolute bounds, and the worst |error| / bound over its elements (None without ``verify``)."""

    iteration: int
    tables: tuple[int, ...]
    eb_rel: tuple[float, ...]
    eb_abs: tuple[float, ...]
    max_err_over_bound: float | None


class EBQuantCommCodec:
    """TorchRec ``QuantizedCommCodec`` (see the module docstring): fixed-rate codes, per-table and
    per-iteration bounds from ``schedule``, one direction (``forward`` payload or ``backward``
    gradients). ``tables_per_rank[r]`` = the global table ids of rank r's all-to-all columns, in
    order (:func:`tables_per_rank`); None = one bound for the whole payload.
    """

    #: torchrec's variable-batch path reads this attribute of every codec (FP8 padding)
    _comm_precision = None

    def __init__(self, schedule: EBSchedule | None = None, row_dim: int = 64, code_dtype: str = "int8",
                 direction: str = "forward", tables_per_rank: Sequence[Sequence[int]] | None = None,
                 clock: IterationClock | None = None, verify: bool = True):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.schedule = schedule if schedule is not None else EBSchedule()
        self.format = FixedRateFormat(row_dim, code_dtype)
        smallest = smallest_bound(self.schedule)
        if smallest < self.format.min_rel_bound:
            raise ValueError(f"schedule reaches relative bound {smallest:.3g}, below {code_dtype}'s "
                             f"{self.format.min_rel_bound:.3g} (codes would overflow); use code_dtype='int16' "
                             "or loosen the schedule")
        self.direction, self.verify = direction, bool(verify)
        self.clock = clock if clock is not None else IterationClock()
        self.tables_per_rank = None
        self.set_layout(tables_per_rank)
        self._last = None
        self._violations = None  # device counter, read by .violations
        self._table_rows: dict = {}

    # -- configuration ------------------------------------------------------------------------
    def set_layout(self, tables_per_rank: Sequence[Sequence[int]] | None) -> None:
        self.tables_per_rank = None if tables_per_rank is None else [[int(t) for t in ts] for ts in tables_per_rank]
        self._table_rows = {}

    def get_config(self) -> dict:
        return {"schedule": self.schedule.to_dict(), "row_dim": self.format.row_dim,
                "code_dtype": self.format.code_dtype, "direction": self.direction,
                "tables_per_rank": self.tables_per_rank, "verify": self.verify}

    @classmethod
    def from_config(cls, config: dict) -> "EBQuantCommCodec":
        config = dict(config)
        return cls(EBSchedule.from_dict(config.pop("schedule")), **config)

    def __repr__(self) -> str:
        return (f"EBQuantCommCodec({self.direction}, row_dim={self.format.row_dim}, "
                f"code_dtype={self.format.code_dtype!r}, layout={'per table' if self.tables_per_rank else 'one bound'})")

    @property
    def violations(self) -> int:
        """Elements encoded so far that missed their bound (host sync)."""
        return 0 if self._violations is None else int(self._violations)

    # -- torchrec's QuantizedCommCodec protocol ---------------------------------------------------
    @property
    def quantized_dtype(self) -> torch.dtype:
        return torch.uint8

    def create_context(self) -> CommContext:
        return CommContext(row_dim=self.format.row_dim)

    def padded_size(self, input_tensor: torch.Tensor, dim_per_rank: list[int], my_rank: int,
                    qcomm_ctx: CommContext) -> tuple[int, int]:
        if qcomm_ctx is not None:
            qcomm_ctx.rank = int(my_rank)
        return (input_tensor.shape[0] if input_tensor.dim() == 1 else input_tensor.shape[1]), 0

    def calc_quantized_size(self, input_len: int, ctx: CommContext | None = None) -> int:
        return self.format.quantized_size(int(input_len))

    def encode(self, input_tensor: torch.Tensor, ctx: CommContext | None = None) -> torch.Tensor:
        t = self.clock.forward() if self.direction == "forward" else self.clock.current
        x = input_tensor.reshape(-1)
        n_rows = self.format.rows(x.numel())
        rows = x.reshape(n_rows, self.format.row_dim).float()
        lo, hi = rows.amin(dim=1), rows.amax(dim=1)
        rows_table, tables = self._row_tables(n_rows, ctx, x.device)
        if rows_table is None:  # one bound over the payload
            tables, rows_table = (-1,), torch.zeros(n_rows, dtype=torch.long, device=x.device)
        inf = torch.full((len(tables),), math.inf, device=x.device)
        t_lo = inf.scatter_reduce(0, rows_table, lo, "amin")
        t_hi = (-inf).scatter_reduce(0, rows_table, hi, "amax")
        eb_rel = tuple(self.schedule.bound(tb, t) if tb >= 0 else self.schedule.base * self.schedule.multiplier(t)
                       for tb in tables)
        span = (t_hi - t_lo).nan_to_num(0.0, 0.0, 0.0).clamp_min(0)
        eb_abs_table = torch.tensor(eb_rel, dtype=torch.float32, device=x.device) * span
        eb_abs = eb_abs_table[rows_table]
        buf = self.format.encode(rows, eb_abs)
        worst = None
        if self.verify:  # the decoder's exact arithmetic, element by element
            err = self.format.decode(buf).view(n_rows, self.format.row_dim).sub_(rows).abs_()
            bad = (~(err <= eb_abs[:, None])).sum()
            self._violations = bad if self._violations is None else self._violations + bad
            tiny = torch.finfo(torch.float32).tiny
            worst = (err.amax(dim=1) / eb_abs.clamp_min(tiny)).amax() if n_rows else None
        self._last = (t, tuple(tables), eb_rel, eb_abs_table, worst)
        return buf

    def decode(self, input_grad: torch.Tensor, ctx: CommContext | None = None) -> torch.Tensor:
        return self.format.decode(input_grad)

    @property
    def last(self) -> EncodeRecord | None:
        """What the last encode did (reads device values: one host sync)."""
        if self._last is None:
            return None
        t, tables, eb_rel, eb_abs, worst = self._last
        return EncodeRecord(t, tables, eb_rel, tuple(float(v) for v in eb_abs.cpu()),
                            None if worst is None else float(worst))

    # -- layout ------------------------------------------------------------------------------------
    def _row_tables(self, n_rows: int, ctx: CommContext | None, device):
        """(index into ``tables`` of each row [n_rows], global table ids); (None, None) without a layout."""
        if not self.tables_per_rank:
            return None, None
        rank = ctx.rank if ctx is not None and ctx.rank is not None else _rank()
        key = (rank, n_rows, str(device))
        if key not in self._table_rows:
            index, tables = _row_layout(self.tables_per_rank, rank, n_rows, self.direction)
            self._table_rows[key] = (index.to(device), tables)
        return self._table_rows[key]


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _row_layout(layout: list[list[int]], rank: int, n_rows: int, direction: str):
    """Forward on rank r: [B_global, n_r tables] rows -> tables[r][i % n_r]. Backward: one block
    [B_local, n_s tables] per destination s, in rank order."""
    if direction == "forward":
        blocks = [layout[rank]]
        per_sample = len(layout[rank])
    else:
        blocks = layout
        per_sample = sum(len(ts) for ts in layout)
    if per_sample == 0 or n_rows % per_sample:
        raise ValueError(f"{n_rows} rows do not match the table layout {layout} (rank {rank}, {direction}); "
                         "per-table bounds need table-wise sharding with one embedding dimension = row_dim")
    batch = n_rows // per_sample if direction == "backward" else None
    tables = tuple(sorted({t for ts in blocks for t in ts}))
    local = {t: i for i, t in enumerate(tables)}
    index = []
    for ts in blocks:
        ids = torch.tensor([local[t] for t in ts], dtype=torch.long)
        reps = batch if batch is not None else n_rows // len(ts)
        index.append(ids.repeat(reps))
    return torch.cat(index), tables


def smallest_bound(schedule: EBSchedule) -> float:
    """The smallest relative bound ``schedule`` can give (any table, any iteration)."""
    mult = min(1.0, schedule.constant) if schedule.decay != "constant" else schedule.constant
    return min(schedule.base, schedule.tighten, schedule.loosen) * mult


# -- torchrec glue (imports torchrec) ----------------------------------------------------------------
def qcomm_codecs_registry(schedule: EBSchedule | None = None, row_dim: int = 64, code_dtype: str = "int8",
                          tables_per_rank: Sequence[Sequence[int]] | None = None,
                          backward_schedule: EBSchedule | None = None, clock: IterationClock | None = None,
                          comm_ops: Sequence[str] = ("POOLED_EMBEDDINGS_ALL_TO_ALL",)) -> dict:
    """``{comm op name: QuantizedCommCodecs(forward, backward)}`` for a TorchRec sharder, both
    directions ours (one shared :class:`IterationClock`). Only all-to-all ops: a reduce-scatter
    would sum the encoded bytes."""
    from torchrec.distributed.types import CommOp, QuantizedCommCodecs

    bad = [op for op in comm_ops if op not in CommOp.__members__ or "ALL_TO_ALL" not in op]
    if bad:
        raise ValueError(f"comm ops {bad} are not all-to-all ops of torchrec's CommOp")
    clock = clock if clock is not None else IterationClock()
    registry = {}
    for op in comm_ops:
        registry[op] = QuantizedCommCodecs(
            forward=EBQuantCommCodec(schedule, row_dim, code_dtype, "forward", tables_per_rank, clock),
            backward=EBQuantCommCodec(backward_schedule or schedule, row_dim, code_dtype, "backward",
                                      tables_per_rank, clock))
    return registry


def set_layout(registry: dict, tables_per_rank: Sequence[Sequence[int]] | None) -> None:
    """Give every :class:`EBQuantCommCodec` in ``registry`` the table layout (after planning)."""
    for codecs in registry.values():
        for codec in (codecs.forward, codecs.backward):
            if isinstance(codec, EBQuantCommCodec):
                codec.set_layout(tables_per_rank)


def tables_per_rank(module_plan, table_names: Sequence[str], world_size: int) -> list[list[int]]:
    """Global table ids (positions in ``table_names``) of each rank's all-to-all columns, from a
    TorchRec module sharding plan (``{table name: ParameterSharding}``); table-wise sharding only."""
    layout: list[list[int]] = [[] for _ in range(world_size)]
    for i, name in enumerate(table_names):
        ps = module_plan[name]
        kind = getattr(ps, "sharding_type", None)
        if kind != "table_wise" or len(ps.ranks or ()) != 1:
            raise ValueError(f"table {name!r} is sharded {kind!r} on ranks {ps.ranks}; per-table bounds "
                             "need table-wise sharding (use tables_per_rank=None for one bound)")
        layout[ps.ranks[0]].append(i)
    return layout


def table_wise_plan(ebc, layout: Sequence[Sequence[int]], sharder, device_type: str = "cpu"):
    """A TorchRec module sharding plan putting table ``layout[r][j]`` (position in ``ebc``'s
    configs) on rank r: the layout :func:`tables_per_rank` reads back."""
    from torchrec.distributed.sharding_plan import construct_module_sharding_plan, table_wise

    names = [cfg.name for cfg in ebc.embedding_bag_configs()]
    per_param = {names[t]: table_wise(rank=r) for r, ts in enumerate(layout) for t in ts}
    world = len(layout)
    return construct_module_sharding_plan(ebc, per_param_sharding=per_param, local_size=world,
                                          world_size=world, device_type=device_type, sharder=sharder)


__all__ = ["CommContext", "EBQuantCommCodec", "EncodeRecord", "FixedRateFormat", "IterationClock",
           "qcomm_codecs_registry", "set_layout", "smallest_bound", "table_wise_plan", "tables_per_rank"]
