"""Text utilities for token-sequence datasets: a regex word tokeniser, a vocabulary built from
the training split, the token dataset, right-padded collation with lengths, length-bucketed
batches, and GloVe-format pre-trained vectors. (The sentiment dataset itself: sentiment.py.)"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercased words (inner apostrophes kept: ``don't``) and single punctuation marks."""
    return _TOKEN.findall(text.lower())


class Vocab:
    """Token <-> id, built from the training split only. ``<pad>`` = 0, ``<unk>`` = 1."""

    def __init__(self, itos: Sequence[str]):
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError("a Vocab starts with <pad>, <unk>")
        self.itos = list(itos)
        self.stoi = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1,
              max_size: int | None = None) -> Vocab:
        counts = Counter(token for tokens in token_lists for token in tokens)
        # Most frequent first, ties alphabetical: the same vocabulary on every machine.
        ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max(0, max_size - 2)]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(token, 1) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids if i != 0]


def tokenize_batch(batch: dict) -> dict:
    return {"tokens": [tokenize(text) for text in batch["text"]]}


def encode_batch(batch: dict, stoi: dict[str, int], max_length: int | None) -> dict:
    ids = []
    for tokens in batch["tokens"]:
        row = [stoi.get(token, 1) for token in tokens][:max_length] or [1]  # never empty
        ids.append(row)
    return {"ids": ids, "length": [len(row) for row in ids]}


class TokenDataset(Dataset):
    def __init__(self, ids: list[list[int]], labels: Sequence[int]):
        self.ids = [torch.tensor(row, dtype=torch.int64) for row in ids]
        self.labels = torch.as_tensor(list(labels), dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.ids[index], "y": self.labels[index]}

    @property
    def lengths(self) -> list[int]:
        return [len(row) for row in self.ids]


def pad_collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Right-pad token sequences with 0 (``<pad>``); ``lengths`` holds the valid lengths."""
    lengths = torch.tensor([len(e["x"]) for e in examples], dtype=torch.int64)
    x = torch.nn.utils.rnn.pad_sequence([e["x"] for e in examples], batch_first=True,
                                        padding_value=0)
    return {"x": x, "y": torch.stack([e["y"] for e in examples]), "lengths": lengths}


class BucketBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar length: shuffle, cut into pools of ``pool`` batches, sort
    each pool by length, batch it, shuffle the batches. Seeded per epoch (Lightning calls
    ``set_epoch``)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.pool = batch_size, seed, pool
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start:start + span]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist()
                        for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        return iter(self._batches())

    def __len__(self) -> int:
        span = self.batch_size * self.pool
        n = len(self.lengths)
        full, rest = divmod(n, span)
        return full * math.ceil(span / self.batch_size) + math.ceil(rest / self.batch_size)


def load_glove(path: str | Path, vocab: Vocab, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Vectors of a GloVe-format text file (``word v1 ... vd`` per line; a word2vec header line
    is skipped) aligned with ``vocab``: row i is the vector of ``vocab.itos[i]``. Words the file
    lacks get N(0, std of the found vectors), seeded; ``<pad>`` is zeros. Returns the tensor and
    the fraction of the vocabulary (beyond <pad>, <unk>) found in the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"data.embeddings_path={str(path)!r} is not a file")
    vectors: dict[int, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            parts = line.rstrip().split(" ")
            if len(parts) <= 2:
                continue  # word2vec-style header or blank line
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                continue
            index = vocab.stoi.get(parts[0])
            if index is None:
                index = vocab.stoi.get(parts[0].lower())
            if index is not None and index not in vectors and index > 1:
                vectors[index] = np.asarray(parts[1:], dtype=np.float32)
    if dim is None:
        raise ValueError(f"data.embeddings_path={str(path)!r} has no 'word v1 v2 ...' lines")
    found = np.stack(list(vectors.values())) if vectors else np.zeros((1, dim), np.float32)
    std = float(found.std()) or 0.1
    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, std, size=(len(vocab), dim)).astype(np.float32)
    table[0] = 0.0
    for index, vector in vectors.items():
        table[index] = vector
    coverage = len(vectors) / max(1, len(vocab) - 2)
    return torch.from_numpy(table), coverage


