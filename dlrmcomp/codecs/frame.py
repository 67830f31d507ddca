"""The one frame format every codec and backend writes.

Layout (little-endian)::

    magic b"DLRC" | version u8 | header_len u32 | header (JSON, UTF-8) |
    payload_len u64 | payload | crc32 u32 (over everything before it)

The header holds ``codec`` (the codec config), ``dtype`` (numpy ``.str``), ``shape`` and
``eb_abs`` (the resolved absolute bound, ``None`` for lossless codecs), and, only when a codec
records them, ``stats``: what a codec without a bound achieved (e.g. ``max_abs_err``, ``psnr``).
"""
from __future__ import annotations

import json
import math
import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptStreamError

MAGIC = b"DLRC"
VERSION = 1
_PREFIX = struct.Struct("<4sBI")
_PAYLOAD_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in ("float32", "float64", "float16", "int8", "uint8",
                                                "int16", "uint16", "int32", "uint32", "int64", "uint64"))


def as_bytes(buf) -> memoryview:
    """A flat unsigned-byte view of any contiguous buffer (bytes, bytearray, ndarray, memoryview)."""
    return memoryview(np.frombuffer(buf, dtype=np.uint8))


@dataclass(frozen=True)
class FrameHeader:
    codec: dict
    dtype: np.dtype
    shape: tuple[int, ...]
    eb_abs: float | None
    stats: dict | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def pack(header: FrameHeader, payload: bytes) -> bytes:
    tail = "}" if header.stats is None else f',"stats":{json.dumps(header.stats, separators=(",", ":"))}}}'
    return pack_parts(header_head(header.codec, header.dtype, header.shape), header.eb_abs, payload, tail)


