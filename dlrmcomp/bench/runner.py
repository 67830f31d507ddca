"""The one benchmark runner: one timer, one row schema, contestants as adapters.

A contestant codes a batch of arrays (the tables of one batch, or one array) and back:

- :class:`FrameCodec`: any dlrmcomp codec by registry name (``encode_batch`` / ``decode_batch``:
  ours code many tables a call, on ``threads`` threads; the others loop);
- :class:`ConstrictionAns`: our quantizer + constriction's stack ANS with the codes' own model;
- :class:`Sz3`: SZ3 (pysz) on the raw floats.

Every contestant gets the same relative bound, resolved per array inside its timed encode, and
is timed over the float bytes in (GB/s of input, decimal). :func:`run` measures contestants
interleaved (round r times every contestant once before round r + 1 starts, after one warm-up
round), so that load on a shared machine falls on all of them alike. Rows follow
:data:`ROW`; ``dlrmcomp bench``, ``benchmarks/cpu_codecs.py`` and :func:`dlrmcomp.bench.sweep.sweep`
all measure through :func:`run`; ``benchmarks/gpu_codecs.py`` times device calls with
:func:`timed` (the same clocks, :data:`CLOCKS`, CUDA events among them) into the same columns.
:func:`order0_bytes` (through :func:`dlrmcomp.codecs.entropy.entropy_bits`) is the one order-0 bound.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from .. import codecs
from ..api import verify
from ..codecs.entropy import entropy_bits
from ..codecs.quantize import LinearQuantizer, Quantized
from ..errorbound import ErrorBound

#: the columns of a measurement row (callers add their context: table, snapshot, batch, ...)
ROW = ("codec", "eb", "eb_abs", "raw_bytes", "frame_bytes", "ratio", "max_abs_err", "violations", "psnr",
       "nrmse", "compress_gbps", "decompress_gbps")
STATS = {"median": np.median, "min": np.min}


class Clock:
    """What a timer reads: ``now()`` a mark, ``seconds(a, b)`` between two marks."""

    def __init__(self, now, seconds=lambda a, b: b - a):
        self.now, self.seconds = now, seconds


def _cuda_clock() -> Clock:
    """CUDA events on the current stream (cupy): a mark records one; ``seconds`` waits for the later."""
    from ..codecs.gpu.runtime import cp_module

    cp = cp_module()

    def now():
        event = cp.cuda.Event()
        event.record()
        return event

    def seconds(a, b):
        b.synchronize()
        return cp.cuda.get_elapsed_time(a, b) / 1e3

    return Clock(now, seconds)


#: wall: time.perf_counter; cpu: CPU time of the calling thread (time.thread_time), for one-thread
#: runs on a shared machine, where wall clock measures the other processes too; cuda: CUDA events
#: around the calls (the device's time; host work inside a call counts where it waits on the device)
CLOCKS = {"wall": lambda: Clock(time.perf_counter), "cpu": lambda: Clock(time.thread_time), "cuda": _cuda_clock}


def timed(fn, *args, repeat: int = 1, stat: str = "median", clock: str = "wall", sync=None):
    """(result, seconds) of ``fn(*args)``: ``stat`` (median | min) of ``repeat`` runs after one
    warm-up run, on ``clock`` (a key of :data:`CLOCKS`); ``sync`` (e.g. a device synchronize) is
    called after each run, inside the timed span."""
    c = CLOCKS[clock]()
    result = fn(*args)
    if sync is not None:
        sync()
    times = []
    for _ in range(repeat):
        start = c.now()
        result = fn(*args)
        if sync is not None:
            sync()
        times.append(c.seconds(start, c.now()))
    return result, float(STATS[stat](times))


class Contestant:
    """Codes a batch of float arrays at a relative (or absolute) bound, and back."""

    name: str = ""

    def encode(self, xs: Sequence[np.ndarray]) -> list:
        raise NotImplementedError

    def decode(self, blobs: list) -> list[np.ndarray]:
        raise NotImplementedError

    def nbytes(self, blob) -> int:
        """Bytes of one coded array, everything a decoder needs included."""
        return len(blob)

    def eb_abs(self, blob) -> float | None:
        """The absolute bound one coded array was made for (None: lossless)."""
        return None


class FrameCodec(Contestant):
    """A dlrmcomp codec: a codec object, or a registry name or recipe built at ``eb`` / ``mode``
    with ``params``; ``label``: its row name."""

    def __init__(self, codec: codecs.Codec | str, eb: float | None = None, mode: str = "rel", threads: int = 1,
                 label: str | None = None, **params):
        if isinstance(codec, str):
            codec = codecs.get(codec, eb=eb, mode=mode, **params) if eb is not None else codecs.get(codec, **params)
        self.codec, self.name, self.threads = codec, label or codec.name, int(threads)
        self.eb = getattr(codec, "eb", None)

    def _batched(self, method: str, items) -> list:
        fn = getattr(self.codec, method)
        return fn(items, threads=self.threads) if self.threads > 1 else fn(items)

    def encode(self, xs):
        return self._batched("encode_batch", xs)

    def decode(self, frames):
        return self._batched("decode_batch", frames)

    def eb_abs(self, frame):
        return codecs.read_header(frame).eb_abs


class ConstrictionAns(Contestant):
    """Our quantizer (int8 codes) + constriction's stack ANS with the codes' own categorical model;
    the model (256 float32 probabilities) counts towards the bytes."""

    name = "constriction ANS"

    def __init__(self, eb: float, mode: str = "rel"):
        self.bound = ErrorBound(eb, mode)
        self.quantizer = LinearQuantizer("int8")

    def encode(self, xs):
        import constriction

        out = []
        for x in xs:
            q = self.quantizer.quantize(x, self.bound.resolve(x))
            sym = q.codes.reshape(-1).astype(np.int32) + 128
            counts = np.bincount(sym, minlength=256).astype(np.float64)
            model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
            coder = constriction.stream.stack.AnsCoder()
            coder.encode_reverse(sym, model)
            out.append((coder.get_compressed(), counts, q, x.shape, x.dtype))
        return out

    def decode(self, blobs):
        import constriction

        out = []
        for words, counts, q, shape, dtype in blobs:
            model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
            sym = constriction.stream.stack.AnsCoder(words).decode(model, int(np.prod(shape)))
            codes = (sym - 128).astype(np.int8).reshape(shape)
            out.append(LinearQuantizer.dequantize(Quantized(codes, q.escapes, q.grid), dtype))
        return out

    def nbytes(self, blob):
        return blob[0].nbytes + 256 * 4 + blob[2].escapes.nbytes

    def eb_abs(self, blob):
        return blob[2].grid.step / 2


class Sz3(Contestant):
    """SZ3 through pysz on the raw floats at the absolute bound (the library alone: no check)."""

    name = "SZ3 (pysz)"

    def __init__(self, eb: float, mode: str = "rel"):
        self.bound = ErrorBound(eb, mode)

    def encode(self, xs):
        from pysz import sz, szConfig, szErrorBoundMode

        out = []
        for x in xs:
            cfg = szConfig(*x.shape)
            cfg.errorBoundMode = szErrorBoundMode.ABS
            cfg.absErrorBound = eb_abs = self.bound.resolve(x)
            out.append((sz.compress(x, cfg)[0], x.shape, x.dtype, eb_abs))
        return out

    def decode(self, blobs):
        from pysz import sz

        return [sz.decompress(data, dtype, shape)[0] for data, shape, dtype, _ in blobs]

    def nbytes(self, blob):
        return blob[0].nbytes

    def eb_abs(self, blob):
        return blob[3]


def run(contestants: Sequence[Contestant], xs: Sequence[np.ndarray], repeat: int = 3, stat: str = "median",
        eb: float | None = None, min_seconds: float = 0.0, clock: str = "wall") -> list[dict]:
    """One :data:`ROW` per contestant for the batch ``xs``: sizes and errors of its first round, the
    ``stat`` of the interleaved timed rounds (after a warm-up round) for the speeds: ``repeat``
    rounds, more while some contestant has been timed for less than ``min_seconds`` in all (small
    batches: many short rounds, so that ``min`` finds the rounds the machine left alone). ``clock``:
    a key of :data:`CLOCKS` (``cpu`` only for contestants that run on the calling thread)."""
    clk = CLOCKS[clock]()
    xs = [np.asarray(x) for x in xs]
    raw = sum(x.nbytes for x in xs)
    times = {id(c): ([], []) for c in contestants}
    rows = {}
    r = 0
    while r <= repeat or min(sum(times[id(c)][0]) + sum(times[id(c)][1]) for c in contestants) < min_seconds:
        r += 1
        for c in contestants:
            t0 = clk.now()
            blobs = c.encode(xs)
            t1 = clk.now()
            ys = c.decode(blobs)
            t2 = clk.now()
            if r == 1:  # the warm-up round: sizes and errors (the same every round)
                rows[id(c)] = _row(c, xs, blobs, ys, eb)
            else:
                times[id(c)][0].append(clk.seconds(t0, t1))
                times[id(c)][1].append(clk.seconds(t1, t2))
            del blobs, ys
    out = []
    gb = raw / 1e9
    for c in contestants:
        t_enc, t_dec = (float(STATS[stat](t)) if t else np.nan for t in times[id(c)])
        out.append({**rows[id(c)], "compress_gbps": gb / t_enc if t_enc > 0 else np.inf,
                    "decompress_gbps": gb / t_dec if t_dec > 0 else np.inf})
    return out


def _row(c: Contestant, xs, blobs, ys, eb) -> dict:
    """The :data:`ROW` of one contestant's round, speeds left out."""
    raw = sum(x.nbytes for x in xs)
    size = sum(c.nbytes(b) for b in blobs)
    bounds = [c.eb_abs(b) for b in blobs]
    reports = [verify(x, y, b) for x, y, b in zip(xs, ys, bounds)]
    return {"codec": c.name, "eb": getattr(c, "eb", eb), "eb_abs": _one(bounds), "raw_bytes": raw,
            "frame_bytes": size, "ratio": raw / size if size else np.inf,
            "max_abs_err": max(r["max_abs_err"] for r in reports), "violations": sum(r["violations"] for r in reports),
            "psnr": min(r["psnr"] for r in reports), "nrmse": max(r["nrmse"] for r in reports)}


def _one(bounds: list):
    """The bound of a batch: the array's own for one array, the largest for several."""
    known = [b for b in bounds if b is not None]
    return (known[0] if len(bounds) == 1 else max(known)) if known else None


def measure(x: np.ndarray, codec: codecs.Codec, repeat: int = 1) -> dict:
    """One codec object on one array: a :data:`ROW` (median of ``repeat`` timed runs)."""
    return run([FrameCodec(codec)], [x], repeat)[0]


def order0_bytes(xs: Sequence[np.ndarray], eb: float, mode: str = "rel", dtype: str = "auto") -> float:
    """Bytes of the order-0 entropy of the codes our quantizer makes for each array (summed): what
    an ideal symbol coder of the codes would send."""
    quantizer = LinearQuantizer(dtype)
    bound = ErrorBound(eb, mode)
    return sum(entropy_bits(quantizer.quantize(x, bound.resolve(x)).codes) for x in xs) / 8
