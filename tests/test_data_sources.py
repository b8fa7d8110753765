"""The cache every real dataset shares: atomic writes, manifest, hash checks, seeded splits."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest

from rnnlab.config.errors import check_choice
from rnnlab.data.sources import (
    Cache,
    SourceUnavailable,
    atomic_path,
    data_root,
    package_file,
)
from rnnlab.data.splits import (
    majority_baselines,
    random_split,
    stratified_split,
    subsample,
)


def _write(text: str):
    def build(tmp):
        tmp.write_text(text)

    return build


def test_data_root_prefers_config_then_env_then_cwd(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "cfg") == (tmp_path / "cfg").resolve()
    assert data_root(None) == (tmp_path / "env").resolve()
    monkeypatch.delenv("RNNLAB_DATA")
    monkeypatch.chdir(tmp_path)
    assert data_root(None) == (tmp_path / "data").resolve()


def test_atomic_path_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "table.npz"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_a_folder(tmp_path):
    target = tmp_path / "tables"
    for text in ("first", "second"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "a.txt").write_text(text)
    assert (target / "a.txt").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["tables"]


def test_cache_builds_once_and_records_the_manifest(tmp_path):
    cache = Cache(tmp_path, "demo")
    calls = []

    def build(tmp):
        calls.append(1)
        tmp.write_text("payload")

    path = cache.ensure("entry.txt", build, params={"k": 1})
    assert path.read_text() == "payload"
    assert cache.ensure("entry.txt", build, params={"k": 1}) == path
    assert len(calls) == 1
    record = json.loads((tmp_path / "demo" / "manifest.json").read_text())["entry.txt"]
    assert record["sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert record["size"] == 7 and record["params"] == {"k": 1}
    # Other settings: a fresh build (no warning: nothing was wrong with the old one).
    cache.ensure("entry.txt", build, params={"k": 2})
    assert len(calls) == 2


def test_corrupt_or_partial_entry_is_rebuilt_with_one_warning(tmp_path, caplog):
    cache = Cache(tmp_path, "demo")
    path = cache.ensure("entry.txt", _write("complete content"))
    path.write_text("compl")  # truncated, as by a crash or a full disk
    with caplog.at_level(logging.WARNING, logger="rnnlab.data"):
        cache.ensure("entry.txt", _write("complete content"))
    assert path.read_text() == "complete content"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "corrupt or partial" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert cache.state("entry.txt") == "ok"


def test_a_file_no_manifest_vouches_for_is_rebuilt(tmp_path, caplog):
    cache = Cache(tmp_path, "demo")
    cache.dir.mkdir(parents=True)
    (cache.dir / "entry.txt").write_text("looks finished")
    with caplog.at_level(logging.WARNING, logger="rnnlab.data"):
        path = cache.ensure("entry.txt", _write("built"))
    assert path.read_text() == "built"
    assert "not recorded" in caplog.text


def test_interrupted_build_leaves_no_entry_and_leftovers_are_swept(tmp_path):
    cache = Cache(tmp_path, "demo")

    def crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.ensure("entry.txt", crash)
    assert cache.state("entry.txt") == "missing"
    # A leftover from a killed process (no chance to clean up) is swept by the next build.
    (cache.dir / ".entry.txt.partial-999-abc").write_text("half")
    cache.ensure("entry.txt", _write("ok"))
    names = sorted(p.name for p in cache.dir.iterdir() if not p.name.startswith(".lock"))
    assert names == ["entry.txt", "manifest.json"]


def test_pinned_hash_adopts_a_copy_dropped_in_and_refuses_another(tmp_path):
    cache = Cache(tmp_path, "demo")
    digest = hashlib.sha256(b"archive").hexdigest()
    cache.dir.mkdir(parents=True)
    (cache.dir / "a.tar.gz").write_bytes(b"archive")

    def never(tmp):
        raise AssertionError("a verified copy must not be rebuilt")

    assert cache.ensure("a.tar.gz", never, expected_sha256=digest).read_bytes() == b"archive"
    with pytest.raises(SourceUnavailable, match="expected"):
        cache.ensure("b.tar.gz", _write("tampered"), expected_sha256=digest)
    assert not (cache.dir / "b.tar.gz").exists()


def test_folder_entries_are_verified_file_by_file(tmp_path, caplog):
    cache = Cache(tmp_path, "demo")

    def build(tmp):
        tmp.mkdir()
        (tmp / "part.arrow").write_bytes(b"x" * 100)

    path = cache.ensure("tables", build)
    (path / "extra-cache-file.arrow").write_text("added later by datasets.map")
    assert cache.state("tables") == "ok"  # files added after the build are not checked
    (path / "part.arrow").write_bytes(b"x" * 50)
    assert cache.state("tables") == "corrupt"
    with caplog.at_level(logging.WARNING, logger="rnnlab.data"):
        cache.ensure("tables", build)
    assert (path / "part.arrow").stat().st_size == 100


def test_npz_round_trip(tmp_path):
    cache = Cache(tmp_path, "demo")
    arrays = cache.ensure_npz("a.npz", lambda: {"x": np.arange(5), "names": np.asarray(["a"])})
    assert arrays["x"].tolist() == [0, 1, 2, 3, 4] and arrays["names"][0] == "a"
    assert (cache.dir / "a.npz").exists()


def test_stratified_split_is_seeded_disjoint_and_stratified():
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    first = stratified_split(labels, 0.2, 0.1, seed=3)
    again = stratified_split(labels, 0.2, 0.1, seed=3)
    other = stratified_split(labels, 0.2, 0.1, seed=4)
    for split in first:
        assert np.array_equal(first[split], again[split])
    assert not np.array_equal(first["test"], other["test"])
    union = np.concatenate(list(first.values()))
    assert len(union) == len(set(union.tolist())) == len(labels)
    for split, fraction in (("val", 0.2), ("test", 0.1)):
        counts = np.bincount(labels[first[split]], minlength=3)
        assert counts.tolist() == [round(500 * fraction), round(300 * fraction),
                                   round(200 * fraction)]


def test_random_split_and_subsample_are_seeded():
    parts = random_split(371, 0.2, 0.2, seed=0)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [223, 74, 74]
    assert len(set(np.concatenate(list(parts.values())).tolist())) == 371
    assert np.array_equal(subsample(100, 10, 0, "train"), subsample(100, 10, 0, "train"))
    assert not np.array_equal(subsample(100, 10, 0, "train"), subsample(100, 10, 0, "val"))
    assert subsample(5, None, 0, "train").tolist() == [0, 1, 2, 3, 4]
    assert subsample(5, 50, 0, "train").tolist() == [0, 1, 2, 3, 4]


def test_majority_baselines():
    scores = majority_baselines(np.array([1, 1, 1, 0]), np.array([1, 0, 0, 0]), 2)
    assert scores["acc"] == pytest.approx(0.25)
    assert scores["f1"] == pytest.approx(2 * 0.25 / 1.25)
    assert scores["loss"] == pytest.approx(-(np.log(0.75) + 3 * np.log(0.25)) / 4)


def test_bad_setting_is_one_line_naming_the_allowed_values():
    with pytest.raises(ValueError) as info:
        check_choice("data.mode", "column", ("pixel", "row"))
    assert str(info.value) == "data.mode='column' is not one of pixel, row"


def test_missing_package_is_one_line():
    with pytest.raises(SourceUnavailable) as info:
        package_file("rnnlab_no_such_package", "data.csv")
    assert "pip install rnnlab_no_such_package" in str(info.value)
    assert "\n" not in str(info.value)


def test_an_entry_may_build_another_of_the_same_folder(tmp_path):
    outer, inner = Cache(tmp_path, "demo"), Cache(tmp_path, "demo")

    def build(tmp):
        inner.ensure("inner.txt", _write("inner"))
        tmp.write_text("outer")

    assert outer.ensure("outer.txt", build).read_text() == "outer"
    assert set(outer.manifest()) == {"inner.txt", "outer.txt"}


def test_sweep_touches_only_its_own_entry(tmp_path):
    cache = Cache(tmp_path, "demo")
    cache.dir.mkdir(parents=True)
    mine, theirs = cache.dir / ".a.npz.partial-1-x", cache.dir / ".b.npz.partial-2-y"
    mine.write_text("left by a killed build of a.npz")
    theirs.write_text("another process is writing b.npz right now")
    cache.ensure("a.npz", _write("a"))
    assert not mine.exists() and theirs.exists()
