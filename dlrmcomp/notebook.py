"""Run the notebooks headless with papermill into run folders; record and read their results.

A run folder ``runs/<timestamp>/`` holds, per notebook ``NN_topic``: the executed
``NN_topic.ipynb`` and a folder ``NN_topic/`` with ``results.json`` and PNG figures; plus
``summary.md``. Runs never overwrite each other.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .io import save_figure, write_json

PROFILES = ("smoke", "demo", "full")
RESULTS = "results.json"


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def notebooks_dir() -> Path:
    return Path(os.environ.get("DLRMCOMP_NOTEBOOKS", Path(__file__).resolve().parents[1] / "notebooks"))


def runs_root() -> Path:
    return Path(os.environ.get("DLRMCOMP_RUNS_DIR", "runs"))


def new_run_dir(root: str | Path | None = None, label: str = "") -> Path:
    """A fresh folder ``<root>/<YYYYmmdd-HHMMSS>[label][-N]`` (never an existing one)."""
    root = Path(root) if root is not None else runs_root()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + label
    for n in range(1000):
        path = root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")


def record(results: dict, out_dir: str | Path | None = None, figures: dict | None = None,
           exports: dict | None = None) -> Path:
    """Write ``results.json`` and ``<name>.png`` per figure into ``out_dir`` (a new folder if None).

    This is a notebook's last cell; tests read the file back with :func:`read_results`.
    ``exports`` (UPPER_CASE parameter -> value) are passed by :func:`run` to later notebooks
    that declare that parameter (notebook 01's dumps feed notebook 02).
    """
    out = Path(out_dir) if out_dir else new_run_dir(label="-interactive")
    for name, fig in (figures or {}).items():
        save_figure(fig, out / f"{name}.png")
    write_json(out / RESULTS, {**results, "exports": exports or {}})
    return out


def read_results(out_dir: str | Path) -> dict:
    return json.loads((Path(out_dir) / RESULTS).read_text())


@dataclass
class NotebookRun:
    name: str
    ok: bool
    seconds: float
    out_dir: Path
    error: str = ""


class NotebookFailed(RuntimeError):
    """One or more notebooks failed; ``runs`` has the per-notebook outcome."""

    def __init__(self, runs: list[NotebookRun]):
        self.runs = runs
        super().__init__("; ".join(f"{r.name}: {r.error}" for r in runs if not r.ok))


def list_notebooks(only: str | None = None) -> list[Path]:
    paths = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if only in p.stem]
        if not paths:
            raise ValueError(f"no notebook matches {only!r} in {notebooks_dir()}")
    return paths


def execute(path: Path, run_dir: Path, profile: str, parameters: dict | None = None,
            cell_timeout: int | None = None) -> NotebookRun:
    """Execute one notebook into ``run_dir`` with PROFILE and OUT_DIR injected.

    The kernel runs headless (DLRMCOMP_HEADLESS=1: static figures, no widgets); a cell running
    longer than ``cell_timeout`` seconds fails the notebook instead of stalling it.
    """
    import papermill

    out_dir = run_dir / path.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"PROFILE": profile, "OUT_DIR": str(out_dir.resolve()), **(parameters or {})}
    start = time.perf_counter()
    previous = os.environ.get("DLRMCOMP_HEADLESS")
    os.environ["DLRMCOMP_HEADLESS"] = "1"  # inherited by the kernel papermill starts
    try:
        papermill.execute_notebook(str(path), str(run_dir / path.name), parameters=params, progress_bar=False,
                                   kernel_name=os.environ.get("DLRMCOMP_KERNEL", "python3"), cwd=str(path.parent),
                                   execution_timeout=cell_timeout)
    except papermill.PapermillExecutionError as exc:
        error = f"cell {exc.exec_count} (index {exc.cell_index}) raised {exc.ename}: {exc.evalue}"
        return NotebookRun(path.stem, False, time.perf_counter() - start, out_dir, error)
    except Exception as exc:  # timeouts, a dead kernel: this notebook failed, the run goes on
        return NotebookRun(path.stem, False, time.perf_counter() - start, out_dir, f"{type(exc).__name__}: {exc}")
    finally:
        if previous is None:
            os.environ.pop("DLRMCOMP_HEADLESS", None)
        else:
            os.environ["DLRMCOMP_HEADLESS"] = previous
    return NotebookRun(path.stem, True, time.perf_counter() - start, out_dir)


def write_summary(run_dir: Path, runs: list[NotebookRun], profile: str) -> Path:
    lines = [f"# dlrmcomp run `{run_dir.name}` (profile `{profile}`)", "",
             "| notebook | status | seconds | results | figures |", "| --- | --- | --- | --- | --- |"]
    for r in runs:
        figs = " ".join(f"[{p.stem}]({r.name}/{p.name})" for p in sorted(r.out_dir.glob("*.png")))
        res = f"[{RESULTS}]({r.name}/{RESULTS})" if (r.out_dir / RESULTS).exists() else "-"
        status = "ok" if r.ok else f"FAILED: {r.error}"
        lines.append(f"| [{r.name}]({r.name}.ipynb) | {status} | {r.seconds:.1f} | {res} | {figs} |")
    from .io import atomic_write

    return atomic_write(run_dir / "summary.md", "\n".join(lines) + "\n")


def run(profile: str = "demo", only: str | None = None, root: str | Path | None = None,
        parameters: dict | None = None) -> Path:
    """Run every notebook (or those matching ``only``) into a new run folder; return it.

    Raises NotebookFailed (after running the rest and writing summary.md) if any notebook fails.
    """
    from tqdm.auto import tqdm

    check_profile(profile)
    import papermill

    paths = list_notebooks(only)
    run_dir = new_run_dir(root)
    runs, exported = [], {}
    with tqdm(paths, desc=f"notebooks ({profile})", unit="nb") as bar:
        for path in bar:
            bar.set_postfix_str(path.stem)
            declared = papermill.inspect_notebook(str(path))
            inputs = {k: v for k, v in exported.items() if k in declared}
            runs.append(execute(path, run_dir, profile, {**inputs, **(parameters or {})}))
            if runs[-1].ok and (runs[-1].out_dir / RESULTS).exists():
                exported.update(read_results(runs[-1].out_dir).get("exports", {}))
    write_summary(run_dir, runs, profile)
    if not all(r.ok for r in runs):
        raise NotebookFailed(runs)
    return run_dir
