"""Lossless byte back-ends through their libraries (SZ3's ``Lossless`` stage): zstd, lz4, zlib.

Each stage turns an array into bytes (dtype and shape kept) and back.
"""
from __future__ import annotations

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

    def decode(self, buf) -> np.ndarray:
        return unpack_array(self.decompress(buf))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if not k.startswith('_'))})"


class Zstd(ByteStage):
    def __init__(self, level: int = 1):
        self.level = int(level)
        self._c = zstandard.ZstdCompressor(level=self.level)
        self._d = zstandard.ZstdDecompressor()

    def compress(self, raw: bytes) -> bytes:
        return self._c.compress(raw)

    def decompress(self, buf) -> bytes:
        try:
            return self._d.decompress(buf)
        except zstandard.ZstdError as exc:
            raise CorruptStreamError(f"zstd: {exc}") from None


class Lz4(ByteStage):
    def compress(self, raw: bytes) -> bytes:
        return lz4.block.compress(raw, store_size=True)

    def decompress(self, buf) -> bytes:
        try:
            return lz4.block.decompress(buf)
        except (lz4.block.LZ4BlockError, ValueError) as exc:
            raise CorruptStreamError(f"lz4: {exc}") from None


class Zlib(ByteStage):
    def __init__(self, level: int = 6):
        self.level = int(level)

    def compress(self, raw: bytes) -> bytes:
        return zlib.compress(raw, self.level)

    def decompress(self, buf) -> bytes:
        try:
            return zlib.decompress(buf)
        except zlib.error as exc:
            raise CorruptStreamError(f"zlib: {exc}") from None
