"""What every rnnlab dataset hands to the task and the model.

A dataset is a LightningDataModule that also exposes a :class:`DataSpec`: what the inputs are
(tokens or real vectors), what the targets are (the task kind), and the reference numbers a
trivial predictor scores. Batches are dicts:

- ``x``: ``(B, T)`` int64 tokens or ``(B, T, input_size)`` float inputs
- ``y``: targets, shaped by the task kind (see ``TASK_KINDS``)
- ``lengths`` (optional): ``(B,)`` int64 valid lengths of a right-padded batch
- ``score_mask`` (optional, per-step kinds): ``(B, T)`` bool, the steps whose accuracy is reported
  (copy: the recalled symbols); the loss still covers every valid step, unless
- ``loss_mask`` (optional, per-step kinds): ``(B, T)`` bool, the only steps the loss covers
  (selective copy: the recalled tokens; the other targets mean nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from rnnlab.config.errors import check_choice

# task kind -> (what the model emits, target shape)
TASK_KINDS = {
    "step_classification": "per-step class logits; y (B, T) int64",
    "last_classification": "class logits at each sequence's last valid step; y (B,) int64",
    "last_regression": "real vector at each sequence's last valid step; y (B, output_size) float",
    "step_multilabel": "per-step Bernoulli logits; y (B, T, output_size) float in {0, 1}",
}


@dataclass
class DataSpec:
    task_kind: str
    output_size: int
    input_size: int | None = None  # real-vector inputs
    vocab_size: int | None = None  # token inputs
    # Metrics a trivial predictor scores, logged as baseline/<name> so every chart has its
    # reference.
    baselines: dict[str, float] = field(default_factory=dict)
    # Regression targets are modelled standardised; metrics are reported in original units:
    # y_original = y * target_scale + target_shift (per output dimension, or scalars).
    target_scale: torch.Tensor | float | None = None
    target_shift: torch.Tensor | float | None = None

    def __post_init__(self) -> None:
        check_choice("task_kind", self.task_kind, TASK_KINDS)
        if (self.input_size is None) == (self.vocab_size is None):
            raise ValueError("a DataSpec has exactly one of input_size (real) or "
                             "vocab_size (tokens)")

    @property
    def per_step(self) -> bool:
        return self.task_kind.startswith("step_")


class TensorDictDataset(Dataset):
    """Dataset over aligned tensors, yielding one dict per example."""

    def __init__(self, **tensors: torch.Tensor):
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError("tensors of unequal length: "
                             f"{ {k: len(v) for k, v in tensors.items()} }")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[index] for key, value in self.tensors.items()}

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """The examples ``indices`` as one batch: what default_collate makes of them, by one
        index per tensor."""
        rows = torch.as_tensor(indices, dtype=torch.long)
        return {key: value[rows] for key, value in self.tensors.items()}


class _WholeBatches(Dataset):
    """A TensorDictDataset that a DataLoader reads a batch at a time (``__getitems__``), its
    collate_fn passing the batch through: the same tensors as one dict per example and
    default_collate, for ~0.2 ms less per batch of 64 (a few % of a quickstart-size step)."""

    def __init__(self, dataset: TensorDictDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self.dataset.batch(indices)

    @staticmethod
    def collate(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return batch


class ResumableLoader(DataLoader):
    """The training DataLoader, able to continue an epoch where a checkpoint left it.

    It keeps its shuffle generator's state at the start of each epoch (``epoch_start``). Given a
    checkpoint's :class:`LoaderResume`, its first epoch replays the checkpoint's epoch from that
    state and drops the batches already trained on -- or, when the training loop has moved on to
    the next epoch, starts from the state the generator had at the checkpoint -- so a resumed run
    sees exactly the batches, in the order, of the uninterrupted one. (Samplers seeded per epoch,
    e.g. DistributedSampler or the bucket sampler, need only the skip: Lightning calls their
    ``set_epoch``.)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_start: torch.Tensor | None = None
        self._resume: LoaderResume | None = None
        self._current_epoch = lambda: 0

    def resume(self, state: LoaderResume, current_epoch) -> None:
        """Continue ``state`` on the next ``__iter__``; ``current_epoch()``: the trainer's epoch."""
        self._resume, self._current_epoch = state, current_epoch

    def __iter__(self):
        skip = 0
        if self._resume is not None:
            resume, self._resume = self._resume, None
            same_epoch = self._current_epoch() == resume.epoch
            state = resume.epoch_start if same_epoch else resume.now
            if state is not None and self.generator is not None:
                self.generator.set_state(state)
            skip = resume.batches_done if same_epoch else 0
        self.epoch_start = self.generator.get_state() if self.generator is not None else None
        iterator = super().__iter__()
        for _ in range(skip):  # drawn and dropped: the generator and workers advance as before
            next(iterator)
        return iterator


@dataclass
class LoaderResume:
    """Where a checkpoint left the training loader (rnnlab.run.resume.RunState saves it)."""

    epoch: int
    batches_done: int
    epoch_start: torch.Tensor | None  # generator state when the epoch's iteration began
    now: torch.Tensor | None  # generator state at the checkpoint


class SequenceDataModule(L.LightningDataModule):
    """Base class: subclasses build ``self.splits = {"train"|"val"|"test": Dataset}`` in setup()
    and describe themselves through :attr:`spec`."""

    def __init__(self, name: str, batch_size: int = 64, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.name = name
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be a positive integer, got {batch_size}")
        self.batch_size = batch_size
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0 (0: load in the main process), got "
                             f"{num_workers}")
        self.num_workers = num_workers
        self.seed = seed
        self.splits: dict[str, Dataset] = {}
        # Where the next training loader continues (set when a run resumes from a checkpoint).
        self.resume_state: LoaderResume | None = None

    @property
    def spec(self) -> DataSpec:  # pragma: no cover - abstract
        raise NotImplementedError

    def collate(self, examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return torch.utils.data.default_collate(examples)

    def _loader(self, split: str, shuffle: bool, loader_class=DataLoader, **options) -> DataLoader:
        if split not in self.splits:
            self.setup()
        if "batch_sampler" not in options:
            options.update(batch_size=self.batch_size, shuffle=shuffle,
                           generator=torch.Generator().manual_seed(self.seed))
        dataset, collate = self.splits[split], self.collate
        if isinstance(dataset, TensorDictDataset) and (
                type(self).collate is SequenceDataModule.collate):
            dataset = _WholeBatches(dataset)
            collate = dataset.collate
        return loader_class(dataset, num_workers=self.num_workers, collate_fn=collate,
                            persistent_workers=self.num_workers > 0, **options)

    def train_dataloader(self, **options) -> DataLoader:
        """The shuffled training batches (a :class:`ResumableLoader`); ``options`` replace the
        sampling (e.g. ``batch_sampler=``)."""
        loader = self._loader("train", shuffle=True, loader_class=ResumableLoader, **options)
        if self.resume_state is not None:
            loader.resume(self.resume_state, lambda: self.trainer.current_epoch)
            self.resume_state = None
        return loader

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
