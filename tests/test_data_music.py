"""data=music: music21's Bach chorales as 88-key piano rolls, next-frame prediction."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from rnnlab.data.music import (
    CHORALES,
    UNIQUE_CHORALES,
    MusicDataModule,
    chorale_names,
    frames_to_roll,
    music_baselines,
    piano_roll,
    riemenschneider_files,
    roll_collate,
)
from rnnlab.data.sources import SourceUnavailable

pytest.importorskip("music21")

LIMIT = 12  # parsing a chorale takes ~0.1 s: the tests use the first 12 (the full set: see below)


@pytest.fixture(scope="session")
def chorales(data_dir):
    module = MusicDataModule(data_dir=str(data_dir), limit_pieces=LIMIT)
    module.setup()
    return module


def test_the_corpus_has_the_371_chorales_in_350_files():
    numbered = riemenschneider_files()
    assert len(numbered) == CHORALES == 371
    names = chorale_names()
    assert len(names) == len(set(names)) == UNIQUE_CHORALES == 350
    assert set(names) == set(numbered) and names[0] == numbered[0]
    assert all(name.startswith("bach/") for name in names)


def test_pieces_are_split_60_20_20_disjoint(chorales):
    names = {split: chorales.splits[split].names for split in ("train", "val", "test")}
    assert [len(names[s]) for s in ("train", "val", "test")] == [8, 2, 2]
    everything = [n for split in names.values() for n in split]
    assert len(set(everything)) == LIMIT
    assert set(everything) == set(chorale_names(LIMIT))


def test_split_is_saved_and_deterministic(chorales, data_dir):
    saved = json.loads((data_dir / "music" / f"split-seed0-n{LIMIT}.json").read_text())
    assert saved["test"] == chorales.splits["test"].names
    again = MusicDataModule(data_dir=str(data_dir), limit_pieces=LIMIT, seed=99)
    again.setup()
    for split in ("train", "val", "test"):
        assert again.splits[split].names == chorales.splits[split].names
        for a, b in zip(again.splits[split].rolls, chorales.splits[split].rolls):
            assert torch.equal(a, b)
    other = MusicDataModule(data_dir=str(data_dir), limit_pieces=LIMIT, split_seed=1)
    other.setup()
    assert other.splits["test"].names != chorales.splits["test"].names


def test_next_frame_prediction_pairs(chorales):
    dataset = chorales.splits["train"]
    item = dataset[0]
    roll = dataset.rolls[0].float()
    assert item["x"].shape == item["y"].shape == (len(roll) - 1, 88)
    assert torch.equal(item["x"], roll[:-1]) and torch.equal(item["y"], roll[1:])
    assert set(torch.unique(roll).tolist()) <= {0.0, 1.0}


def test_rolls_look_like_four_part_chorales(chorales):
    rolls = torch.cat([r for s in ("train", "val", "test") for r in chorales.splits[s].rolls])
    voices = rolls.sum(1).float()
    assert 3.5 < voices.mean() < 4.1  # four voices, sometimes fewer (rests) or doubled notes
    keys = torch.nonzero(rolls.any(0)).flatten() + 21
    assert 28 <= keys.min() and keys.max() <= 96  # bass to soprano range, in MIDI


def test_batches_are_ragged_with_lengths(chorales):
    batch = next(iter(chorales.train_dataloader()))
    lengths = batch["lengths"]
    assert batch["x"].shape == batch["y"].shape == (len(lengths), int(lengths.max()), 88)
    for x, length in zip(batch["x"], lengths):
        assert x[length:].abs().sum() == 0


def test_spec_and_baselines(chorales):
    spec = chorales.spec
    assert spec.task_kind == "step_multilabel" and spec.input_size == spec.output_size == 88
    assert spec.baselines["loss"] == spec.baselines["nll"]
    assert 5.0 < spec.baselines["nll"] < 20.0
    assert 0.0 < spec.baselines["acc"] < 1.0


def test_quantization_eighth_notes_doubles_the_frames(chorales, data_dir):
    eighth = MusicDataModule(data_dir=str(data_dir), limit_pieces=LIMIT, quantization=0.5)
    eighth.setup()
    quarter_frames = sum(len(r) for r in chorales.splits["test"].rolls)
    eighth_frames = sum(len(r) for r in eighth.splits["test"].rolls)
    assert eighth.splits["test"].names == chorales.splits["test"].names
    assert eighth_frames == pytest.approx(2 * quarter_frames, abs=2 * len(eighth.splits["test"]))


def test_piano_roll_samples_the_frame_starts():
    events = np.array([[60, 0.0, 2.0],    # C4, a half note: frames 0, 1
                       [64, 1.0, 1.5],    # E4, an eighth on beat 2: frame 1
                       [67, 1.5, 2.0],    # G4, an eighth off the beat: not at a frame start
                       [21, 2.0, 3.0],    # A0, the lowest key
                       [108, 2.0, 3.0],   # C8, the highest key
                       [110, 0.0, 3.0]])  # beyond the piano: dropped
    roll = piano_roll(events, duration=3.0, quantization=1.0)
    assert roll.shape == (3, 88)
    assert np.flatnonzero(roll[0]).tolist() == [60 - 21]
    assert np.flatnonzero(roll[1]).tolist() == [60 - 21, 64 - 21]
    assert np.flatnonzero(roll[2]).tolist() == [0, 87]
    eighth = piano_roll(events, duration=3.0, quantization=0.5)
    assert eighth.shape == (6, 88) and eighth[3, 67 - 21] == 1


def test_baselines_by_hand():
    train = [np.array([[1, 0], [1, 0], [0, 1]], dtype=np.uint8)]
    test = [np.array([[1, 0], [1, 0]], dtype=np.uint8)]
    scores = music_baselines(train, test)
    p = np.array([0.5, 0.5])  # key frequencies over train targets (frames 1..)
    assert scores["nll"] == pytest.approx(-(np.log(p[0]) + np.log(1 - p[1])))
    assert scores["acc"] == pytest.approx(1.0)  # repeating [1, 0] is exactly right


def test_collate_pads_to_the_longest():
    a = {"x": torch.ones(3, 88), "y": torch.ones(3, 88)}
    b = {"x": torch.ones(1, 88), "y": torch.ones(1, 88)}
    batch = roll_collate([a, b])
    assert batch["x"].shape == (2, 3, 88) and batch["lengths"].tolist() == [3, 1]
    assert batch["y"][1, 1:].sum() == 0


def test_jsb_pickle_format(tmp_path, data_dir):
    rng = np.random.default_rng(0)

    def piece(n):
        return [tuple(sorted(rng.choice(np.arange(40, 80), size=4, replace=False).tolist()))
                for _ in range(n)]

    data = {"train": [piece(20) for _ in range(5)], "valid": [piece(15) for _ in range(2)],
            "test": [piece(12) for _ in range(2)]}
    path = tmp_path / "JSB Chorales.pickle"
    path.write_bytes(pickle.dumps(data))
    module = MusicDataModule(source="jsb_pickle", pickle_path=str(path), data_dir=str(data_dir))
    module.setup()
    assert [len(module.splits[s]) for s in ("train", "val", "test")] == [5, 2, 2]
    roll = module.splits["val"].rolls[0].numpy()
    assert roll.shape == (15, 88) and (roll.sum(1) == 4).all()
    assert np.array_equal(roll, frames_to_roll(data["valid"][0]))


def test_jsb_pickle_without_network_is_one_line(tmp_path):
    module = MusicDataModule(source="jsb_pickle", pickle_url="http://127.0.0.1:9/JSB.pickle",
                             data_dir=str(tmp_path))
    with pytest.raises(SourceUnavailable) as info:
        module.setup()
    assert "\n" not in str(info.value) and "data.source=music21" in str(info.value)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"source": "midi"}, "data.source='midi' is not one of music21, jsb_pickle"),
    ({"quantization": 0}, "data.quantization"),
    ({"source": "jsb_pickle", "quantization": 0.5}, "data.quantization must be 1.0"),
    ({"limit_pieces": 1}, "data.limit_pieces"),
])
def test_bad_settings_are_one_line(kwargs, expected):
    with pytest.raises(ValueError) as info:
        MusicDataModule(**kwargs)
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RNNLAB_QUICK_TESTS") == "1", reason="RNNLAB_QUICK_TESTS=1")
def test_the_full_corpus(data_dir):
    """All 350 distinct chorales (about 40 s of parsing on 2 cores, cached afterwards)."""
    module = MusicDataModule(data_dir=str(data_dir))
    summary = module.summary()
    pieces = {s: summary["splits"][s]["pieces"] for s in ("train", "val", "test")}
    assert pieces == {"train": 210, "val": 70, "test": 70}
    assert sum(summary["splits"][s]["frames"] for s in pieces) > 18000
    # A limited request is now served from the full cache, with the same first pieces.
    limited = MusicDataModule(data_dir=str(data_dir), limit_pieces=LIMIT)
    limited.setup()
    names = {n for s in ("train", "val", "test") for n in limited.splits[s].names}
    assert names == set(chorale_names(LIMIT))
