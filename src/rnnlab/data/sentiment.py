"""Sentence-level sentiment classification (``data=sentiment``).

Sources (``data.source``):

``rotten_tomatoes`` (default, offline)
    Pang & Lee's (2005) movie-review sentence-polarity snippets (the Rotten Tomatoes snippets of
    the "sentence polarity dataset v1.0"), as re-rated by Hutto & Gilbert (ICWSM 2014) and shipped
    in the *source* distribution of vaderSentiment 3.3.2 on PyPI:
    ``additional_resources/hutto_ICWSM_2014.tar.gz`` -> ``movieReviewSnippets_GroundTruth.txt``,
    10,605 lines ``id <TAB> mean rating (-4..+4) <TAB> text``. Label = rating > 0; the 37 snippets
    rated exactly 0 are dropped, leaving 10,568 (5,242 positive, 5,326 negative). The sdist is
    fetched with ``pip download`` (PyPI is the one network these machines have) and checked
    against its pinned sha256.
``hf:<name>`` (needs the Hugging Face Hub or its local cache)
    ``datasets.load_dataset(<name>, data.hf_config)``, e.g. ``hf:imdb``, ``hf:stanfordnlp/sst2``,
    ``hf:rotten_tomatoes`` (the same sentences as the offline source, with the Hub's split).
    The hub's own splits are kept where they are labelled: a missing validation split is carved
    out of train (stratified), and an unlabelled test split (SST-2's) is replaced by validation.

Pipeline: a Hugging Face ``datasets`` table per split (saved in the cache, so the split is fixed
and inspectable), a regex word tokeniser (lowercase; words with inner apostrophes, punctuation as
tokens) applied with ``Dataset.map``, a vocabulary built from the training split only
(``<pad>`` = 0, ``<unk>`` = 1, ``min_freq``, ``max_size``), right-padded batches with lengths, and
optional length bucketing. Optional pre-trained embeddings from a GloVe-format text file
(``data.embeddings_path``) are exposed as :attr:`SentimentDataModule.pretrained_embeddings`.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from rnnlab.config.errors import check_choice
from rnnlab.data.base import DataSpec, SequenceDataModule
from rnnlab.data.sources import (
    Cache,
    PinnedSdist,
    SourceUnavailable,
    extract_member,
    log,
)
from rnnlab.data.splits import (
    check_fractions,
    check_sizes,
    class_balance,
    length_stats,
    majority_baselines,
    stratified_split,
    subsample,
)
from rnnlab.data.text import (
    BucketBatchSampler,
    TokenDataset,
    Vocab,
    encode_batch,
    load_glove,
    pad_collate,
    tokenize_batch,
)

VADER_SDIST = PinnedSdist(
    requirement="vaderSentiment==3.3.2",
    filename="vaderSentiment-3.3.2.tar.gz",
    sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
)
SNIPPETS = "movieReviewSnippets_GroundTruth.txt"
SNIPPETS_SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"
OFFLINE_SOURCES = ("rotten_tomatoes",)
OFFLINE_HINT = ("the offline source is data.source=rotten_tomatoes (Pang & Lee's snippets from "
                "the vaderSentiment 3.3.2 sdist on PyPI)")
TEXT_FIELDS = ("text", "sentence", "review", "content", "document")
LABEL_FIELDS = ("label", "labels", "sentiment", "polarity")
SPLITS = ("train", "val", "test")

# ------------------------------------------------------------------------------ sources
def read_snippets(path: Path) -> dict[str, list]:
    """Rows of movieReviewSnippets_GroundTruth.txt, rating 0 dropped, label = rating > 0."""
    ids, ratings, texts, labels = [], [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        sid, rating, text = line.split("\t", 2)
        value = float(rating)
        if value == 0:
            continue
        ids.append(int(sid))
        ratings.append(value)
        texts.append(text.strip())
        labels.append(int(value > 0))
    return {"id": ids, "rating": ratings, "text": texts, "label": labels}


def snippets_file(cache: Cache) -> Path:
    """The verified snippets file, extracted from the pinned vaderSentiment sdist."""

    def extract(tmp: Path) -> None:
        import tarfile

        sdist = VADER_SDIST.fetch(cache)
        with cache.tempdir(SNIPPETS, "inner") as folder:
            inner = Path(folder, "hutto_ICWSM_2014.tar.gz")
            extract_member(sdist, "additional_resources/hutto_ICWSM_2014.tar.gz", inner)
            try:
                extract_member(inner, "/" + SNIPPETS, tmp)
            except tarfile.TarError as error:
                raise SourceUnavailable(f"{inner.name} in {sdist.name} is unreadable: {error}") \
                    from None

    return cache.ensure(SNIPPETS, extract, expected_sha256=SNIPPETS_SHA256,
                        what="Pang & Lee snippets (vaderSentiment sdist)")


# How long the one look at the Hub (SentimentDataModule._check_hub) may wait for an answer.
HUB_TIMEOUT_S = 10


def hub_lookup(name: str) -> str:
    """One request for hub dataset ``name``, no retries: "found", "not found" (no such dataset,
    or private or gated), "other" (the Hub answered with another error) or "unreachable: <why>"
    (offline mode, no network, refused, timed out)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(name, timeout=HUB_TIMEOUT_S)
    except RepositoryNotFoundError:
        return "not found"
    except HfHubHTTPError:
        return "other"
    except Exception as error:  # noqa: BLE001 - offline mode, DNS, refused, timed out
        first = (str(error).strip().splitlines() or [""])[0]
        return f"unreachable: {type(error).__name__}: {first}"
    return "found"


