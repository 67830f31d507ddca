"""The ``dlrmcomp`` command: ``run``, ``compress``, ``decompress``, ``info`` and the topic commands.

Topic commands live beside their code: a module with ``add_arguments(parser)`` and
``main(args) -> int``, named in ``COMMANDS`` and imported only when used.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np

#: subcommand -> (module with add_arguments/main, one-line help)
COMMANDS = {
    "run": ("dlrmcomp.cli", "execute the notebooks with papermill into runs/<timestamp>/"),
    "compress": ("dlrmcomp.cli", "compress a .npy or raw binary file into a frame"),
    "decompress": ("dlrmcomp.cli", "decompress a frame into a .npy or raw binary file"),
    "info": ("dlrmcomp.cli", "show a frame's header, or the codecs available here"),
    "train": ("dlrmcomp.train.cli", "train DLRM with (adaptive) compression of the embedding payload"),
    "quantize": ("dlrmcomp.bench.quantize", "quantize EMB dumps with an error-bound schedule into code files"),
    "pad": ("dlrmcomp.bench.pad", "repeat EMB dumps into larger batches"),
    "bench": ("dlrmcomp.bench.benchmark", "every codec on every (table, snapshot) of EMB dumps -> CSV"),
    "external": ("dlrmcomp.bench.external", "run nvcomp / GPULZ / cuSZ / sz3 executables over dumps into a log"),
    "parse": ("dlrmcomp.bench.parsers", "per-table harmonic-mean 'cr tc td' from an external tool's log"),
    "speedup": ("dlrmcomp.bench.speedup", "speed-up of compressed communication from benchmark results"),
}


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace("x", ",").split(",") if s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like 100,64 (got {text!r})") from None


def load_input(path: Path, dtype: str | None, shape: tuple[int, ...] | None) -> np.ndarray:
    """A .npy file, or raw binary with ``dtype`` (and optional ``shape``)."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if dtype is None:
        raise ValueError(f"{path}: raw input needs --dtype (and --shape); or give a .npy file")
    data = np.fromfile(path, dtype=np.dtype(dtype))
    if shape:
        if int(np.prod(shape)) != data.size:
            raise ValueError(f"{path}: {data.size} values of {dtype} do not fill shape {shape}")
        data = data.reshape(shape)
    return data


# -- the built-in subcommands -------------------------------------------------------------------
def add_run(p):
    from .notebook import PROFILES

    p.add_argument("--profile", choices=PROFILES, default="demo", help="data sizes (default: demo)")
    p.add_argument("--only", help="run only notebooks whose name contains this")
    p.add_argument("--root", default=None, help="where run folders go (default: runs/)")


def main_run(args) -> int:
    from .notebook import NotebookFailed, run

    try:
        run_dir = run(args.profile, args.only, args.root)
    except NotebookFailed as exc:
        for r in exc.runs:
            if not r.ok:
                print(f"FAILED {r.name}: {r.error}", file=sys.stderr)
        print(f"partial results in {exc.runs[0].out_dir.parent}", file=sys.stderr)
        return 1
    print(f"results in {run_dir} (see {run_dir / 'summary.md'})")
    return 0


def add_compress(p):
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--codec", default="quant+ans")
    p.add_argument("--eb", type=float, default=0.03, help="error bound of a lossy codec (default 0.03)")
    p.add_argument("--mode", choices=("rel", "abs"), default="rel")
    p.add_argument("--dtype", help="dtype of a raw input file, e.g. float32")
    p.add_argument("--shape", type=parse_shape, help="shape of a raw input file, e.g. 100,64")


def main_compress(args) -> int:
    from . import codecs
    from .io import atomic_write

    x = load_input(args.input, args.dtype, args.shape)
    lossy = codecs.is_lossy(args.codec)
    c = codecs.get(args.codec, eb=args.eb, mode=args.mode) if lossy else codecs.get(args.codec)
    frame = c.encode(x)
    atomic_write(args.output, frame)
    print(f"{args.input} -> {args.output}: {x.nbytes} -> {len(frame)} bytes (ratio {x.nbytes / max(len(frame), 1):.2f})")
    return 0


def add_decompress(p):
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help=".npy keeps dtype and shape; any other name gets raw bytes")


def main_decompress(args) -> int:
    from . import decompress
    from .io import atomic_write

    y = decompress(args.input.read_bytes())
    if args.output.suffix == ".npy":
        import io

        buf = io.BytesIO()
        np.save(buf, y, allow_pickle=False)
        atomic_write(args.output, buf.getvalue())
    else:
        atomic_write(args.output, y.tobytes())
    print(f"{args.input} -> {args.output}: {y.dtype} {tuple(y.shape)}")
    return 0


def add_info(p):
    p.add_argument("frame", nargs="?", type=Path, help="a frame file; without it, list the codecs")


def main_info(args) -> int:
    from . import codecs

    if args.frame is None:
        for name in codecs.registered():
            print(f"{name:22s} {'available' if name in codecs.available() else 'not installed'}")
        return 0
    frame = args.frame.read_bytes()
    h = codecs.read_header(frame)
    raw = h.size * h.dtype.itemsize
    info = {"codec": h.codec, "dtype": h.dtype.name, "shape": list(h.shape), "eb_abs": h.eb_abs,
            "frame_bytes": len(frame), "raw_bytes": raw, "ratio": raw / len(frame)}
    if h.stats is not None:  # a codec without a bound records what it achieved (dct: max_abs_err, psnr)
        info["achieved"] = h.stats
    print(json.dumps(info, indent=2))
    return 0


BUILTIN = {"run": (add_run, main_run), "compress": (add_compress, main_compress),
           "decompress": (add_decompress, main_decompress), "info": (add_info, main_info)}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when None)."""
    parser = argparse.ArgumentParser(prog="dlrmcomp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command in (None, name):
            add = BUILTIN[name][0] if name in BUILTIN else importlib.import_module(module).add_arguments
            add(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if a in COMMANDS), "")  # "": list the commands, import none
    args = build_parser(command).parse_args(argv)
    if args.command in BUILTIN:
        handler = BUILTIN[args.command][1]
    else:
        handler = importlib.import_module(COMMANDS[args.command][0]).main
    from .errors import CorruptStreamError

    try:
        return handler(args)
    except (CorruptStreamError, ValueError, OverflowError, OSError) as exc:
        print(f"dlrmcomp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"dlrmcomp {args.command}: error: {exc} (pip install 'dlrmcomp[dev]' installs every extra)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
