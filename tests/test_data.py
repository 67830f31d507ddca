"""Data: Batch, the synthetic generator, Criteo text/CSV loaders, EMB dump I/O."""
from pathlib import Path

import numpy as np
import pytest
import torch

from dlrmcomp.data import (Batch, CriteoData, CriteoFormatError, DumpWriter, SyntheticCriteo, load_criteo,
                           load_dump, read_manifest, scale_cardinalities)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "criteo"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="real Criteo samples absent")


@pytest.fixture(scope="module")
def synth():
    return SyntheticCriteo(scale=1e-4, test_size=5000, seed=3)


def test_batch_layout_and_to(synth):
    b = synth.batch(0, 8)
    assert b.dense.dtype == torch.float32 and b.dense.shape == (8, 13)
    assert b.num_tables == 26 and b.size == 8 and b.labels.shape == (8,)
    assert all(i.dtype == torch.int64 and o.tolist() == list(range(8)) for i, o in zip(b.indices, b.offsets))
    moved = b.to("cpu")
    assert isinstance(moved, Batch) and torch.equal(moved.indices[5], b.indices[5])


def test_synthetic_is_deterministic_and_calibrated(synth):
    again = SyntheticCriteo(scale=1e-4, test_size=5000, seed=3)
    a, b = synth.batch(7, 64), again.batch(7, 64)
    assert torch.equal(a.dense, b.dense) and all(torch.equal(x, y) for x, y in zip(a.indices, b.indices))
    assert not torch.equal(synth.batch(8, 64).dense, a.dense)
    assert abs(float(synth.test_labels.mean()) - 0.25) < 0.03
    assert 0.75 < synth.bayes_auc < 0.95
    assert (synth.batch(0, 256).dense >= 0).all()  # log1p of counts


def test_synthetic_popularity_is_zipf(synth):
    ids = torch.cat([synth.batch(k, 512).indices[2] for k in range(4)]).numpy()
    counts = np.sort(np.bincount(ids))[::-1]
    assert counts[0] > 5 * np.median(counts[counts > 0])
    assert ids.max() < synth.table_sizes[2]


def test_scale_cardinalities():
    assert scale_cardinalities([3, 1000, 10_000_000], 1e-3, min_rows=8) == [3, 8, 10_000]


@needs_real
@pytest.mark.parametrize("name", ["criteo_kaggle_first8000_merged.tsv", "hillview_criteo_terabyte_1000.tsv",
                                  "deepctr_criteo_sample.csv", "kaggle2014_train.tiny.csv"])
def test_real_files_parse(name):
    a = load_criteo(REAL / name, cache_dir=None)
    assert a.dense.shape == (len(a), 13) and a.cats.shape == (len(a), 26)
    assert set(np.unique(a.labels)) <= {0.0, 1.0} and (a.dense >= 0).all()
    assert (a.cats.max(axis=0) < np.array(a.vocab.table_sizes)).all()


@needs_real
def test_csv_variant_matches_text(tmp_path):
    """The CSV variant (header, Id column, CRLF, floats for ints) of a TSV's rows reads the same."""
    lines = (REAL / "criteo_kaggle_first8000_merged.tsv").read_text().splitlines()[:300]
    header = "Id,Label," + ",".join([f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)])
    rows = []
    for n, line in enumerate(lines):
        f = line.split("\t")
        rows.append(",".join([str(n), f[0]] + [f"{float(v):.1f}" if v else "" for v in f[1:14]] + f[14:]))
    _write(tmp_path / "t.tsv", lines)
    _write(tmp_path / "t.csv", [header] + rows, newline="\r\n")
    tsv, csv = load_criteo(tmp_path / "t.tsv", cache_dir=None), load_criteo(tmp_path / "t.csv", cache_dir=None)
    for name in ("dense", "cats", "labels"):
        np.testing.assert_array_equal(getattr(csv, name), getattr(tsv, name))


@needs_real
def test_dev_uses_train_vocabulary_and_cache(tmp_path):
    data = CriteoData(REAL / "wideresdnn_criteo_train.tsv", REAL / "wideresdnn_criteo_dev.tsv", cache_dir=tmp_path)
    assert len(data.test) == 409 and data.table_sizes == data.train.vocab.table_sizes
    assert (data.test.cats == 0).any()  # unseen dev categories map to 0
    assert len(list(tmp_path.glob("*/meta.json"))) == 2
    again = load_criteo(REAL / "wideresdnn_criteo_dev.tsv", vocab=data.train.vocab, cache_dir=tmp_path)
    assert isinstance(again.cats, np.memmap)
    np.testing.assert_array_equal(again.cats, data.test.cats)


def _write(path, lines, newline="\n"):
    path.write_text(newline.join(lines) + newline)
    return path


GOOD = "\t".join(["1"] + ["3"] * 12 + [""] + ["a1b2"] * 25 + [""])


def test_malformed_line_names_file_and_line(tmp_path):
    f = _write(tmp_path / "bad.txt", [GOOD, GOOD, "1\t2\t3", GOOD.replace("a1b2", "zz", 1)])
    with pytest.raises(CriteoFormatError, match=r"bad\.txt:3: expected 40 fields"):
        load_criteo(f, cache_dir=None)
    with pytest.warns(UserWarning, match="skipped 2 malformed"):
        a = load_criteo(f, on_bad_line="skip", cache_dir=None)
    assert len(a) == 2 and a.skipped == 2


def test_max_ind_range_and_min_freq(tmp_path):
    rows = [GOOD.replace("a1b2", key, 1) for key in ("10", "20", "20", "30")]
    f = _write(tmp_path / "t.txt", rows)
    # keys 0x10=16, 0x20=32, 0x30=48; modulo 16 they all collide into 0
    assert load_criteo(f, max_ind_range=16, cache_dir=None).vocab.table_sizes[0] == 2
    a = load_criteo(f, min_freq=2, cache_dir=None)
    assert a.vocab.table_sizes[0] == 2 and a.cats[:, 0].tolist() == [0, 1, 1, 0]
    assert a.cats[0, 25] == 0 and a.dense[0, 12] == 0  # empty = missing


def test_dump_round_trip(tmp_path):
    w = DumpWriter(tmp_path, table_sizes=[5, 7], dim=4, batch=3)
    payload = [np.arange(12, dtype=np.float32).reshape(3, 4) + t for t in range(2)]
    w.write(0, 0, payload, [0.02, None])
    w.write(1, 10, payload, [0.01, None])
    m = read_manifest(tmp_path)
    assert m["format"] == "dlrmcomp-emb-dump/1" and m["tables"][1] == {"table": 1, "rows": 7}
    e = m["snapshots"][3]
    assert e == {"file": "EMB_1_iter_1.bin", "table": 1, "snapshot": 1, "iteration": 10,
                 "shape": [3, 4], "dtype": "float32", "eb": None}
    np.testing.assert_array_equal(load_dump(tmp_path, e), payload[1])
    assert (tmp_path / "EMB_0_iter_0.bin").stat().st_size == 48
