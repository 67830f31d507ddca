"""data/: the example error-bound schedules load through the package's real loader with the bounds
data/README.md states, and what the README says the file loaders do (cache files and where they
go, rejected inputs) is what they do."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dlrmcomp.data import KAGGLE_CARDINALITIES, CriteoFormatError, Vocabulary, load_criteo, load_npz
from dlrmcomp.errorbound import EBSchedule

DATA = Path(__file__).resolve().parents[1] / "data"
SCHEDULES = DATA / "schedules"
README = DATA / "README.md"

# The SC'24 artifact's run scripts (SC_ADAE_scripts/kaggle_run.sh, tb_run.sh), as environment variables.
ARTIFACT_ENV = {"TIGHTEN_EB_VALUE": "0.01", "LOOSEN_EB_VALUE": "0.05", "BASE_ERROR_BOUND": "0.03",
                "EB_CONSTANT": "2", "EARLY_STAGE": "65536", "DECAY_FUNC": "step"}
KAGGLE_ENV = {**ARTIFACT_ENV, "TIGHTEN_EB_TABLES": "2 3 9 11 15 20 23 25", "LOOSEN_EB_TABLES": "8 16 19 21 22 24"}
TERABYTE_ENV = {**ARTIFACT_ENV, "TIGHTEN_EB_TABLES": "0 9 10 19 20 21 22",
                "LOOSEN_EB_TABLES": "5 8 12 15 16 17 18 24 25"}


def load(name: str) -> EBSchedule:
    return EBSchedule.load(SCHEDULES / name)  # what --schedule FILE.json calls


def test_readme_lists_exactly_the_schedule_files():
    text = README.read_text()
    mentioned = set(re.findall(r"schedules/([\w.-]+\.json)", text))
    assert mentioned == {p.name for p in SCHEDULES.glob("*.json")} and len(mentioned) == 2


@pytest.mark.parametrize("path", sorted(SCHEDULES.glob("*.json")), ids=lambda p: p.name)
def test_schedule_file_round_trips(path):
    s = EBSchedule.load(path)
    assert s.to_dict() == json.loads(path.read_text())


def test_kaggle_sc24_schedule():
    s = load("criteo_kaggle_sc24.json")
    assert s == EBSchedule.from_env(KAGGLE_ENV)
    # per table, after the early stage (multiplier 1)
    late = 65536
    assert s.bound(2, late) == 0.01 and s.bound(11, late) == 0.01 and s.bound(25, late) == 0.01
    assert s.bound(8, late) == 0.05 and s.bound(24, late) == 0.05 and s.bound(19, late) == 0.05
    assert s.bound(0, late) == 0.03 and s.bound(5, late) == 0.03 and s.bound(13, late) == 0.03
    # step decay: 2x at iteration 0, 1.9x from the first tenth of the early stage, 1x at its end
    assert s.bound(2, 0) == pytest.approx(0.02) and s.bound(8, 0) == pytest.approx(0.10)
    assert s.bound(0, 0) == pytest.approx(0.06) and s.bound(0, 6554) == pytest.approx(0.057)
    assert s.bounds(26, late).count(0.01) == 8 and s.bounds(26, late).count(0.05) == 6


def test_kaggle_lists_follow_table_sizes():
    """README: tightened = the 8 largest Kaggle tables; loosened = 6 of the 8 smallest (5 and 13
    stay at base); auto() with the same counts would loosen table 5 instead of 24."""
    s = load("criteo_kaggle_sc24.json")
    by_size = sorted(range(26), key=lambda i: (-KAGGLE_CARDINALITIES[i], i))
    assert set(s.tighten_tables) == set(by_size[:8])
    assert set(s.loosen_tables) < set(by_size[-8:]) and set(by_size[-8:]) - set(s.loosen_tables) == {5, 13}
    auto = EBSchedule.auto(KAGGLE_CARDINALITIES, tighten_fraction=8 / 26, loosen_fraction=6 / 26)
    assert auto.tighten_tables == s.tighten_tables
    assert set(auto.loosen_tables) ^ set(s.loosen_tables) == {5, 24}


def test_terabyte_sc24_schedule():
    s = load("criteo_terabyte_sc24.json")
    assert s == EBSchedule.from_env(TERABYTE_ENV) == EBSchedule.from_env({})  # the seeds' defaults
    late = 10**6
    assert s.bound(0, late) == 0.01 and s.bound(22, late) == 0.01
    assert s.bound(5, late) == 0.05 and s.bound(25, late) == 0.05
    assert s.bound(1, late) == 0.03 and s.bound(2, late) == 0.03
    assert s.bound(0, 0) == pytest.approx(0.02) and s.bound(5, 65535) == pytest.approx(0.055)


def _criteo_line(label: int, i: int) -> str:
    dense = [str(i + k) if k % 4 else "" for k in range(13)]
    cats = [format((i * 7919 + k) % 5, "08x") if k % 5 else "" for k in range(26)]
    return "\t".join([str(label)] + dense + cats)


def test_cache_files_are_what_the_readme_says(tmp_path):
    raw = tmp_path / "train.txt"
    raw.write_text("\n".join(_criteo_line(i % 2, i) for i in range(50)) + "\n")
    first = load_criteo(raw, cache_dir=tmp_path / "cache")
    (folder,) = (tmp_path / "cache").iterdir()
    assert re.fullmatch(r"[0-9a-f]{20}", folder.name)
    assert sorted(p.name for p in folder.iterdir()) == ["cats.npy", "dense.npy", "labels.npy", "meta.json",
                                                        "vocab.npz"]
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta) == {"source", "rows", "skipped", "vocab", "fitted", "min_freq", "max_ind_range",
                         "on_bad_line", "v"}
    assert meta["rows"] == 50 and meta["vocab"] == first.vocab.digest() and meta["fitted"]
    for name, dtype, shape in (("dense", np.float32, (50, 13)), ("cats", np.int64, (50, 26)),
                               ("labels", np.float32, (50,))):
        a = np.load(folder / f"{name}.npy")
        assert a.dtype == dtype and a.shape == shape
    again = load_criteo(raw, cache_dir=tmp_path / "cache")
    assert isinstance(again.cats, np.memmap) and np.array_equal(again.cats, first.cats)
    assert Vocabulary.load(folder / "vocab.npz").digest() == first.vocab.digest()


def test_cache_dir_variable_moves_both_caches(tmp_path, monkeypatch):
    """README: DLRMCOMP_CACHE_DIR -> $DLRMCOMP_CACHE_DIR/criteo/ and .../npz/; the npz cache files."""
    monkeypatch.setenv("DLRMCOMP_CACHE_DIR", str(tmp_path / "c"))
    raw = tmp_path / "train.txt"
    raw.write_text("\n".join(_criteo_line(i % 2, i) for i in range(20)) + "\n")
    load_criteo(raw)
    assert len(list((tmp_path / "c" / "criteo").glob("*/meta.json"))) == 1
    rng = np.random.default_rng(0)
    counts = np.full(26, 4, np.int32)
    np.savez_compressed(tmp_path / "kaggleAdDisplayChallenge_processed.npz", X_cat=rng.integers(0, 4, (30, 26)) * 1.0,
                        X_int=rng.integers(0, 9, (30, 13)).astype("i4"), y=np.arange(30, dtype="i4") % 2, counts=counts)
    load_npz(tmp_path / "kaggleAdDisplayChallenge_processed.npz")
    (folder,) = (tmp_path / "c" / "npz").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["X_cat.npy", "X_int.npy", "meta.json", "y.npy"]
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta) == {"source", "rows", "counts", "v", "members"} and meta["rows"] == 30
    assert [np.load(folder / f"{n}.npy").dtype for n in ("X_int", "X_cat", "y")] == [np.int32, np.int32, np.int8]


def test_kaggle_test_txt_and_avazu_are_rejected(tmp_path):
    """README: Kaggle's unlabelled test.txt and Avazu's CSV are not read by the Criteo loader."""
    unlabelled = tmp_path / "test.txt"
    unlabelled.write_text(_criteo_line(0, 1).split("\t", 1)[1] + "\n")
    with pytest.raises(CriteoFormatError):
        load_criteo(unlabelled, cache_dir=None)
    avazu = tmp_path / "train"
    avazu.write_text("id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,"
                     "app_category,device_id,device_ip,device_model,device_type,device_conn_type,"
                     "C14,C15,C16,C17,C18,C19,C20,C21\n"
                     "1000009418151094273,0,14102100,1005,0,1fbe01fe,f3845767,28905ebd,ecad2386,7801e8d9,"
                     "07d7df22,a99f214a,ddd2926e,44956a24,1,2,15706,320,50,1722,0,35,-1,79\n")
    with pytest.raises(CriteoFormatError):
        load_criteo(avazu, cache_dir=None)


def test_gitignore_keeps_downloads_and_cache_out():
    lines = {line.strip() for line in (DATA.parent / ".gitignore").read_text().splitlines()}
    assert {"data/raw/", "data/cache/"} <= lines
    assert not any(line in lines for line in ("data/", "data", "data/*", "*.json", "*.md"))
