"""Every registered dlrmcomp codec as a numcodecs codec, so zarr and other numcodecs users can use it.

A dlrmcomp codec named ``quant+ans`` becomes the numcodecs class :class:`QuantAns` with
``codec_id = "dlrmcomp.quant+ans"``; its config is the dlrmcomp config with that id, so
``numcodecs.get_codec(codec.get_config())`` rebuilds it. ``encode`` writes a dlrmcomp frame
(self-describing: dtype, shape, resolved bound, CRC) and ``decode`` reads any frame back. A lossy
codec resolves its bound on each array it is given, so as a zarr compressor every chunk gets its
own absolute bound (``eb`` x that chunk's finite range for ``mode="rel"``, kept in the chunk's
frame header). zarr pads edge chunks with the fill value before compressing, so an edge chunk's
range includes it.

zarr (format 2 arrays, the numcodecs route zarr documents for third-party codecs)::

    from dlrmcomp.adapters.numcodecs import numcodec
    z = zarr.create_array("emb.zarr", shape=x.shape, chunks=(4096, 64), dtype="float32",
                          zarr_format=2, compressors=numcodec("quant+ans", eb=0.01))
    z[:] = x

Registration, two ways (both give the same classes):

- **Entry points.** The installed ``dlrmcomp`` declares one ``numcodecs.codecs`` entry point per
  registered codec (``pyproject.toml``), so ``numcodecs.get_codec`` (and ``zarr.open``) finds
  ``dlrmcomp.*`` ids in any process, without importing dlrmcomp first.
- **Import.** Importing this module registers every codec in dlrmcomp's registry with
  :func:`numcodecs.register_codec`; :func:`register` adds one registered later (a recipe outside
  the defaults, such as ``quant+dedup+lz4``, which a reader must register before opening).
"""
from __future__ import annotations

import re
from typing import ClassVar

import numpy as np
from numcodecs.abc import Codec as _NumcodecsCodec
from numcodecs.compat import ensure_ndarray, ndarray_copy
from numcodecs.registry import register_codec

from .. import codecs

PREFIX = "dlrmcomp."
ENTRY_POINT_GROUP = "numcodecs.codecs"


class DlrmcompCodec(_NumcodecsCodec):
    """Base of the generated classes: a numcodecs face on ``dlrmcomp.codecs.get(name, **params)``."""

    codec_id: ClassVar[str] = ""
    #: the dlrmcomp registry name (``codec_id`` without the prefix)
    name: ClassVar[str] = ""

    def __init__(self, **params):
        self._codec = codecs.get(self.name, **params)

    @property
    def codec(self) -> codecs.Codec:
        """The dlrmcomp codec behind this one."""
        return self._codec

    @property
    def lossy(self) -> bool:
        return self._codec.lossy

    def encode(self, buf) -> bytes:
        return self._codec.encode(np.asarray(ensure_ndarray(buf)))

    def decode(self, buf, out=None):
        return ndarray_copy(self._codec.decode(buf), out)

    def get_config(self) -> dict:
        config = self._codec.get_config()
        config["id"] = self.codec_id
        return config

    @classmethod
    def from_config(cls, config: dict) -> "DlrmcompCodec":
        config = dict(config)
        codec_id = config.pop("id", cls.codec_id)
        if codec_id != cls.codec_id:
            raise ValueError(f"config of {codec_id!r} given to {cls.__name__} ({cls.codec_id!r})")
        return cls(**config)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({params})"


def class_name(name: str) -> str:
    """The numcodecs class name of a dlrmcomp codec: ``quant+dedup+ans`` -> ``QuantDedupAns``,
    ``gpu:quant+ans`` -> ``GpuQuantAns``, ``sz3`` -> ``Sz3``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", name) if part)


def codec_class(name: str) -> type[DlrmcompCodec]:
    """The numcodecs class of dlrmcomp codec ``name`` (created and registered on first use)."""
    cls = globals().get(class_name(name))
    if isinstance(cls, type) and issubclass(cls, DlrmcompCodec):
        if cls.name != name:
            raise ValueError(f"codecs {cls.name!r} and {name!r} map to one class name {class_name(name)!r}")
        return cls
    codecs.is_lossy(name)  # ValueError for an unknown name (and registers any valid recipe)
    cls = type(class_name(name), (DlrmcompCodec,), {
        "codec_id": PREFIX + name, "name": name, "__module__": __name__,
        "__doc__": f"dlrmcomp codec {name!r} as a numcodecs codec (codec_id {PREFIX + name!r})."})
    globals()[cls.__name__] = cls
    register_codec(cls)
    return cls


def register(name: str | None = None) -> list[type[DlrmcompCodec]]:
    """Register dlrmcomp codec ``name`` (default: every registered one) with numcodecs; the classes."""
    return [codec_class(n) for n in ([name] if name is not None else codecs.registered())]


def numcodec(codec: str | codecs.Codec, **params) -> DlrmcompCodec:
    """A numcodecs codec: ``numcodec("quant+ans", eb=0.01)`` or ``numcodec(dlrmcomp_codec)``."""
    if isinstance(codec, codecs.Codec):
        if params:
            raise ValueError("give either a dlrmcomp codec or a name with parameters, not both")
        config = codec.get_config()
        return codec_class(config.pop("id"))(**config)
    return codec_class(codec)(**params)


def entry_points() -> dict[str, str]:
    """The ``numcodecs.codecs`` entry points dlrmcomp declares: codec_id -> ``module:Class``."""
    return {PREFIX + n: f"{__name__}:{class_name(n)}" for n in codecs.registered()}


register()

__all__ = ["DlrmcompCodec", "PREFIX", "class_name", "codec_class", "entry_points", "numcodec", "register"]
