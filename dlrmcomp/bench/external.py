"""``dlrmcomp external``: run the artifact's GPU tools over dumps, logging as ``lossless_encoder.py``.

Lossless tools (nvcomp, GPULZ, cuSZ's ``bin_hf``) read the quantized codes of ``dlrmcomp
quantize`` (``*.quan``: the codes the ``quant+*`` codecs code, :mod:`dlrmcomp.bench.quantize`);
``sz3`` reads the float dumps at a relative bound. An executable is taken from its environment
variable (e.g. ``NVCOMP_ANS=/opt/nvcomp/bin/benchmark_ans_chunked``) or found on PATH. Parse the
log with ``dlrmcomp parse`` (:mod:`dlrmcomp.bench.parsers`).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dumps


@dataclass(frozen=True)
class Tool:
    """An executable, its argument template and which parser reads its log."""

    env: str
    exe: str
    args: str
    parser: str
    codes: bool = True  # input: quantized codes (else float dumps)


TOOLS = {
    "nvcomp-ans": Tool("NVCOMP_ANS", "benchmark_ans_chunked", "-f {file}", "nvcomp"),
    "nvcomp-lz4": Tool("NVCOMP_LZ4", "benchmark_lz4_chunked", "-f {file}", "nvcomp"),
    "nvcomp-deflate": Tool("NVCOMP_DEFLATE", "benchmark_deflate_chunked", "-f {file}", "nvcomp"),
    "gpulz": Tool("GPULZ", "gpulz", "-i {file}", "gpulz"),
    "huffman": Tool("BIN_HF", "bin_hf", "{file} {rows} {width} 1 256", "huffman"),
    "sz3": Tool("SZ3", "sz3", "-f -i {file} -o {file}.sz.out -2 {dim} {rows} -M REL {eb} -a", "sz3", codes=False),
}


def find_executable(tool: Tool) -> str:
    """The tool's path from its environment variable or PATH; FileNotFoundError naming it otherwise."""
    path = os.environ.get(tool.env) or shutil.which(tool.exe)
    if not path or not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{tool.exe} not found: put it on PATH or set {tool.env}=/path/to/{tool.exe}")
    return path


def code_jobs(directory: Path) -> list[dict]:
    """(file, table, snapshot, rows, width) per code file of a ``dlrmcomp quantize`` folder."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"{directory}: no manifest.json; quantize the dumps first (dlrmcomp quantize)")
    jobs = []
    for e in json.loads(manifest_path.read_text())["codes"]:
        rows, dim = e["shape"]
        width = dim * np.dtype(e["dtype"]).itemsize
        jobs.append({"file": str(directory / e["file"]), "table": e["table"], "snapshot": e["snapshot"],
                     "rows": rows, "width": width})
    return jobs


def float_jobs(directory: Path, eb: float, dim: int | None) -> list[dict]:
    """(file, table, snapshot, rows, dim, eb) per float dump."""
    return [{"file": str(directory / e["file"]), "table": e["table"], "snapshot": e["snapshot"],
             "rows": e["shape"][0], "dim": e["shape"][1], "eb": eb} for e in dumps.list_entries(directory, dim)]


def run_tool(name: str, directory, log, eb: float = 0.03, dim: int | None = None) -> int:
    """Run tool ``name`` on every (table, snapshot), appending to ``log``; returns the run count."""
    tool = TOOLS[name]
    exe = find_executable(tool)
    directory = Path(directory)
    jobs = code_jobs(directory) if tool.codes else float_jobs(directory, eb, dim)
    with open(log, "a") as fh:
        for job in jobs:
            args = tool.args.format(**job)
            fh.write(f"Executing: {exe} {args}\n")
            fh.flush()
            done = subprocess.run([exe, *shlex.split(args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace")
            fh.write(done.stdout)
            fh.write(f"Completed: EMB {job['table']}, Iter {job['snapshot']}\n")
    return len(jobs)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tool", choices=tuple(TOOLS))
    p.add_argument("dumps", type=Path, help="codes folder (dlrmcomp quantize) or, for sz3, float dumps")
    p.add_argument("--log", type=Path, help="log to append to (default: TOOL.log)")
    p.add_argument("--eb", type=float, default=0.03, help="sz3's relative bound (default 0.03)")
    p.add_argument("--dim", type=int, help="embedding dim (float dumps without manifest.json)")


def main(args) -> int:
    log = args.log or Path(f"{args.tool}.log")
    n = run_tool(args.tool, args.dumps, log, args.eb, args.dim)
    print(f"{n} runs of {args.tool} appended to {log}; read it with: dlrmcomp parse {TOOLS[args.tool].parser} {log}")
    return 0
