"""Parsers for the logs of the external benchmark tools (``dlrmcomp external`` / the seed's
``lossless_encoder.py``): nvcomp ``benchmark_*_chunked``, GPULZ ``gpulz``, cuSZ ``bin_hf`` and
the ``sz3`` command line.

A log is a sequence of runs, each framed as::

    Executing: {exe} {args}
    <the tool's output>
    Completed: EMB {table}, Iter {snapshot}

Per run we read the compression ratio ``cr`` and the throughputs ``tc``/``td``, always in
decimal GB/s of uncompressed input: nvcomp prints GB/s; GPULZ prints MiB/ms labelled "GB/s"
(x 1.048576); cuSZ prints GiB/s (x 1.073741824); sz3 prints seconds, converted with the input
size from the ``-1/-2/-3`` and ``-f/-d`` arguments. Truncated or garbled runs give a
:class:`LogWarning` naming the line and the values that could be read, never an exception; a run
without its ``Completed`` line takes table and snapshot from the ``EMB_{t}_iter_{k}`` file name.
"""
from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..io import atomic_write
from .benchmark import harmonic

NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan))(?=\s|,|$)"
GIB, MIB_PER_MS = 2**30 / 1e9, 2**20 / 1e6
EXECUTING, COMPLETED = "Executing: ", re.compile(r"Completed: EMB (\d+), Iter (\d+)")
EMB_FILE = re.compile(r"EMB_(\d+)_iter_(\d+)")


class LogWarning(UserWarning):
    """A run of a log could not be read completely."""


@dataclass(frozen=True)
class Field:
    """A number printed after ``key`` (and ``value``) on a line; ``scale`` converts it to GB/s."""

    key: str
    value: str = ""
    scale: float = 1.0

    def match(self, line: str):
        """None if the line is not this field's, else the number (NaN if garbled)."""
        if not re.search(self.key, line):
            return None
        m = re.search(self.key + self.value + NUM, line)
        return float(m[1]) * self.scale if m else math.nan


NOT_DE = r"(?<![A-Za-z])"  # "compression ..." but not "decompression ..."
FIELDS = {
    "nvcomp": {"cr": Field(r"compressed ratio: "),
               "tc": Field(NOT_DE + r"compression throughput \(GB/s\): "),
               "td": Field(r"decompression throughput \(GB/s\): ")},
    "gpulz": {"cr": Field(NOT_DE + r"compression ratio:\s*"),
              "tc": Field(NOT_DE + r"compression e2e throughput:\s*", scale=MIB_PER_MS),
              "td": Field(r"decompression e2e throughput:\s*", scale=MIB_PER_MS)},
    "huffman": {"cr": Field(r'Huffman CR = sizeof\(E\) \* len / outlen", where outlen is byte count:\s*'),
                "tc": Field(r"\[psz::info::res::comp_hf_encode\] ", r".*highest throughput \(GiB/s\): ", GIB),
                "td": Field(r"\[psz::info::res::decomp_hf_decode\] ", r".*highest throughput \(GiB/s\): ", GIB)},
    "sz3": {"cr": Field(r"^compression ratio = "),
            "tc": Field(r"^compression time = "),
            "td": Field(r"^decompression time = ")},
}
TOOLS = tuple(FIELDS)


@dataclass
class Run:
    """One ``Executing:`` segment: where it starts, its command, what was read."""

    line: int
    command: str
    values: dict = field(default_factory=dict)
    table: int | None = None
    snapshot: int | None = None
    completed: bool = False


def sz3_input_bytes(command: str) -> float:
    """Bytes of the sz3 input from its ``-1 n`` / ``-2 nx ny`` / ``-3 ...`` and ``-f``/``-d`` args."""
    args = shlex.split(command)
    for flag, n in (("-1", 1), ("-2", 2), ("-3", 3), ("-4", 4)):
        if flag in args:
            i = args.index(flag)
            try:
                count = math.prod(int(a) for a in args[i + 1:i + 1 + n])
            except ValueError:
                return math.nan
            return count * (8 if "-d" in args else 4)
    return math.nan


