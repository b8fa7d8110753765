"""The parity task (rnnlab.data.synthetic): running parity targets, fair coins given the input,
fresh and reproducible splits, and its chance baselines."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlab.data.synthetic import ParityDataModule, make_parity


def test_targets_are_the_running_parity_by_hand():
    batch = make_parity(500, 9, torch.Generator().manual_seed(0))
    x, y = batch["x"], batch["y"]
    assert x.shape == y.shape == (500, 9) and set(x.unique().tolist()) == {0, 1}
    for row in range(20):
        state = 0
        for t in range(9):
            state ^= int(x[row, t])
            assert int(y[row, t]) == state
    # each y_t is a fair coin given x_t alone: the memoryless guess is chance
    for t in range(1, 9):
        for bit in (0, 1):
            share = y[x[:, t] == bit, t].float().mean()
            assert abs(float(share) - 0.5) < 0.1
    again = make_parity(500, 9, torch.Generator().manual_seed(0))
    assert torch.equal(again["x"], x)


def test_splits_are_fresh_and_the_spec_is_chance():
    dm = ParityDataModule(seq_len=16, train_size=64, val_size=32, test_size=32, seed=3)
    dm.setup()
    train, val = dm.splits["train"][:]["x"], dm.splits["val"][:]["x"]
    assert train.shape == (64, 16) and not torch.equal(train[:32], val)
    spec = dm.spec
    assert spec.task_kind == "step_classification" and spec.vocab_size == 2
    assert spec.baselines == {"loss": pytest.approx(math.log(2)), "acc": 0.5}
    with pytest.raises(ValueError, match=r"data.seq_len .* must be >= 1"):
        ParityDataModule(seq_len=0, train_size=1, val_size=1, test_size=1)
