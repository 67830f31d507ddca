"""The ``Codec`` value object and the codec registry (numcodecs style).

A codec is its config: every public attribute is a constructor argument, ``get_config()`` is
JSON, ``from_config(get_config())`` rebuilds an equal codec. ``encode`` returns a self-describing
frame (see :mod:`dlrmcomp.codecs.frame`); ``decode`` needs nothing but that frame.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Callable, ClassVar

import numpy as np

from ..errorbound import ErrorBound
from ..errors import CorruptStreamError
from . import frame as framing


class Codec(ABC):
    """Base class. Subclasses implement ``encode_payload`` / ``decode_payload``."""

    codec_id: ClassVar[str] = ""
    lossy: ClassVar[bool] = False
    #: dtypes the codec accepts (frame.SUPPORTED_DTYPES when None)
    dtypes: ClassVar[tuple | None] = None

    @property
    def name(self) -> str:
        return self.codec_id

    def get_config(self) -> dict:
        cfg = {"id": self.name}
        cfg.update({k: v for k, v in self.__dict__.items() if not k.startswith("_")})
        return cfg

    @classmethod
    def from_config(cls, config: dict) -> "Codec":
        config = dict(config)
        config.pop("id", None)
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, Codec) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(repr(self))

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({params})" if type(self).codec_id == self.name else \
            f"codecs.get({self.name!r}{', ' if params else ''}{params})"

    # -- the two halves a codec implements ----------------------------------------------
    def resolve_bound(self, x: np.ndarray) -> float | None:
        """The absolute bound used for ``x`` (None for lossless codecs)."""
        return None

    @abstractmethod
    def encode_payload(self, x: np.ndarray, eb_abs: float | None) -> bytes: ...

    def frame_stats(self, x: np.ndarray, payload: bytes) -> dict | None:
        """What the frame records beside the bound (a codec without a bound: what it achieved)."""
        return None

    @abstractmethod
    def decode_payload(self, payload: memoryview, header: framing.FrameHeader) -> np.ndarray: ...

    # -- frames ---------------------------------------------------------------------------
    def check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        allowed = self.dtypes or framing.SUPPORTED_DTYPES
        if x.dtype not in allowed:
            raise ValueError(f"codec {self.name!r} does not support dtype {x.dtype}; "
                             f"supported: {', '.join(str(d) for d in allowed)}")
        return x if x.flags.c_contiguous else x.copy(order="C")

    def encode(self, x) -> bytes:
        """Compress ``x`` into a self-describing frame."""
        x = self.check_input(x)
        eb_abs = self.resolve_bound(x)
        payload = self.encode_payload(x, eb_abs)
        stats = self.frame_stats(x, payload)
        return framing.pack(framing.FrameHeader(self.get_config(), x.dtype, x.shape, eb_abs, stats), payload)

    def decode(self, frame) -> np.ndarray:
        """Decompress a frame written by this codec (any codec: see :func:`dlrmcomp.decompress`)."""
        header, payload = framing.unpack(frame)
        return decode_checked(self, payload, header)

    # -- batches (codecs that code many arrays in one launch override these) -----------------
    def encode_batch(self, xs) -> list[bytes]:
        """Arrays -> one frame each."""
        return [self.encode(x) for x in xs]

    def decode_batch(self, frames) -> list:
        """Frames -> one array each (numpy; a device codec returns arrays on its device)."""
        return [self.decode(f) for f in frames]


def decode_checked(codec: Codec, payload, header: framing.FrameHeader) -> np.ndarray:
    """Run ``codec.decode_payload``; any failure or wrong result is a CorruptStreamError."""
    try:
        out = codec.decode_payload(payload, header)
    except (CorruptStreamError, ImportError):  # a missing backend is not a corrupt frame
        raise
    except Exception as exc:  # stage and third-party decoders raise many error types
        raise CorruptStreamError(f"{codec.name}: payload could not be decoded ({type(exc).__name__}: {exc})") from None
    if out.dtype != header.dtype or out.shape != header.shape:
        raise CorruptStreamError(f"{codec.name}: decoded {out.dtype}{out.shape}, frame says {header.dtype}{header.shape}")
    return out if out.flags.writeable else out.copy()  # views of the frame's bytes are read-only


class ErrorBoundedCodec(Codec):
    """A lossy codec with a bound ``eb`` in ``mode`` ("rel" of the finite range, or "abs")."""

    lossy = True
    dtypes = tuple(np.dtype(t) for t in ("float32", "float64"))

    def __init__(self, eb: float | None = None, mode: str = "rel"):
        if eb is None:
            raise ValueError(f"codec {self.codec_id!r} is lossy: give an error bound eb")
        bound = ErrorBound(eb, mode)  # validates
        self.eb, self.mode = bound.value, bound.mode

    def resolve_bound(self, x: np.ndarray) -> float:
        return ErrorBound(self.eb, self.mode).resolve(x)


# -- registry ----------------------------------------------------------------------------------
_registry: dict[str, tuple[Callable[..., Codec], tuple[str, ...], bool]] = {}


def register(name: str, factory: Callable[..., Codec], requires: tuple[str, ...] = (), lossy: bool = True) -> None:
    """Register ``factory(**params) -> Codec`` under ``name``; ``requires`` = optional modules."""
    _registry[name] = (factory, tuple(requires), bool(lossy))


#: called with an unknown name before giving up (codecs/__init__ registers valid recipes on the fly)
_fallback: Callable[[str], None] | None = None


def is_lossy(name: str) -> bool:
    """Whether the registered codec ``name`` takes an error bound."""
    if name not in _registry and _fallback is not None:
        _fallback(name)
    if name not in _registry:
        raise ValueError(f"unknown codec {name!r}; registered: {', '.join(_registry)}")
    return _registry[name][2]


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:  # an optional backend can fail to import in many ways
        return False


def available() -> list[str]:
    """Registered codec names whose optional dependencies import on this machine."""
    return [n for n, (_, req, _lossy) in _registry.items() if all(_importable(m) for m in req)]


def registered() -> list[str]:
    return list(_registry)


def get(name: str, **params) -> Codec:
    """A codec by registry name, e.g. ``get("quant+ans", eb=0.01)``."""
    if name not in _registry and _fallback is not None:
        _fallback(name)
    if name not in _registry:
        raise ValueError(f"unknown codec {name!r}; registered: {', '.join(_registry)}")
    factory, requires, _ = _registry[name]
    missing = [m for m in requires if not _importable(m)]
    if missing:
        raise ValueError(f"codec {name!r} needs {', '.join(missing)}, which is not installed "
                         f"(pip install 'dlrmcomp[codecs]')")
    return factory(**params)


def from_config(config: dict) -> Codec:
    """Rebuild a codec from ``get_config()`` output."""
    config = dict(config)
    name = config.pop("id", None)
    if not isinstance(name, str):
        raise ValueError(f"codec config without an 'id': {config!r}")
    return get(name, **config)
