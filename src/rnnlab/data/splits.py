"""Train/val/test splits and the checks and summaries around them, shared by the real datasets:
seeded stratified or random splits, subsampling, the settings' one-line checks, class balance,
majority baselines, length statistics. (Where the data comes from: sources.py.)"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def check_fractions(prefix: str, val_fraction: float, test_fraction: float) -> None:
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{prefix}.{key} must be in (0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"{prefix}.val_fraction + {prefix}.test_fraction must be < 1, got "
                         f"{val_fraction} + {test_fraction}")


def check_sizes(prefix: str, sizes: dict[str, int | None]) -> None:
    for split, size in sizes.items():
        if size is not None and size < 1:
            raise ValueError(f"{prefix}.{split}_size must be a positive integer or null, "
                             f"got {size}")


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, np.ndarray]:
    """Seeded, stratified train/val/test indices (each sorted): every class is split in the same
    proportions. Deterministic for a given ``seed`` and label vector."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(members) * test_fraction)
        n_val = round(len(members) * val_fraction)
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test:n_test + n_val])
        parts["train"].append(members[n_test + n_val:])
    return {split: np.sort(np.concatenate(chunks)).astype(np.int64)
            for split, chunks in parts.items()}


def random_split(n: int, val_fraction: float, test_fraction: float,
                 seed: int) -> dict[str, np.ndarray]:
    """Seeded train/val/test indices (each sorted) over ``n`` items."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    return {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test:n_test + n_val]),
            "train": np.sort(order[n_test + n_val:])}


def subsample(n: int, size: int | None, seed: int, split: str) -> np.ndarray:
    """Indices of a seeded subsample of ``size`` items out of ``n`` (all, in order, if None)."""
    if size is None or size >= n:
        return np.arange(n)
    offset = {"train": 0, "val": 1, "test": 2}.get(split, 3)
    rng = np.random.default_rng([seed, offset])
    return np.sort(rng.choice(n, size=size, replace=False))


def class_balance(labels: np.ndarray) -> dict[int, float]:
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): float(c) / float(counts.sum()) for v, c in zip(values, counts)}


def majority_baselines(train_labels: np.ndarray, test_labels: np.ndarray,
                       num_classes: int) -> dict[str, float]:
    """What a predictor that ignores the input scores on the test split: always the majority
    training class (``acc``, ``f1``) and the training class prior as probabilities (``loss``)."""
    train_counts = np.bincount(np.asarray(train_labels), minlength=num_classes).astype(float)
    prior = np.clip(train_counts / train_counts.sum(), 1e-12, 1.0)
    test_labels = np.asarray(test_labels)
    majority = int(train_counts.argmax())
    acc = float(np.mean(test_labels == majority)) if len(test_labels) else 0.0
    if num_classes == 2:  # binary F1 of the positive class, as the task reports it
        positives = float(np.mean(test_labels == 1)) if len(test_labels) else 0.0
        f1 = 2 * positives / (1 + positives) if majority == 1 else 0.0
    else:  # macro F1: only the majority class has a nonzero F1
        share = float(np.mean(test_labels == majority)) if len(test_labels) else 0.0
        f1 = 2 * share / (1 + share) / num_classes
    loss = float(-np.mean(np.log(prior[test_labels]))) if len(test_labels) else 0.0
    return {"acc": acc, "f1": f1, "loss": loss}


def length_stats(lengths: Iterable[int]) -> dict[str, float]:
    lengths = np.asarray(list(lengths))
    if not len(lengths):
        return {}
    return {"min": int(lengths.min()), "mean": float(lengths.mean()),
            "median": float(np.median(lengths)), "max": int(lengths.max())}
