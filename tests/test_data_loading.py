"""The training, validation and test loaders of datasets held as aligned tensors read a batch
at a time: the same batches, in the same order, as one dict per example and default_collate."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from rnnlab.data.base import SequenceDataModule, TensorDictDataset
from rnnlab.data.synthetic import AddingDataModule, CopyDataModule, ParityDataModule


@pytest.mark.parametrize("module", [AddingDataModule, CopyDataModule, ParityDataModule])
def test_whole_batches_are_the_default_collated_examples(module):
    dm = module(seq_len=12, train_size=200, val_size=70, test_size=30, batch_size=64, seed=3)
    dm.setup()
    for split, loader in (("train", dm.train_dataloader()), ("val", dm.val_dataloader()),
                          ("test", dm.test_dataloader())):
        assert loader.collate_fn is not default_collate
        reference = DataLoader(dm.splits[split], batch_size=64, shuffle=split == "train",
                               generator=torch.Generator().manual_seed(3))
        got, expected = list(loader), list(reference)
        assert len(got) == len(expected) == -(-len(dm.splits[split]) // 64)
        for a, b in zip(got, expected):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), (split, key)


def test_a_data_module_with_its_own_collate_gets_one_example_at_a_time():
    seen = []

    class Own(SequenceDataModule):
        def setup(self, stage=None):
            self.splits = {"train": TensorDictDataset(x=torch.arange(10.0).view(5, 2))}

        def collate(self, examples):
            seen.append(len(examples))
            return default_collate(examples)

    batches = list(Own("own", batch_size=2).train_dataloader())
    assert seen == [2, 2, 1] and sum(len(b["x"]) for b in batches) == 5
