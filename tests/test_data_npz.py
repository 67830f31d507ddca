"""The reference DLRM's processed files (``--data npz:``): files written the way
``facebookresearch/dlrm``'s ``data_utils.getCriteoAdData`` writes them load with its split and
its load-time preprocessing, bad values are reported by record, and ``dlrmcomp train`` runs on them."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dlrmcomp import cli
from dlrmcomp.data import CriteoFormatError, NpzData, NpzFormatError, load_npz

COUNTS = np.array([3 + 2 * t for t in range(26)], dtype=np.int32)  # what getCriteoAdData stores (np.int32)


def write_reference(folder: Path, raw: str = "train.txt", days=(300, 300, 301), seed: int = 0,
                    memory_map: bool = False, counts=COUNTS) -> dict:
    """Write what getCriteoAdData(raw, o_filename, days=len(days)) leaves in ``folder``, with the
    reference's names, members and dtypes: per day ``<npzfile>_<d>_processed.npz``
    (processCriteoAdData: ``X_cat`` = the transpose of a float64 [26, n] array, ``X_int`` int32
    with negatives set to 0, ``y`` int32), ``<d_file>_fea_count.npz`` (``counts``),
    ``<d_file>_day_count.npz`` (``total_per_file``), then either the whole set
    ``kaggleAdDisplayChallenge_processed.npz`` (concatCriteoAdData) or, with ``memory_map``, the
    reordered day files (float64 members; rows shuffled within each day but the last, as
    ``--data-randomize=day``). Returns the rows in file order."""
    kaggle = raw.endswith(".txt")
    d_file = raw.split(".")[0] if kaggle else raw
    npzfile = folder / (f"{d_file}_day" if kaggle else d_file)
    rng = np.random.default_rng(seed)
    parts = []
    for d, n in enumerate(days):
        X_int = rng.integers(-3, 2000, (n, 13)).astype("i4")
        X_int[X_int < 0] = 0
        X_cat_t = np.zeros((26, n))
        for j in range(26):
            X_cat_t[j, :] = rng.integers(0, counts[j], n)
        y = (rng.random(n) < 0.3).astype("i4")
        np.savez_compressed(f"{npzfile}_{d}_processed.npz", X_cat=np.transpose(X_cat_t), X_int=X_int, y=y)
        parts.append((np.transpose(X_cat_t), X_int, y))
    np.savez_compressed(folder / f"{d_file}_fea_count.npz", counts=np.asarray(counts, dtype=np.int32))
    np.savez_compressed(folder / f"{d_file}_day_count.npz", total_per_file=list(days))
    if memory_map:
        out = []
        for d, (X_cat, X_int, y) in enumerate(parts):
            idx = rng.permutation(len(y)) if d < len(days) - 1 else np.arange(len(y))
            fj_s, fj_d, fj_y = X_cat.astype(np.float64), X_int.astype(np.float64), y.astype(np.float64)
            np.savez_compressed(f"{npzfile}_{d}_reordered.npz", X_cat=fj_s[idx, :], X_int=fj_d[idx, :], y=fj_y[idx])
            out.append((fj_s[idx, :], fj_d[idx, :], fj_y[idx]))
        parts = out
    X_cat, X_int, y = (np.concatenate([p[i] for p in parts]) for i in range(3))
    if not memory_map:
        np.savez_compressed(folder / "kaggleAdDisplayChallenge_processed.npz", X_cat=X_cat, X_int=X_int, y=y,
                            counts=counts)
    return {"X_cat": X_cat, "X_int": X_int, "y": y, "days": list(days)}


def reference_batch(ref: dict, rows: slice):
    """The reference's collate_wrapper_criteo_offset on those rows: log(X_int + 1) in float32, ids, labels."""
    X_int = torch.log(torch.tensor(ref["X_int"][rows], dtype=torch.float) + 1)
    X_cat = torch.tensor(ref["X_cat"][rows], dtype=torch.long)
    return X_int, X_cat, torch.tensor(ref["y"][rows], dtype=torch.float32)


def assert_batch_is(b, ref: dict, rows: slice):
    X_int, X_cat, T = reference_batch(ref, rows)
    torch.testing.assert_close(b.dense, X_int, rtol=1e-6, atol=0)
    assert torch.equal(torch.stack(b.indices, 1), X_cat) and torch.equal(b.labels, T)


@pytest.fixture
def kaggle(tmp_path):
    return tmp_path / "kaggleAdDisplayChallenge_processed.npz", write_reference(tmp_path)


