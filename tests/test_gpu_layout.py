"""CUDA structs vs their host mirrors (CPU only, no cupy): the job arrays the host fills with numpy
are read by the kernels as C structs, so field names, order, offsets and itemsize must agree.

``c_struct_layout(source, name)`` parses ``struct NAME { ... };`` from CUDA source text (scalar
fields, typedefs resolved from the same source) and lays it out as the compiler does (natural
alignment). To check another struct, add one entry to ``STRUCTS``.
"""
from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

#: C scalar types -> numpy dtype (little-endian, the GPU's and the host's byte order)
C_TYPES = {
    "char": "i1", "signed char": "i1", "unsigned char": "u1",
    "short": "i2", "signed short": "i2", "unsigned short": "u2",
    "int": "i4", "signed int": "i4", "signed": "i4", "unsigned int": "u4", "unsigned": "u4",
    "long long": "i8", "signed long long": "i8", "unsigned long long": "u8",
    "float": "f4", "double": "f8", "bool": "b1",
}


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def _typedefs(source: str) -> dict[str, str | None]:
    """Typedef name -> numpy dtype string (None when the source defines it twice, differently)."""
    out: dict[str, str | None] = {}
    for target, alias in re.findall(r"\btypedef\s+([A-Za-z_][\w\s]*?)\s+([A-Za-z_]\w*)\s*;", _strip_comments(source)):
        target = " ".join(target.split())
        dtype = C_TYPES.get(target) or out.get(target)
        if dtype is not None:
            out[alias] = dtype if out.get(alias, dtype) == dtype else None
    return out


_DECLARATOR = r"[A-Za-z_]\w*(?:\s*\[\s*\d+\s*\])?"  # name or name[N]


def c_struct_layout(source: str, name: str) -> np.dtype:
    """``struct name { ... };`` of C/CUDA ``source`` as a numpy structured dtype with the C layout:
    each field at the next multiple of its alignment (its scalar size), the size rounded up to the
    largest alignment. Fields: ``TYPE a;``, ``TYPE a, b;``, ``TYPE a[N];``; types: C scalars or
    typedefs of them in ``source``."""
    found = re.findall(rf"\bstruct\s+{re.escape(name)}\s*\{{(.*?)\}}\s*;", _strip_comments(source), flags=re.S)
    if len(found) != 1:
        raise ValueError(f"expected one definition of struct {name}, found {len(found)}")
    types = {**C_TYPES, **_typedefs(source)}
    names, formats, offsets = [], [], []
    offset = align = 0
    for decl in (d.strip() for d in found[0].split(";")):
        if not decl:
            continue
        m = re.fullmatch(rf"([A-Za-z_][\w\s]*?)\s+({_DECLARATOR}(?:\s*,\s*{_DECLARATOR})*)", " ".join(decl.split()))
        if not m:
            raise ValueError(f"struct {name}: cannot parse field declaration {decl!r}")
        ctype = m.group(1)
        base = types.get(ctype)
        if base is None:
            raise ValueError(f"struct {name}: unknown or ambiguous type {ctype!r} in {decl!r}")
        scalar = np.dtype("<" + base)
        for declarator in m.group(2).split(","):
            field, count = re.fullmatch(r"\s*(\w+)\s*(?:\[\s*(\d+)\s*\])?\s*", declarator).groups()
            dtype = np.dtype((scalar, (int(count),))) if count else scalar
            offset = -(-offset // scalar.itemsize) * scalar.itemsize  # natural alignment
            names.append(field)
            formats.append(dtype)
            offsets.append(offset)
            offset += dtype.itemsize
            align = max(align, scalar.itemsize)
    if not names:
        raise ValueError(f"struct {name} has no fields")
    itemsize = -(-offset // align) * align
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


def _attr(spec: str):
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


#: (CUDA source "module:ATTR", struct name, host mirror numpy dtype "module:ATTR")
STRUCTS = [
    ("dlrmcomp.codecs.gpu.kernels:SOURCE", "Job", "dlrmcomp.codecs.gpu.runtime:JOB"),
    ("dlrmcomp.codecs.gpu.kernels:SOURCE", "WireSlice", "dlrmcomp.exchange.device:WIRE_SLICE"),
]


def assert_same_layout(host: np.dtype, c: np.dtype) -> None:
    assert list(host.names) == list(c.names), "field names / order"
    assert [host.fields[n][1] for n in host.names] == [c.fields[n][1] for n in c.names], "field offsets"
    assert [host.fields[n][0] for n in host.names] == [c.fields[n][0] for n in c.names], "field types"
    assert host.itemsize == c.itemsize, "itemsize"


@pytest.mark.parametrize("source,struct,mirror", STRUCTS, ids=[s[1] for s in STRUCTS])
def test_cuda_struct_matches_host_mirror(source, struct, mirror):
    assert_same_layout(np.dtype(_attr(mirror)), c_struct_layout(_attr(source), struct))


def test_mirror_imports_without_cupy():
    """codec.py imports cupy lazily: the host mirror is importable on a CPU-only machine."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['cupy'] = None\n"  # any `import cupy` now raises ImportError
            "from dlrmcomp.codecs.gpu.runtime import JOB; print(JOB.itemsize)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


SAMPLE = """
typedef unsigned char u8;
typedef unsigned long long u64;
typedef u64 size64;          // a typedef of a typedef
template <> struct OrdT<float> { typedef unsigned int U; };
struct Other { int z; };
struct S {
    u8 a;        // offset 0, then 7 bytes of padding
    size64 b;    /* 8 */
    int c, d[3]; // 16, 20..31
    unsigned short e;  // 32, then padding to 40
};
"""


def test_c_struct_layout_pads_and_aligns():
    d = c_struct_layout(SAMPLE, "S")
    assert d.names == ("a", "b", "c", "d", "e")
    assert [d.fields[n][1] for n in d.names] == [0, 8, 16, 20, 32]
    assert d.fields["d"][0] == np.dtype(("<i4", (3,))) and d.fields["b"][0] == np.dtype("<u8")
    assert d.itemsize == 40
    assert c_struct_layout(SAMPLE, "Other").itemsize == 4


def test_c_struct_layout_rejects_what_it_cannot_lay_out():
    with pytest.raises(ValueError, match="one definition"):
        c_struct_layout(SAMPLE, "Missing")
    with pytest.raises(ValueError, match="unknown or ambiguous type"):
        c_struct_layout("struct T { float4 v; };", "T")
    with pytest.raises(ValueError, match="cannot parse"):
        c_struct_layout("struct T { int (*f)(int); };", "T")


def test_mismatched_mirror_is_caught():
    """The check is not vacuous: a field dropped, two swapped, or one of the wrong sign all fail it."""
    from dlrmcomp.codecs.gpu.runtime import JOB as _JOB
    from dlrmcomp.codecs.gpu.kernels import SOURCE

    c = c_struct_layout(SOURCE, "Job")
    fields = [(n, _JOB.fields[n][0]) for n in _JOB.names]
    dropped = fields[:-1]
    swapped = fields[:1] + [fields[2], fields[1]] + fields[3:]
    signed = [(n, np.dtype("<i4") if n == "mask" else t) for n, t in fields]
    for bad in (dropped, swapped, signed):
        with pytest.raises(AssertionError):
            assert_same_layout(np.dtype(bad), c)