def to_throughputs(tool: str, run: Run) -> dict:
    """sz3's seconds -> GB/s of input; other tools' values as read."""
    v = dict(run.values)
    if tool == "sz3":
        nbytes = sz3_input_bytes(run.command)
        for k in ("tc", "td"):
            if k in v:
                v[k] = nbytes / v[k] / 1e9 if v[k] > 0 else math.nan
    return v


def split_runs(tool: str, lines: list[str]) -> list[Run]:
    """Segments of the log with the fields read (last occurrence wins: sz3 prints its ratio twice)."""
    runs: list[Run] = []
    for i, line in enumerate(lines, start=1):
        head, executing, command = line.partition(EXECUTING)  # a cut-off run may leave it mid-line
        if head:
            read_line(tool, runs, i, head)
        if executing:
            runs.append(Run(i, command))
    return runs


def read_line(tool: str, runs: list[Run], i: int, line: str) -> None:
    """Fields or the ``Completed`` marker of line ``i`` into the open run (ignored between runs)."""
    if not runs or runs[-1].completed:
        return
    run = runs[-1]
    done = COMPLETED.match(line)
    if done:
        run.table, run.snapshot, run.completed = int(done[1]), int(done[2]), True
        return
    for name, f in FIELDS[tool].items():
        value = f.match(line)
        if value is None:
            continue
        if math.isnan(value):
            warn(f"line {i}: cannot read {name} in {line.strip()!r}")
        else:
            run.values[name] = value
        return


def warn(message: str) -> None:
    warnings.warn(message, LogWarning, stacklevel=3)


def describe(values: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items()) or "nothing"


def check_run(run: Run) -> bool:
    """Warn about an incomplete run; fill table/snapshot from the file name; False to drop it."""
    if not run.completed:
        m = EMB_FILE.search(run.command)
        where = f"EMB {m[1]}, Iter {m[2]} from the file name" if m else "no table known: dropped"
        warn(f"line {run.line}: run without its 'Completed:' line (truncated log?); read {describe(run.values)}; {where}")
        if not m:
            return False
        run.table, run.snapshot = int(m[1]), int(m[2])
    missing = [k for k in ("cr", "tc", "td") if k not in run.values]
    if missing and run.completed:
        warn(f"line {run.line}: EMB {run.table}, Iter {run.snapshot}: no {'/'.join(missing)}; read {describe(run.values)}")
    return True


def parse_log(tool: str, text: str) -> pd.DataFrame:
    """Per run: table, snapshot, line (of its ``Executing:``), cr, tc, td (GB/s; NaN where unread)."""
    if tool not in FIELDS:
        raise ValueError(f"tool must be one of {TOOLS}, got {tool!r}")
    rows = []
    for run in split_runs(tool, text.splitlines()):
        if check_run(run):
            v = to_throughputs(tool, run)
            rows.append({"table": run.table, "snapshot": run.snapshot, "line": run.line,
                         **{k: v.get(k, math.nan) for k in ("cr", "tc", "td")}})
    return pd.DataFrame(rows, columns=["table", "snapshot", "line", "cr", "tc", "td"])


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per table (sorted): harmonic means over snapshots of cr, tc, td (the seed parsers' rule)."""
    return runs.groupby("table")[["cr", "tc", "td"]].agg(harmonic).reset_index()


def format_summary(summary: pd.DataFrame) -> str:
    """The seed parsers' output: one ``cr tc td`` line per table, ``%.6f``."""
    return "".join(f"{r.cr:.6f} {r.tc:.6f} {r.td:.6f}\n" for r in summary.itertuples())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tool", choices=TOOLS)
    p.add_argument("log", type=Path)
    p.add_argument("--out", type=Path, help="CSV of per-table harmonic means (default: LOG with .csv)")


def main(args) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LogWarning)
        summary = summarize(parse_log(args.tool, args.log.read_text(errors="replace")))
    for w in caught:
        print(f"warning: {args.log}: {w.message}", file=sys.stderr)
    sys.stdout.write(format_summary(summary))
    out = args.out or args.log.with_suffix(".csv")
    atomic_write(out, summary.to_csv(index=False))
    print(f"wrote {out}", file=sys.stderr)
    return 0