@contextmanager
def _offline(offline: bool):
    """Hugging Face's offline mode (HF_HUB_OFFLINE) for the code inside, when ``offline``:
    datasets reads its cache and makes no request (and so no retries)."""
    if not offline:
        yield
        return
    import datasets.config
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ------------------------------------------------------------------------- datamodule
class SentimentDataModule(SequenceDataModule):
    """Binary (or k-class) sentence sentiment: tokens in, one label per sequence
    (``last_classification``: accuracy and F1)."""

    def __init__(self, name: str = "sentiment", source: str = "rotten_tomatoes",
                 data_dir: str | None = None, hf_config: str | None = None,
                 text_field: str | None = None, label_field: str | None = None,
                 min_freq: int = 2, max_vocab_size: int | None = 20000,
                 max_length: int | None = 400, bucket_by_length: bool = False,
                 embeddings_path: str | None = None, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, split_seed: int = 0, train_size: int | None = None,
                 val_size: int | None = None, test_size: int | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        if not (source.startswith("hf:") and len(source) > 3):
            check_choice("data.source", source, [*OFFLINE_SOURCES, "hf:<hub dataset name>"],
                         "(e.g. hf:imdb, hf:stanfordnlp/sst2)")
        check_fractions("data", val_fraction, test_fraction)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        check_sizes("data", self.sizes)
        if min_freq < 1:
            raise ValueError(f"data.min_freq must be >= 1, got {min_freq}")
        if max_vocab_size is not None and max_vocab_size < 3:
            raise ValueError(f"data.max_vocab_size must be >= 3 or null, got {max_vocab_size}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"data.max_length must be >= 1 or null, got {max_length}")
        self.source, self.hf_config = source, hf_config
        self.text_field, self.label_field = text_field, label_field
        self.cache = Cache(data_dir, "sentiment")
        self.min_freq, self.max_vocab_size, self.max_length = min_freq, max_vocab_size, max_length
        self.bucket_by_length = bucket_by_length
        self.embeddings_path = embeddings_path
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.vocab: Vocab | None = None
        self.num_classes = 2
        self.label_names: list[str] = []
        self.tables = None  # the DatasetDict (train/val/test) with tokens and ids
        #: (vocab_size, dim) float tensor aligned with the vocabulary when data.embeddings_path
        #: is set (row 0 = <pad> = zeros), else None.
        self.pretrained_embeddings: torch.Tensor | None = None
        self.embedding_coverage: float | None = None
        self._baselines: dict[str, float] = {}
        self._offline = False  # the Hub cannot be reached: load the cached copy, no retries

    # -------------------------------------------------------------------------- tables
    def _split_params(self) -> dict:
        return {"source": self.source, "hf_config": self.hf_config, "split_seed": self.split_seed,
                "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                "text_field": self.text_field, "label_field": self.label_field, "version": 1}

    def load_tables(self):
        """The raw train/val/test tables (``datasets.DatasetDict``: id, text, label), split once
        and saved in the cache."""
        import datasets

        build = self._build_rotten_tomatoes if self.source == "rotten_tomatoes" \
            else self._build_hub
        path = self.cache.ensure(self._table_entry(), lambda tmp: build().save_to_disk(str(tmp)),
                                 params=self._split_params(), what=f"{self.source} split")
        return datasets.load_from_disk(str(path))

    def _table_entry(self) -> str:
        if self.source == "rotten_tomatoes":
            return f"tables/rotten_tomatoes-seed{self.split_seed}"
        config = f"-{self.hf_config}" if self.hf_config else ""
        return f"tables/hf-{_slug(self.source[3:])}{config}-seed{self.split_seed}"

    def _check_hub(self) -> None:
        """``hf:<name>`` whose split is not in rnnlab's cache yet: one look at the Hub before
        anything is written (no lock, no folder), so a name the Hub does not have, or a Hub that
        cannot be reached with no copy cached, is refused at once in one line (SourceUnavailable)
        -- not after the ~40 s of retries ``datasets.load_dataset`` makes. Reachable and found:
        loaded as before; unreachable with a cached copy: loaded from it (offline, no retries)."""
        if not self.source.startswith("hf:") or self.cache.state(
                self._table_entry(), self._split_params()) == "ok":
            return
        name = self.source[3:]
        answer = hub_lookup(name)
        if answer in ("found", "other"):  # other: an outage, a rate limit: datasets says
            return
        if answer == "not found":
            raise SourceUnavailable(
                f"data.source={self.source}: the Hugging Face Hub has no dataset {name!r} (or "
                f"it is private or gated: log in with `hf auth login`); {OFFLINE_HINT}")
        if not self._hub_cached(name):
            raise SourceUnavailable(
                f"data.source={self.source}: the Hugging Face Hub cannot be reached (offline? "
                f"{answer.removeprefix('unreachable: ')}) and no copy of {name!r} is cached; "
                f"{OFFLINE_HINT}")
        self._offline = True

    def _hub_cached(self, name: str) -> bool:
        """Whether a copy of hub dataset ``name`` may be cached: in the datasets cache this module
        passes (``<org>___<name>``), or in the Hub's own cache (``datasets--<org>--<name>``)."""
        from huggingface_hub import constants

        datasets_cache = Path(self._hf_cache()) / name.replace("/", "___")
        hub_cache = Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}"
        return datasets_cache.exists() or hub_cache.exists()

    def _build_rotten_tomatoes(self):
        import datasets

        rows = read_snippets(snippets_file(self.cache))
        features = datasets.Features({
            "id": datasets.Value("int64"), "rating": datasets.Value("float64"),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"])})
        table = datasets.Dataset.from_dict(rows, features=features)
        parts = stratified_split(np.asarray(rows["label"]), self.val_fraction, self.test_fraction,
                                 self.split_seed)
        return datasets.DatasetDict({split: table.select(parts[split]) for split in SPLITS})

    def _build_hub(self):
        import datasets

        name = self.source[3:]
        try:
            with _offline(self._offline):
                hub = datasets.load_dataset(name, self.hf_config, cache_dir=self._hf_cache())
        except (ConnectionError, OSError, FileNotFoundError) as error:
            raise SourceUnavailable(
                f"data.source={self.source}: could not load {name!r} from the Hugging Face Hub "
                f"(no network and no cached copy: {type(error).__name__}); {OFFLINE_HINT}"
            ) from None
        except Exception as error:  # noqa: BLE001 - datasets raises many kinds; report one line
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise SourceUnavailable(f"data.source={self.source}: {first}; {OFFLINE_HINT}") \
                from None
        if "train" not in hub:
            raise ValueError(f"data.source={self.source} has no train split "
                             f"(splits: {', '.join(hub)})")
        columns = hub["train"].column_names
        text = self.text_field or next((c for c in TEXT_FIELDS if c in columns), None)
        label = self.label_field or next((c for c in LABEL_FIELDS if c in columns), None)
        if text not in columns or label not in columns:
            raise ValueError(f"data.source={self.source}: set data.text_field and "
                             f"data.label_field (columns: {', '.join(columns)})")

        def standard(split):
            table = hub[split].select_columns([text, label])
            table = table.rename_columns({text: "text", label: "label"}) if (text, label) != (
                "text", "label") else table
            table = table.add_column("id", list(range(len(table))))
            return table.filter(lambda row: row["label"] is not None and row["label"] >= 0)

        labelled = {split: standard(split) for split in hub
                    if split in ("train", "validation", "test")}
        labelled = {split: table for split, table in labelled.items() if len(table)}
        train = labelled["train"]
        test = labelled.get("test")
        val = labelled.get("validation") if test is not None else None
        if test is None:
            test = labelled.get("validation")
        if test is None or val is None:
            labels = np.asarray(train["label"])
            frac_test = 0.0 if test is not None else self.test_fraction
            parts = stratified_split(labels, self.val_fraction, frac_test, self.split_seed)
            if test is None:
                test = train.select(parts["test"])
            val = train.select(parts["val"])
            train = train.select(parts["train"])
        return datasets.DatasetDict({"train": train, "val": val, "test": test})

    def _hf_cache(self) -> str:
        import os

        return os.environ.get("HF_DATASETS_CACHE") or str(self.cache.root / "huggingface")

    # --------------------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self._check_hub()
        self.cache.check_can_build(self._table_entry(), self._split_params())
        log.info("preparing the %s data: loading, tokenizing and encoding its texts",
                 self.source)
        import datasets

        was_enabled = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            tables = self.load_tables()
            label_feature = tables["train"].features["label"]
            if isinstance(label_feature, datasets.ClassLabel):
                self.num_classes, self.label_names = label_feature.num_classes, label_feature.names
            else:
                self.num_classes = int(max(max(tables[s]["label"]) for s in SPLITS)) + 1
            picked = {}
            for split in SPLITS:
                table = tables[split]
                keep = subsample(len(table), self.sizes[split], self.split_seed, split)
                picked[split] = table.select(keep) if len(keep) < len(table) else table
            picked = {s: t.map(tokenize_batch, batched=True) for s, t in picked.items()}
            self.vocab = Vocab.build(picked["train"]["tokens"], self.min_freq, self.max_vocab_size)
            encoded = {
                split: table.map(encode_batch, batched=True,
                                 fn_kwargs={"stoi": self.vocab.stoi, "max_length": self.max_length})
                for split, table in picked.items()}
        finally:
            if was_enabled:
                datasets.enable_progress_bars()
        self.tables = datasets.DatasetDict(encoded)
        self.splits = {split: TokenDataset(table["ids"], table["label"])
                       for split, table in encoded.items()}
        self._baselines = majority_baselines(np.asarray(encoded["train"]["label"]),
                                             np.asarray(encoded["test"]["label"]),
                                             self.num_classes)
        if self.embeddings_path:
            self.pretrained_embeddings, self.embedding_coverage = load_glove(
                self.embeddings_path, self.vocab, seed=self.split_seed)

    @property
    def spec(self) -> DataSpec:
        self.setup()
        return DataSpec(task_kind="last_classification", vocab_size=len(self.vocab),
                        output_size=self.num_classes, baselines=dict(self._baselines))

    def collate(self, examples):
        return pad_collate(examples)

    def train_dataloader(self) -> DataLoader:
        if not self.bucket_by_length:
            return super().train_dataloader()
        self.setup()
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            import logging

            logging.getLogger("rnnlab.data").warning(
                "data.bucket_by_length is single-process only; using shuffled batches")
            return super().train_dataloader()
        sampler = BucketBatchSampler(self.splits["train"].lengths, self.batch_size, seed=self.seed)
        return super().train_dataloader(batch_sampler=sampler)

    def summary(self) -> dict:
        """Sizes, token-length statistics and class balance per split (scripts/prepare_data.py)."""
        self.setup()
        return {
            "source": self.source, "vocab_size": len(self.vocab),
            "splits": {split: {"size": len(ds), "length": length_stats(ds.lengths),
                               "class_balance": class_balance(ds.labels.numpy())}
                       for split, ds in self.splits.items()},
            "baselines": dict(self._baselines)}