def test_processed_file_loads_with_the_reference_split(kaggle, tmp_path):
    path, ref = kaggle
    data = NpzData(path, cache_dir=tmp_path / "cache", progress=False)
    assert data.table_sizes == COUNTS.tolist() and data.bayes_auc is None
    # days 0..1 train; the first half (rounded up) of day 2 tests, as np.array_split(last_day, 2)[0]
    assert len(data.train) == 600 and len(data.test) == 151 and "train_day_count.npz" in data.split
    assert_batch_is(data.batch(1, 64), ref, slice(64, 128))
    assert_batch_is(data.batch(9, 64), ref, slice(0, 64))  # epochs cycle: 600 // 64 = 9 batches
    np.testing.assert_array_equal(data.test_labels, ref["y"][600:751].astype(np.float32))
    tests = list(data.test_batches(100))
    assert [b.size for b in tests] == [100, 51]
    assert_batch_is(tests[1], ref, slice(700, 751))
    # the compressed members were decompressed once into the cache, in the stored order
    (folder,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["X_cat.npy", "X_int.npy", "meta.json", "y.npy"]
    x_cat = np.load(folder / "X_cat.npy", mmap_mode="r")
    assert x_cat.dtype == np.int32 and x_cat.flags.f_contiguous  # the reference's X_cat is Fortran-ordered
    assert np.load(folder / "y.npy").dtype == np.int8
    assert isinstance(data.train.parts[0][0].X_cat, np.memmap)


def test_cached_load_reads_nothing_again(kaggle, tmp_path, monkeypatch):
    path, ref = kaggle
    first = load_npz(path, cache_dir=tmp_path / "cache", progress=False)
    from dlrmcomp.data import npz

    monkeypatch.setattr(npz, "_fill", lambda *a, **k: pytest.fail("a cached load read the values"))
    again = load_npz(path, cache_dir=tmp_path / "cache", progress=False)
    for name in ("X_int", "X_cat", "y"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
        np.testing.assert_array_equal(getattr(again, name), ref[name])


def test_uncompressed_members_are_mapped_in_place(tmp_path):
    ref = write_reference(tmp_path, days=(50, 60))
    plain = tmp_path / "plain.npz"
    np.savez(plain, X_cat=ref["X_cat"], X_int=ref["X_int"], y=ref["y"], counts=COUNTS)
    a = load_npz(plain, cache_dir=tmp_path / "cache", progress=False)
    assert isinstance(a.X_cat, np.memmap) and Path(a.X_cat.filename) == plain and a.X_cat.dtype == np.float64
    (folder,) = (tmp_path / "cache").iterdir()
    assert [p.name for p in folder.iterdir()] == ["meta.json"]  # nothing copied; checked once
    for cache in (tmp_path / "cache", None):
        a = load_npz(plain, cache_dir=cache, progress=False)
        for name in ("X_int", "X_cat", "y"):
            np.testing.assert_array_equal(getattr(a, name), ref[name])


def test_no_cache_keeps_compressed_members_in_memory(kaggle):
    path, ref = kaggle
    a = load_npz(path, cache_dir=None, progress=False)
    assert not isinstance(a.X_cat, np.memmap)
    np.testing.assert_array_equal(a.X_cat, ref["X_cat"])


@pytest.mark.parametrize("raw", ["day", "train.txt"])
def test_day_split_files(tmp_path, raw):
    """--memory-map: Terabyte names (day_<d>_reordered.npz) and Kaggle's (train_day_<d>_...)."""
    ref = write_reference(tmp_path, raw=raw, days=(40, 50, 61), memory_map=True)
    data = NpzData(tmp_path / raw, cache_dir=tmp_path / "cache", progress=False)
    assert len(data.train) == 90 and len(data.test) == 31 and data.table_sizes == COUNTS.tolist()
    assert_batch_is(data.batch(1, 32), ref, slice(32, 64))  # crosses from day 0 into day 1
    np.testing.assert_array_equal(data.test_labels, ref["y"][90:121])
    assert len(list((tmp_path / "cache").iterdir())) == 3  # one folder per day file


def test_processed_day_files_when_there_are_no_reordered_ones(tmp_path):
    ref = write_reference(tmp_path, raw="day", days=(20, 30))
    data = NpzData(tmp_path / "day", cache_dir=None, progress=False)
    assert len(data.train) == 20 and len(data.test) == 15
    assert_batch_is(data.batch(0, 20), ref, slice(0, 20))


def test_max_ind_range_and_holdout(tmp_path):
    ref = write_reference(tmp_path, days=(100, 100))
    lone = tmp_path / "lone"
    lone.mkdir()
    (tmp_path / "kaggleAdDisplayChallenge_processed.npz").rename(lone / "x.npz")  # no day counts beside it
    data = NpzData(lone / "x.npz", max_ind_range=10, cache_dir=None, progress=False)
    assert data.table_sizes == np.minimum(COUNTS, 10).tolist()
    assert len(data.train) == 180 and len(data.test) == 20 and "last 20 of 200" in data.split
    b = data.batch(0, 180)
    assert torch.equal(torch.stack(b.indices, 1), torch.tensor(ref["X_cat"][:180] % 10, dtype=torch.long))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["y"].__setitem__(17, 2), r"record 17: y\[17\] = 2; labels are 0 or 1"),
    (lambda m: m["X_cat"].__setitem__((250, 4), COUNTS[4]),
     r"record 250: X_cat\[250, 4\] = 11\.0 \(counts\[4\] = 11\); ids of table t"),
    (lambda m: m["X_cat"].__setitem__((3, 0), 1.5), r"record 3: X_cat\[3, 0\] = 1\.5"),
    (lambda m: m["X_int"].__setitem__((42, 12), -1), r"record 42: X_int\[42, 12\] = -1"),
    (lambda m: m.pop("X_int"), r"lacks 'X_int'"),
    (lambda m: m.__setitem__("X_int", m["X_int"][:, :12]), r"X_int has shape \(901, 12\), expected \(N, 13\)"),
    (lambda m: m.__setitem__("y", m["y"][:-1]), r"X_int has shape \(901, 13\), expected \(N, 13\) with N = rows of y"),
    (lambda m: m.__setitem__("counts", m["counts"][:25]), r"X_cat has shape \(901, 26\), expected \(N, 25\)"),
    (lambda m: m["counts"].__setitem__(3, 0), r"counts must be a non-empty vector of integers >= 1"),
    (lambda m: m.__setitem__("y", m["y"].astype(str)), r"y has dtype <U11, expected integers or floats"),
])
def test_bad_values_name_the_record(kaggle, change, message):
    path, _ = kaggle
    with np.load(path) as z:
        members = {k: z[k].copy() for k in z.files}
    change(members)
    np.savez_compressed(path, **members)
    with pytest.raises(NpzFormatError, match=message) as info:
        NpzData(path, cache_dir=None, progress=False)
    assert isinstance(info.value, CriteoFormatError) and isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def _flip_byte_in(path: Path, member: str, at: float = 0.5):
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{member}.npy")
    with open(path, "r+b") as f:
        # a low byte of a value when the member is stored (the .npy header is a multiple of 4 bytes)
        f.seek(info.header_offset + 30 + len(info.filename) + len(info.extra) + int(info.compress_size * at) // 4 * 4)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x55]))


@pytest.mark.parametrize("stored", [False, True])
def test_corrupt_files_are_errors(tmp_path, stored):
    ref = write_reference(tmp_path, days=(50, 60))
    path = tmp_path / "kaggleAdDisplayChallenge_processed.npz"
    if stored:
        np.savez(path, X_cat=ref["X_cat"], X_int=ref["X_int"], y=ref["y"], counts=COUNTS)
    _flip_byte_in(path, "X_int", 0.9)
    with pytest.raises(NpzFormatError, match=r"X_int (is corrupt|fails its CRC-32)"):
        load_npz(path, cache_dir=tmp_path / "cache", progress=False)
    assert not any((tmp_path / "cache").iterdir())  # nothing cached from a bad file
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(NpzFormatError):
        load_npz(path, cache_dir=None, progress=False)
    path.write_text("X_int,X_cat\n")
    with pytest.raises(NpzFormatError, match="not a readable .npz|not an .npz"):
        load_npz(path, cache_dir=None, progress=False)


def test_day_split_errors(tmp_path):
    write_reference(tmp_path, raw="day", days=(20, 30), memory_map=True)
    np.savez_compressed(tmp_path / "day_day_count.npz", total_per_file=[20, 31])
    with pytest.raises(NpzFormatError, match=r"day_1_reordered\.npz: 30 rows, but the day counts say 31"):
        NpzData(tmp_path / "day", cache_dir=None, progress=False)
    np.savez_compressed(tmp_path / "day_day_count.npz", total_per_file=[20, 30, 10])
    with pytest.raises(NpzFormatError, match=r"day_2_reordered\.npz missing"):
        NpzData(tmp_path / "day", cache_dir=None, progress=False)
    np.savez_compressed(tmp_path / "day_day_count.npz", total_per_file=[20, 30])
    (tmp_path / "day_fea_count.npz").unlink()
    with pytest.raises(NpzFormatError, match="day_fea_count.npz"):
        NpzData(tmp_path / "day", cache_dir=None, progress=False)
    with pytest.raises(FileNotFoundError, match="neither a processed .npz file nor"):
        NpzData(tmp_path / "nothing.npz", cache_dir=None, progress=False)


def run_train(*argv) -> int:
    return cli.main(["train", *argv])


def test_train_cli_on_a_reference_file(kaggle, tmp_path, monkeypatch, capsys):
    path, _ = kaggle
    monkeypatch.setenv("DLRMCOMP_CACHE_DIR", str(tmp_path / "env-cache"))
    out = tmp_path / "run"
    assert run_train("--data", f"npz:{path}", "--profile", "smoke", "--iters", "20", "--out", str(out),
                     "--no-progress") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["table_sizes"] == COUNTS.tolist() and summary["iterations"] == 20
    assert 0 <= summary["test_auc"] <= 1
    assert len(list((tmp_path / "env-cache" / "npz").glob("*/meta.json"))) == 1
    capsys.readouterr()
    bad = tmp_path / "bad"
    bad.mkdir()
    _rewrite_labels_bad(path, bad / "x.npz")
    assert run_train("--data", f"npz:{bad / 'x.npz'}", "--profile", "smoke", "--iters", "2",
                     "--out", str(tmp_path / "run2"), "--no-progress") == 2
    assert "record 5: y[5] = 3" in capsys.readouterr().err


def _rewrite_labels_bad(src: Path, dst: Path):
    with np.load(src) as z:
        members = {k: z[k].copy() for k in z.files}
    members["y"][5] = 3
    np.savez_compressed(dst, **members)
