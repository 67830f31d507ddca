"""External tool runners with stand-in executables that print nvcomp's / bin_hf's real lines."""
import os
import stat
import subprocess
import sys
import zlib

import numpy as np
import pytest

from dlrmcomp.bench import external, parsers, quantize
from dlrmcomp.errorbound import EBSchedule

# Stand-ins: the real tools' print statements around a zlib ratio and fixed timings.
NVCOMP = """#!{python}
import sys, zlib
data = open(sys.argv[2], "rb").read()
comp = len(zlib.compress(data))
print("----------"); print("files: 1"); print(f"uncompressed (B): {{len(data)}}")
print(f"comp_size: {{comp}}, compressed ratio: {{len(data) / comp:.4f}}")
print("compression throughput (GB/s): 123.4567"); print("decompression throughput (GB/s): 234.5678")
"""
BIN_HF = """#!{python}
import sys, zlib
data = open(sys.argv[1], "rb").read()
assert int(sys.argv[2]) * int(sys.argv[3]) * int(sys.argv[4]) == len(data)
print("[psz::info::res::comp_hf_encode] shortest time (ms): 0.500000\\thighest throughput (GiB/s): 100.00")
print(f'"Huffman CR = sizeof(E) * len / outlen", where outlen is byte count:\\t{{len(data) / len(zlib.compress(data)):.2f}}')
print("[psz::info::res::decomp_hf_decode] shortest time (ms): 1.000000\\thighest throughput (GiB/s): 50.00")
"""


def install(bin_dir, name, source):
    path = bin_dir / name
    path.write_text(source.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def codes_dir(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "dumps"
    src.mkdir()
    for t in range(2):
        for k in range(2):
            rng.normal(0, 0.05, (256, 16)).astype(np.float32).tofile(src / f"EMB_{t}_iter_{k}.bin")
    out = tmp_path / "codes"
    quantize.quantize_dir(src, out, EBSchedule.fixed(0.03), decay_stage=1, dim=16)
    return out


def test_runs_are_logged_and_parsed_back(codes_dir, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install(bin_dir, "benchmark_ans_chunked", NVCOMP)
    install(bin_dir, "bin_hf", BIN_HF)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for tool, parser in (("nvcomp-ans", "nvcomp"), ("huffman", "huffman")):
        log = tmp_path / f"{tool}.log"
        assert external.run_tool(tool, codes_dir, log) == 4
        runs = parsers.parse_log(parser, log.read_text())
        assert list(zip(runs.table, runs.snapshot)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        data = (codes_dir / "EMB_1_iter_0.quan").read_bytes()
        digits = 4 if parser == "nvcomp" else 2
        assert runs.cr[2] == round(len(data) / len(zlib.compress(data)), digits)
    assert runs.tc.tolist() == pytest.approx([107.3741824] * 4) and runs.td.tolist() == pytest.approx([53.6870912] * 4)
    text = (tmp_path / "huffman.log").read_text()
    assert text.startswith(f"Executing: {bin_dir / 'bin_hf'} {codes_dir / 'EMB_0_iter_0.quan'} 256 16 1 256\n")
    assert text.endswith("Completed: EMB 1, Iter 1\n")


def test_missing_executable_is_named(codes_dir, monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("GPULZ", raising=False)
    with pytest.raises(FileNotFoundError, match="gpulz not found: put it on PATH or set GPULZ="):
        external.run_tool("gpulz", codes_dir, codes_dir / "g.log")
    done = subprocess.run([sys.executable, "-m", "dlrmcomp.cli", "external", "gpulz", str(codes_dir)],
                          capture_output=True, text=True, env={**os.environ, "PATH": ""})
    assert done.returncode == 2 and "gpulz not found" in done.stderr
