"""The Criteo text loader streams: chunked passes give the line-by-line parser's arrays and errors,
the cache keeps the vocabulary (a cached load parses nothing), and peak memory does not follow the
file's size (a subprocess measures it).

The memory test runs on 200,000 generated lines with 1 MiB chunks; ``DLRMCOMP_TEST_2M=1`` adds the
2,000,000-line run with the default chunks (about a minute on two cores).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dlrmcomp.data import CriteoData, CriteoFormatError, Vocabulary, criteo, load_criteo


def _render(values: np.ndarray, width: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned digits [n, width] (ASCII) and which of them are written (no leading zeros)."""
    symbols = np.frombuffer(b"0123456789abcdef", np.uint8)
    power = base ** np.arange(width - 1, -1, -1, dtype=np.int64)
    n_digits = 1 + sum(values >= p for p in power[:-1])
    return symbols[(values[:, None] // power) % base], np.arange(width) >= width - n_digits[:, None]


def write_criteo_tsv(path, rows: int, seed: int = 0, keys_per_table: int = 20_000, chunk: int = 100_000):
    """A Criteo-like TSV: labels (25% positive), 13 decimal ints below 10^4 (20% missing), 26 8-digit
    hex keys (10% missing) drawn skewed from ``keys_per_table`` keys per table (a bounded vocabulary)."""
    rng = np.random.default_rng(seed)
    keys = [_render(rng.integers(1 << 28, 1 << 32, keys_per_table), 8, 16)[0] for _ in range(26)]
    dense_digits, dense_written = _render(np.arange(10_000), 4, 10)
    width = 1 + 13 * 5 + 26 * 9 + 1
    with open(path, "wb") as f:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            buf = np.full((n, width), ord("\t"), np.uint8)
            keep = np.ones((n, width), bool)
            buf[:, 0] = ord("0") + (rng.random(n) < 0.25)
            buf[:, -1] = ord("\n")
            v = np.minimum(np.exp(rng.uniform(0, 9.2, (n, 13))), 9999).astype(np.int64)
            present = rng.random((n, 13)) >= 0.2
            for j in range(13):
                buf[:, 2 + 5 * j:6 + 5 * j] = dense_digits[v[:, j]]
                keep[:, 2 + 5 * j:6 + 5 * j] = dense_written[v[:, j]] & present[:, j, None]
            idx = (keys_per_table * rng.random((n, 26)) ** 4).astype(np.int64)
            present = rng.random((n, 26)) >= 0.1
            for j in range(26):
                c = 67 + 9 * j
                buf[:, c:c + 8] = keys[j][idx[:, j]]
                keep[:, c:c + 8] = present[:, j, None]
            f.write(buf[keep].tobytes())
    return path


def _line(label="1", dense=None, cats=None) -> str:
    dense = dense if dense is not None else [str(i) for i in range(13)]
    cats = cats if cats is not None else [format(0xA0 + i, "x") for i in range(26)]
    return "\t".join([label] + dense + cats)


# Lines the compiled parser leaves to the line-by-line one: valid but unusual, blank, and CRLF.
UNUSUAL = [
    _line(label="1.0"),
    _line(dense=["3.5", "+4", " 7", "-2", "1e3"] + [""] * 8),
    _line(cats=["0x1f", " a1", "A1B2", "-5", "1_0"] + ["ffffffffffffff"] * 21),
    "",
    "\r",
    _line() + "\r\r",
]


def _arrays(a) -> list[np.ndarray]:
    return [np.asarray(a.dense), np.asarray(a.cats), np.asarray(a.labels)]


def _line_by_line(monkeypatch):
    """Make the compiled parser hand every line to the line-by-line parser."""
    monkeypatch.setattr(criteo, "_parse_tsv", lambda buf, digits, labels, dense, cats, status: status.fill(2))


def test_compiled_parser_matches_line_by_line(tmp_path, monkeypatch):
    f = write_criteo_tsv(tmp_path / "t.tsv", 3000, seed=1, keys_per_table=300)
    lines = f.read_text().splitlines()
    for i, extra in enumerate(UNUSUAL):
        lines.insert(100 + 500 * i, extra)
    f.write_text("\n".join(lines))  # no newline after the last line
    fast = load_criteo(f, cache_dir=None, progress=False)
    monkeypatch.setattr(criteo, "CHUNK_BYTES", 4096)  # many chunks, lines cut at every boundary
    chunked = load_criteo(f, cache_dir=None, progress=False)
    _line_by_line(monkeypatch)
    slow = load_criteo(f, cache_dir=None, progress=False)
    assert len(fast) == 3000 + 4  # the blank lines are skipped
    for a, b, c in zip(_arrays(fast), _arrays(chunked), _arrays(slow)):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    assert fast.vocab.digest() == slow.vocab.digest()
    row = fast.dense[600]  # the line of unusual dense values
    assert row[0] == np.float32(np.log1p(3.5)) and row[1] == np.float32(np.log1p(4)) and row[3] == 0  # "-2" -> 0


@pytest.mark.parametrize("chunk", [criteo.CHUNK_BYTES, 1000])
def test_errors_name_the_line_across_chunks(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(criteo, "CHUNK_BYTES", chunk)
    lines = [_line()] * 600
    lines[536] = "1\t2\t3"
    lines[570] = _line(label="2")
    f = tmp_path / "bad.txt"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(CriteoFormatError, match=r"bad\.txt:537: expected 40 fields, got 3"):
        load_criteo(f, cache_dir=None, progress=False)
    with pytest.warns(UserWarning, match="skipped 2 malformed line.*first at line 537"):
        a = load_criteo(f, on_bad_line="skip", cache_dir=None, progress=False)
    assert len(a) == 598 and a.skipped == 2
    f.write_bytes(_line().encode() + b"\n" + b"1\t\xff\xfe" + b"\n")
    with pytest.raises(CriteoFormatError, match=r"bad\.txt:2: not UTF-8"):
        load_criteo(f, cache_dir=None, progress=False)


def test_cached_load_parses_nothing(tmp_path, monkeypatch):
    f = write_criteo_tsv(tmp_path / "t.tsv", 2000, keys_per_table=100)
    first = load_criteo(f, min_freq=2, cache_dir=tmp_path / "c", progress=False)
    assert isinstance(first.cats, np.memmap)  # the first load also returns the cache, mapped
    (folder,) = (tmp_path / "c").iterdir()
    assert Vocabulary.load(folder / "vocab.npz").digest() == first.vocab.digest()
    monkeypatch.setattr(criteo, "_chunks", lambda *a, **k: pytest.fail("a cached load parsed the file"))
    again = load_criteo(f, min_freq=2, cache_dir=tmp_path / "c", progress=False)
    assert again.vocab.digest() == first.vocab.digest()
    for a, b in zip(_arrays(again), _arrays(first)):
        np.testing.assert_array_equal(a, b)
    # a test file with the training vocabulary: keyed by the vocabulary, also cached
    monkeypatch.undo()
    data = CriteoData(f, f, min_freq=2, cache_dir=tmp_path / "c", progress=False)
    assert len(list((tmp_path / "c").glob("*/meta.json"))) == 2
    assert not (next(p for p in (tmp_path / "c").iterdir() if p != folder) / "vocab.npz").exists()
    np.testing.assert_array_equal(data.test.cats, first.cats)
    # other options or other bytes: another folder
    load_criteo(f, min_freq=1, cache_dir=tmp_path / "c", progress=False)
    with open(f, "a") as fh:
        fh.write(_line() + "\n")
    assert len(load_criteo(f, min_freq=2, cache_dir=tmp_path / "c", progress=False)) == 2001
    assert len(list((tmp_path / "c").glob("*/meta.json"))) == 4
    assert not list((tmp_path / "c").glob(".*partial"))  # no temporary folder left behind


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    f = write_criteo_tsv(tmp_path / "t.tsv", 50)
    monkeypatch.setenv("DLRMCOMP_CACHE_DIR", str(tmp_path / "env"))
    load_criteo(f, progress=False)
    assert len(list((tmp_path / "env" / "criteo").glob("*/meta.json"))) == 1


def test_a_failed_build_leaves_no_cache(tmp_path, monkeypatch):
    f = write_criteo_tsv(tmp_path / "t.tsv", 50)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(criteo, "_second_pass", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_criteo(f, cache_dir=tmp_path / "c", progress=False)
    assert not any((tmp_path / "c").iterdir())


MEASURE = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path

    def kib(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])

    from dlrmcomp.data import criteo
    path, cache, chunk = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    warm = cache.parent / "warm.tsv"
    warm.write_text("1\\t" + "\\t".join(["3"] * 13 + ["a1"] * 26) + "\\n")
    criteo.load_criteo(warm, cache_dir=None, progress=False)  # the parser compiled (or loaded) before measuring
    criteo.CHUNK_BYTES = chunk
    out = {}
    for run in ("first", "cached"):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before, t = kib("VmRSS"), time.perf_counter()
        a = criteo.load_criteo(path, cache_dir=cache, progress=False)
        out[run] = {"peak_growth_mib": (kib("VmHWM") - before) / 1024, "rss_before_mib": before / 1024,
                    "seconds": time.perf_counter() - t, "rows": len(a)}
        del a
    print(json.dumps(out))
""")


def measure_load(path, cache, chunk: int) -> dict:
    """Peak RSS growth (MiB) of a first and a cached ``load_criteo`` in a fresh process."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(cache), str(chunk)],
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


needs_proc = pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc")


@needs_proc
def test_peak_memory_is_bounded_200k(tmp_path):
    """200,000 lines (51 MB) in 1 MiB chunks: the whole-file arrays alone would be 53 MB."""
    f = write_criteo_tsv(tmp_path / "t.tsv", 200_000)
    m = measure_load(f, tmp_path / "cache", 1 << 20)
    assert m["first"]["rows"] == m["cached"]["rows"] == 200_000
    assert m["first"]["peak_growth_mib"] < 40, m
    assert m["cached"]["peak_growth_mib"] < 10, m


@needs_proc
@pytest.mark.skipif(os.environ.get("DLRMCOMP_TEST_2M") != "1", reason="opt-in: DLRMCOMP_TEST_2M=1")
def test_peak_memory_is_bounded_2m(tmp_path):
    """2,000,000 lines (508 MB) in the default 8 MiB chunks: the whole-file arrays would be 528 MB."""
    f = write_criteo_tsv(tmp_path / "t.tsv", 2_000_000)
    m = measure_load(f, tmp_path / "cache", criteo.CHUNK_BYTES)
    print(json.dumps({"file_bytes": f.stat().st_size, **m}))
    assert m["first"]["rows"] == 2_000_000
    assert m["first"]["peak_growth_mib"] < 160, m
    assert m["cached"]["peak_growth_mib"] < 10, m
