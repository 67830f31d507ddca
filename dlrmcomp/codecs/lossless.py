"""Lossless byte back-ends through their libraries (SZ3's ``Lossless`` stage): zstd, lz4, zlib.

Each stage turns an array into bytes (dtype and shape kept) and back.
"""
from __future__ import annotations

import threading
import zlib

import lz4.block
import numpy as np
import zstandard

from ..errors import CorruptStreamError
from .frame import pack_array, unpack_array


class ByteStage:
    """Base: ``encode(array) -> bytes`` via ``compress(bytes)``; ``decode(bytes) -> array``."""

    def encode(self, a: np.ndarray) -> bytes:
        return self.compress(pack_array(a))

    def decode(self, buf, max_bytes: int | None = None) -> np.ndarray:
        """Inverse of encode; a stream claiming more than ``max_bytes`` is corrupt, not allocated."""
        return unpack_array(self.decompress(buf, max_bytes))

    @staticmethod
    def check_size(claimed: int, max_bytes: int | None, name: str) -> None:
        if max_bytes is not None and claimed > max_bytes:
            raise CorruptStreamError(f"{name}: stream claims {claimed} bytes, at most {max_bytes} fit the frame")

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if not k.startswith('_'))})"


class Zstd(ByteStage):
    """zstd at ``level``. A zstandard (de)compressor object must not be used by two threads at once
    (zarr decodes chunks on a thread pool), so each thread gets its own."""

    def __init__(self, level: int = 1):
        self.level = int(level)
        self._local = threading.local()

    def _objects(self):
        local = self._local
        if not hasattr(local, "c"):
            local.c, local.d = zstandard.ZstdCompressor(level=self.level), zstandard.ZstdDecompressor()
        return local.c, local.d

    def compress(self, raw: bytes) -> bytes:
        return self._objects()[0].compress(raw)

    def decompress(self, buf, max_bytes: int | None = None) -> bytes:
        try:
            claimed = zstandard.frame_content_size(buf)
            self.check_size(claimed if claimed >= 0 else 0, max_bytes, "zstd")
            return self._objects()[1].decompress(buf, max_output_size=max_bytes or 0)
        except zstandard.ZstdError as exc:
            raise CorruptStreamError(f"zstd: {exc}") from None


class Lz4(ByteStage):
    def compress(self, raw: bytes) -> bytes:
        return lz4.block.compress(raw, store_size=True)

    def decompress(self, buf, max_bytes: int | None = None) -> bytes:
        try:
            self.check_size(int.from_bytes(bytes(buf[:4]), "little") if len(buf) >= 4 else 0, max_bytes, "lz4")
            return lz4.block.decompress(buf)
        except (lz4.block.LZ4BlockError, ValueError) as exc:
            raise CorruptStreamError(f"lz4: {exc}") from None


class Zlib(ByteStage):
    def __init__(self, level: int = 6):
        self.level = int(level)

    def compress(self, raw: bytes) -> bytes:
        return zlib.compress(raw, self.level)

    def decompress(self, buf, max_bytes: int | None = None) -> bytes:
        try:
            d = zlib.decompressobj()
            out = d.decompress(bytes(buf), max_bytes or 0)
            if d.unconsumed_tail:
                raise CorruptStreamError(f"zlib: stream inflates past {max_bytes} bytes")
            return out + d.flush()
        except zlib.error as exc:
            raise CorruptStreamError(f"zlib: {exc}") from None
