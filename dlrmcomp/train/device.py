"""Where training runs: the device (``--device``) and the feed that puts batches there.

On the CPU the feed hands out ``data.batch(it, B)`` as it is. On a GPU a background thread
builds, pins and copies (``non_blocking``, on a side stream) the batches of the next two steps
while the current one trains, so the step does not wait for the loader.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import torch

from ..data.batch import Batch

DEVICES = ("auto", "cpu", "cuda")


def device_kind(spec: str | None) -> str:
    """``auto``/None -> "cuda" when a GPU is present, else "cpu"; any other name as it is."""
    if spec in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(spec)


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """``auto``/None: the GPU when one is present, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``
    (ValueError without a GPU). ``cuda`` is the current CUDA device."""
    spec = device_kind(None if spec is None else str(spec))
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {spec}: no CUDA GPU here (torch.cuda.is_available() is False)")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    elif device.type != "cpu":
        raise ValueError(f"device must be one of {DEVICES} (or cuda:N), got {spec!r}")
    return device


def _tensors(batch: Batch) -> list[torch.Tensor]:
    return [batch.dense, *batch.indices, *batch.offsets, batch.labels]


def _pinned(batch: Batch) -> Batch:
    pin = lambda t: t.pin_memory()  # noqa: E731
    return Batch(pin(batch.dense), [pin(i) for i in batch.indices], [pin(o) for o in batch.offsets],
                 pin(batch.labels))


class DeviceFeed:
    """``feed(it)``: training batch ``it`` of ``data`` on ``device``, for ``it`` in [0, stop).

    CPU (default): ``data.batch(it, batch_size)``, nothing else. CUDA: a background thread builds
    batches two steps ahead, pins them and copies them with ``non_blocking`` on a side stream; the
    compute stream waits for the copy's event (not the host), and the batch's memory is tied to the
    compute stream (``record_stream``). The main thread blocks only when the batch it asks for is
    not built yet. ``prefetch=True`` on the CPU runs the same pipeline without pinning or streams
    (tests use it). Iterations asked out of order restart the pipeline.
    """

    def __init__(self, data, batch_size: int, device: torch.device, stop: int, prefetch: bool | None = None,
                 depth: int = 2):
        self.data, self.batch_size, self.device, self.stop = data, int(batch_size), torch.device(device), int(stop)
        self.cuda = self.device.type == "cuda"
        self.prefetch = self.cuda if prefetch is None else bool(prefetch)
        self.depth = int(depth)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="dlrmcomp-feed") if self.prefetch else None
        self._stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._next: int | None = None
        self._ahead: dict[int, Future] = {}

    def _load(self, it: int) -> tuple[Batch, torch.cuda.Event | None]:
        """(batch ``it`` on the device, the event its copy completes); runs in the thread."""
        batch = self.data.batch(it, self.batch_size)
        if not self.cuda:
            return batch, None
        host = _pinned(batch)  # freed after the copy: the pinned allocator waits for its event
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            moved = host.to(self.device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._stream)
        return moved, done

    def __call__(self, it: int) -> Batch:
        if not self.prefetch:
            return self.data.batch(it, self.batch_size)
        if self._next != it:  # first call, or out of order: start the pipeline at ``it``
            self._cancel()
        for k in range(it, min(it + self.depth + 1, self.stop)):
            if k not in self._ahead:
                self._ahead[k] = self._pool.submit(self._load, k)
        batch, done = self._ahead.pop(it).result()
        if done is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(done)
            for t in _tensors(batch):
                t.record_stream(current)
        self._next = it + 1
        return batch

    def _cancel(self) -> None:
        for fut in self._ahead.values():
            fut.cancel()
        self._ahead = {}

    def close(self) -> None:
        if self._pool is not None:
            self._cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
