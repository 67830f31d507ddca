"""pyproject.toml is the source of truth; environment.yml mirrors it; the CLI and imports work."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def name_of(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    mirrored = [r for r in pip if not r.startswith("-e")]
    assert sorted(mirrored) == sorted(project["dependencies"])
    assert "-e .[dev]" in pip
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.split(">=")[1] == project["requires-python"].split(">=")[1]


def test_import_needs_no_gpu_packages():
    code = ("import sys, dlrmcomp, dlrmcomp.codecs; import dlrmcomp.cli; "
            "bad = [m for m in ('cupy', 'nvidia.nvcomp', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_round_trip_on_raw_and_npy(tmp_path):
    from dlrmcomp.cli import main

    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    np.save(tmp_path / "x.npy", x)
    assert main(["compress", str(tmp_path / "x.bin"), str(tmp_path / "a.frame"), "--dtype", "float32",
                 "--shape", "50,8", "--codec", "quant+zstd", "--eb", "0.01"]) == 0
    assert main(["decompress", str(tmp_path / "a.frame"), str(tmp_path / "a.npy")]) == 0
    y = np.load(tmp_path / "a.npy")
    assert y.shape == (50, 8) and np.abs(y - x).max() <= 0.01 * np.ptp(x) * (1 + 1e-6)
    assert main(["compress", str(tmp_path / "x.npy"), str(tmp_path / "b.frame"), "--codec", "zstd"]) == 0
    assert main(["decompress", str(tmp_path / "b.frame"), str(tmp_path / "b.bin")]) == 0
    assert (tmp_path / "b.bin").read_bytes() == x.tobytes()
    assert main(["info", str(tmp_path / "b.frame")]) == 0
    assert main(["compress", str(tmp_path / "x.bin"), str(tmp_path / "c.frame")]) != 0  # raw needs --dtype
    assert main(["decompress", str(tmp_path / "x.bin"), str(tmp_path / "c.npy")]) == 2  # not a frame
