"""Log parsers on fixtures written in each tool's real console format (tests/fixtures/logs/)."""
import math
import statistics
import subprocess
import sys
import warnings

import pytest

from common import FIXTURES
from dlrmcomp.bench import parsers

LOGS = FIXTURES / "logs"
GIB, MIB_PER_MS = 2**30 / 1e9, 2**20 / 1e6
# (table, snapshot) -> (cr, tc, td) as printed by the tool
PRINTED = {
    "nvcomp": {(0, 1): (10.2625, 130.4127, 215.8876), (0, 2): (9.8173, 128.0051, 219.3342),
               (1, 1): (2.0514, 131.9, 214.0021), (1, 2): (2.3355, 127.5532, 210.7719),
               (2, 1): (2.8201, 133.0087, 221.4470), (2, 2): (2.7134, 129.9922, 218.0003)},
    "gpulz": {(0, 1): (1.57417, 2.41359, 1.52042), (0, 2): (1.61003, 2.38821, 1.49876),
              (1, 1): (411.033, 0.0898898, 12.0), (1, 2): (398.5, 0.0912345, 11.8765),
              (2, 1): (1.21044, 2.50017, 1.60023), (2, 2): (1.23008, 2.49911, 1.58802)},
    "huffman": {(0, 1): (2.42, 192.38, 57.50), (0, 2): (2.39, 188.82, 56.65), (1, 1): (2.09, 196.00, 54.06),
                (1, 2): (2.11, 195.31, 54.40), (2, 1): (2.92, 208.47, 62.62), (2, 2): (2.88, 207.56, 61.74)},
    # sz3: the precise second ratio line, compression / decompression seconds
    "sz3": {(0, 1): (9.473684, 0.000412, 0.000213), (0, 2): (9.142857, 0.000398, 0.000220),
            (1, 1): (11.377778, 0.000405, 0.000199), (1, 2): (10.893617, 0.000431, 0.000207),
            (2, 1): (8.827586, 0.000420, 0.000231), (2, 2): (8.533333, 0.000417, 0.000228)},
}
FILES = {"nvcomp": "nvcomp_ans.log", "gpulz": "gpulz.log", "huffman": "cusz_huffman.log", "sz3": "sz3.log"}
SZ3_BYTES = 128 * 32 * 4  # -2 128 32, float


def in_gbps(tool, cr, tc, td):
    """The printed values converted to decimal GB/s of input."""
    if tool == "sz3":
        return cr, SZ3_BYTES / tc / 1e9, SZ3_BYTES / td / 1e9
    scale = {"nvcomp": 1.0, "gpulz": MIB_PER_MS, "huffman": GIB}[tool]
    return cr, tc * scale, td * scale


def parse(tool, name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = parsers.parse_log(tool, (LOGS / name).read_text())
    return runs, [str(w.message) for w in caught]


@pytest.mark.parametrize("tool", list(FILES))
def test_every_run_is_read_exactly_in_gbps(tool):
    runs, caught = parse(tool, FILES[tool])
    assert caught == []
    assert list(zip(runs.table, runs.snapshot)) == list(PRINTED[tool])
    for row, printed in zip(runs.itertuples(), PRINTED[tool].values()):
        assert (row.cr, row.tc, row.td) == pytest.approx(in_gbps(tool, *printed), rel=1e-12)


@pytest.mark.parametrize("tool", list(FILES))
def test_per_table_harmonic_means(tool):
    summary = parsers.summarize(parse(tool, FILES[tool])[0])
    assert list(summary.table) == [0, 1, 2]
    for row in summary.itertuples():
        runs = [in_gbps(tool, *PRINTED[tool][(row.table, k)]) for k in (1, 2)]
        expected = [statistics.harmonic_mean(col) for col in zip(*runs)]
        assert (row.cr, row.tc, row.td) == pytest.approx(expected, rel=1e-12)


def test_unit_conversions():
    # cuSZ prints GiB/s: 192.38 GiB/s = 206.56... GB/s; GPULZ's "GB/s" is MiB/ms
    runs, _ = parse("huffman", FILES["huffman"])
    assert runs.tc[0] == pytest.approx(192.38 * 1.073741824, rel=1e-12)
    runs, _ = parse("gpulz", FILES["gpulz"])
    assert runs.tc[0] == pytest.approx(2.41359 * 1.048576, rel=1e-12)


def test_truncated_and_garbled_log_warns_with_line_numbers_and_keeps_what_it_read():
    runs, caught = parse("nvcomp", "nvcomp_lz4_truncated.log")
    got = {(r.table, r.snapshot): (r.cr, r.tc, r.td) for r in runs.itertuples()}
    assert set(got) == {(0, 1), (0, 2), (1, 1)}
    assert got[(0, 1)] == (4.0012, 5.4123, 16.8034)
    cr, tc, td = got[(0, 2)]
    assert (cr, td) == (3.9876, 16.7911) and math.isnan(tc)  # the garbled number
    cr, tc, td = got[(1, 1)]
    assert cr == 70.1234 and math.isnan(tc) and math.isnan(td)  # cut off; table from the file name
    assert len(caught) == 4
    assert caught[0].startswith("line 14: cannot read tc")
    assert caught[1].startswith("line 9: EMB 0, Iter 2: no tc")
    assert caught[2].startswith("line 18: run without its 'Completed:' line") and caught[2].endswith("dropped")
    assert caught[3].startswith("line 22: run without") and "cr=70.1234" in caught[3] and "EMB 1, Iter 1" in caught[3]
    summary = parsers.summarize(runs)
    assert summary.set_index("table").loc[0, "tc"] == 5.4123  # NaN skipped in the harmonic mean


def test_garbage_never_raises():
    text = (LOGS / "cusz_huffman.log").read_text()
    for cut in range(0, len(text), 997):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = parsers.parse_log("huffman", text[:cut] + "\x00garbage Executing: \n" + text[cut // 2:])
        assert set(runs.columns) == {"table", "snapshot", "line", "cr", "tc", "td"}


def test_parse_command_prints_the_seed_lines_and_writes_csv(tmp_path):
    out = tmp_path / "nv.csv"
    done = subprocess.run([sys.executable, "-m", "dlrmcomp.cli", "parse", "nvcomp", str(LOGS / "nvcomp_ans.log"),
                           "--out", str(out)], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    cr, tc, td = (float(v) for v in lines[0].split(" "))
    assert cr == pytest.approx(statistics.harmonic_mean([10.2625, 9.8173]), abs=1e-6)
    assert out.read_text().startswith("table,cr,tc,td\n0,")