def header_head(config: dict, dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The header's JSON up to the bound: ``{"codec":...,"dtype":...,"shape":[...],"eb_abs":``, the
    bytes of json.dumps(meta, separators=(",", ":")) built from parts (a codec's config is
    serialised once, :func:`_config_json`); a codec writing many frames of one shape keeps it."""
    return "".join(['{"codec":', _config_json(config), ',"dtype":"', dtype.str, '","shape":[',
                    ",".join([str(int(s)) for s in shape]), '],"eb_abs":']).encode()


def pack_parts(head: bytes, eb_abs: float | None, payload, tail: str = "}") -> bytes:
    """The frame of :func:`header_head`'s ``head``, the bound and ``tail`` (the rest of the header)
    around ``payload``."""
    meta = head + (_json_number(eb_abs) + tail).encode()
    prefix = _PREFIX.pack(MAGIC, VERSION, len(meta)) + meta + _PAYLOAD_LEN.pack(len(payload))
    return b"".join((prefix, payload, _CRC.pack(zlib.crc32(payload, zlib.crc32(prefix)))))  # the payload copied once


_configs: dict[tuple, str] = {}


def _config_json(config: dict) -> str:
    """json.dumps of a codec config, remembered by its (key, type, value) items (1, 1.0 and True
    hash alike but serialise differently); a config with an unhashable value is serialised anew."""
    try:
        key = tuple([(k, type(v), v) for k, v in config.items()])
        return _configs[key]
    except TypeError:
        return json.dumps(config, separators=(",", ":"))
    except KeyError:
        if len(_configs) >= 256:
            _configs.clear()
        _configs[key] = text = json.dumps(config, separators=(",", ":"))
        return text


def _json_number(v) -> str:
    """json.dumps(v) of a bound: float repr for a finite float, json's own otherwise."""
    return float.__repr__(v) if type(v) is float and math.isfinite(v) else json.dumps(v)


_DTYPES = {d.str: d for d in SUPPORTED_DTYPES}


def unpack(frame) -> tuple[FrameHeader, memoryview]:
    """Check and split a frame; raise CorruptStreamError on anything malformed."""
    try:
        buf = as_bytes(frame)
    except (TypeError, ValueError):
        raise CorruptStreamError(f"a frame must be bytes-like, got {type(frame).__name__}") from None
    if len(buf) < _PREFIX.size + _PAYLOAD_LEN.size + _CRC.size:
        raise CorruptStreamError(f"frame too short ({len(buf)} bytes)")
    magic, version, meta_len = _PREFIX.unpack_from(buf, 0)
    if magic != MAGIC:
        raise CorruptStreamError("not a dlrmcomp frame (bad magic)")
    if version != VERSION:
        raise CorruptStreamError(f"unsupported frame version {version} (this build reads {VERSION})")
    pos = _PREFIX.size + meta_len
    if pos + _PAYLOAD_LEN.size + _CRC.size > len(buf):
        raise CorruptStreamError("frame truncated inside the header")
    (payload_len,) = _PAYLOAD_LEN.unpack_from(buf, pos)
    end = pos + _PAYLOAD_LEN.size + payload_len
    if end + _CRC.size != len(buf):
        raise CorruptStreamError(f"frame length {len(buf)} does not match its header (expected {end + _CRC.size})")
    (crc,) = _CRC.unpack_from(buf, end)
    if zlib.crc32(buf[:end]) != crc:
        raise CorruptStreamError("frame checksum mismatch")
    try:
        header = _read_meta(bytes(buf[_PREFIX.size:pos]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptStreamError(f"frame header unreadable: {exc}") from None
    if header.dtype not in SUPPORTED_DTYPES or any(s < 0 for s in header.shape):
        raise CorruptStreamError(f"frame header names dtype {header.dtype} / shape {header.shape}")
    return header, buf[pos + _PAYLOAD_LEN.size:end]


#: the end of the header :func:`pack` writes without stats: the bound, and the part before it
_BOUND = re.compile(rb',"eb_abs":(null|-?[0-9][0-9.eE+-]*)\}\Z')
_HEAD_TAIL = re.compile(rb',"dtype":"([^"\\]*)","shape":\[([0-9,]*)\]\Z')
_heads: dict[bytes, tuple] = {}


def _read_meta(meta: bytes) -> FrameHeader:
    """The header's JSON. Laid out as :func:`pack` writes it without stats, all but the bound is
    parsed once (:func:`_head_of`); any other layout, by json alone."""
    cut = meta.rfind(b',"eb_abs":')
    bound = _BOUND.match(meta, cut) if cut > 0 else None
    head = None if bound is None else _head_of(meta[:cut])
    if head is None:
        m = json.loads(meta.decode())
        return FrameHeader(codec=dict(m["codec"]), dtype=_dtype(m["dtype"]), shape=tuple(int(s) for s in m["shape"]),
                           eb_abs=None if m["eb_abs"] is None else float(m["eb_abs"]),
                           stats=None if m.get("stats") is None else dict(m["stats"]))
    config, dtype, shape = head
    eb_abs = bound.group(1)
    return FrameHeader(codec=dict(config), dtype=dtype, shape=shape, eb_abs=None if eb_abs == b"null" else float(eb_abs))


def _head_of(text: bytes) -> tuple | None:
    """(codec config, dtype, shape) of a header's bytes before the bound, as :func:`header_head`
    writes them (remembered by those bytes when the config holds only scalars); None where they
    are laid out otherwise or the config is not one JSON object."""
    head = _heads.get(text)
    if head is not None:
        return head
    cut = text.rfind(b',"dtype":"')
    tail = _HEAD_TAIL.match(text, cut) if cut > 9 and text.startswith(b'{"codec":') else None
    if tail is None:
        return None
    try:
        config = json.loads(text[9:cut].decode())
    except ValueError:
        return None
    if not isinstance(config, dict):
        return None
    dtype, shape = tail.groups()
    head = (config, _dtype(dtype.decode()), tuple(int(s) for s in shape.split(b",")) if shape else ())
    if all(v is None or isinstance(v, (str, int, float)) for v in config.values()):
        if len(_heads) >= 256:
            _heads.clear()
        _heads[text] = head
    return head


def _dtype(name) -> np.dtype:
    dtype = _DTYPES.get(name)
    return np.dtype(name) if dtype is None else dtype


def read_header(frame) -> FrameHeader:
    """The header of a frame (checked like :func:`unpack`)."""
    return unpack(frame)[0]


_LEN = struct.Struct("<Q")


def join_sections(sections) -> bytes:
    """Concatenate byte strings, each prefixed by its u64 length, behind a u32 count."""
    parts = [struct.pack("<I", len(sections))]
    for s in sections:
        parts += [_LEN.pack(len(s)), s]
    return b"".join(parts)


def split_sections(buf) -> list[memoryview]:
    """Inverse of :func:`join_sections`; CorruptStreamError when lengths don't add up."""
    buf = as_bytes(buf)
    if len(buf) < 4:
        raise CorruptStreamError("section table truncated")
    (count,) = struct.unpack_from("<I", buf, 0)
    if count > len(buf):
        raise CorruptStreamError(f"section count {count} is impossible")
    pos, out = 4, []
    for _ in range(count):
        if pos + _LEN.size > len(buf):
            raise CorruptStreamError("section table truncated")
        (n,) = _LEN.unpack_from(buf, pos)
        pos += _LEN.size
        if pos + n > len(buf):
            raise CorruptStreamError("section truncated")
        out.append(buf[pos:pos + n])
        pos += n
    if pos != len(buf):
        raise CorruptStreamError(f"{len(buf) - pos} trailing bytes after the sections")
    return out


_ARRAY_HEAD = struct.Struct("<2sB")


def pack_array(a: np.ndarray) -> bytes:
    """An integer/float array as bytes with its dtype and shape (for byte-level stages)."""
    dt = a.dtype.str.encode()
    head = _ARRAY_HEAD.pack(b"AR", a.ndim) + struct.pack(f"<B{len(dt)}s{a.ndim}Q", len(dt), dt, *a.shape)
    return head + np.ascontiguousarray(a).tobytes()


def unpack_array(buf) -> np.ndarray:
    """Inverse of :func:`pack_array`."""
    buf = as_bytes(buf)
    try:
        tag, ndim = _ARRAY_HEAD.unpack_from(buf, 0)
        pos = _ARRAY_HEAD.size
        (dlen,) = struct.unpack_from("<B", buf, pos)
        dt = np.dtype(bytes(buf[pos + 1:pos + 1 + dlen]).decode())
        pos += 1 + dlen
        shape = struct.unpack_from(f"<{ndim}Q", buf, pos)
        pos += 8 * ndim
    except (struct.error, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptStreamError(f"array header unreadable: {exc}") from None
    if tag != b"AR" or dt not in SUPPORTED_DTYPES:
        raise CorruptStreamError("array header corrupt")
    if math.prod(shape) * dt.itemsize != len(buf) - pos:
        raise CorruptStreamError("array length does not match its shape")
    return np.frombuffer(buf[pos:], dtype=dt).reshape(shape)
