"""Selective copy (Gu & Dao 2023): the generator's properties, the loss and accuracy over the
recalled tokens only, a fast dev run of every new cell (and the layer-norm / zoneout options)
through the real config tree with gradient flow recorded, and a short learning test."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rnnlab.data.synthetic import SelectiveCopyDataModule, make_selective_copy


def test_the_generator_scatters_k_tokens_in_order_and_asks_for_them_back():
    g = torch.Generator().manual_seed(0)
    T, K, V = 30, 5, 6
    batch = make_selective_copy(200, T, g, num_symbols=V, copy_length=K)
    x, y, scored, counted = batch["x"], batch["y"], batch["score_mask"], batch["loss_mask"]
    assert x.shape == y.shape == (200, T + K)
    body = x[:, :T]
    assert ((body > 0).sum(1) == K).all(), "exactly K data tokens among the T noise steps"
    assert ((body >= 0) & (body <= V)).all() and (x[:, T:] == V + 1).all()
    for row in range(200):
        tokens = body[row][body[row] > 0]  # in the order they appear
        assert torch.equal(y[row, T:], tokens)
    assert (y[:, :T] == 0).all()
    assert scored[:, T:].all() and not scored[:, :T].any() and torch.equal(scored, counted)
    # positions spread over the whole noise region, tokens over the whole alphabet
    positions = torch.nonzero(body > 0)[:, 1]
    assert positions.min() == 0 and positions.max() == T - 1
    assert set(body[body > 0].unique().tolist()) == set(range(1, V + 1))
    again = make_selective_copy(200, T, torch.Generator().manual_seed(0), V, K)
    assert torch.equal(again["x"], x), "reproducible from the seed"


def test_the_memoryless_baseline_is_a_uniform_guess_over_the_alphabet():
    spec = SelectiveCopyDataModule(seed=0, seq_len=20, num_symbols=6, copy_length=3,
                                   train_size=8, val_size=8, test_size=8).spec
    assert spec.vocab_size == 8 and spec.output_size == 7
    assert spec.baselines == {"loss": pytest.approx(math.log(6)), "acc": pytest.approx(1 / 6)}
    # a uniform guess over the V tokens at the recall steps scores exactly that loss
    logits = torch.full((4, 7), -1e9)
    logits[:, 1:] = 0.0
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 2, 3, 6]))
    assert float(loss) == pytest.approx(math.log(6))


@pytest.mark.parametrize(("seq_len", "copy_length", "num_symbols", "message"), [
    (3, 4, 8, "data.seq_len (the noise length T) must be >= data.copy_length=4"),
    (10, 0, 8, "data.copy_length must be >= 1"),
    (10, 2, 1, "data.num_symbols must be >= 2"),
])
def test_bad_sizes_are_refused(seq_len, copy_length, num_symbols, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SelectiveCopyDataModule(seed=0, seq_len=seq_len, copy_length=copy_length,
                                num_symbols=num_symbols, train_size=8, val_size=8, test_size=8)


CELLS = [
    ["model=mingru"],
    ["model=minlstm", "model.mode=log"],
    ["model=indrnn"],
    ["model=gru", "model.layer_norm=true", "model.zoneout=0.1"],
    ["model=lstm", "model.layer_norm=true", "model.zoneout=0.1", "model.variant=vanilla"],
]


@pytest.mark.parametrize("cell", CELLS, ids=["-".join(c).replace("model.", "") for c in CELLS])
def test_fast_dev_run_of_every_new_cell_records_the_gradient_flow(cell, run_training):
    overrides = [*cell, "data=selective_copy", "debug=fast", "logger=csv", "model.num_layers=2",
                 "model.hidden_size=8", "callbacks.gradflow.every_n_steps=1"]
    try:
        results, run_dir = run_training(overrides)
    except SystemExit as error:
        pytest.fail(f"rnnlab-train {' '.join(overrides)} exited {error.code}")
    assert results["status"] == "completed", results.get("error")
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert {"test/loss", "test/acc", "baseline/loss", "baseline/acc"} <= set(on_disk["metrics"])
    flow = np.load(run_dir / "gradflow.npz")
    assert flow["quantity"] == "dL/dh_t" and list(flow["layers"]) == ["layer0", "layer1"]
    norms = flow["mean"]  # (records, layers, T + K): one norm per step of every layer
    assert norms.shape[1:] == (2, 64 + 4)
    assert np.isfinite(norms).all() and (norms > 0).all()


def test_mingru_learns_a_small_selective_copy(run_training):
    """A 2-layer minGRU with a few thousand parameters beats the memoryless guess (acc 1/4)."""
    torch.manual_seed(0)
    results, _ = run_training([
        "model=mingru", "data=selective_copy", "data.seq_len=12", "data.copy_length=2",
        "data.num_symbols=4", "data.train_size=4000", "data.val_size=256", "data.test_size=256",
        "data.batch_size=32", "model.num_layers=2", "model.hidden_size=32", "optimizer.lr=0.01",
        "trainer.max_epochs=4", "trainer.enable_progress_bar=false", "logger=csv",
        "callbacks.gradflow=null", "seed=0"])
    assert results["status"] == "completed", results.get("error")
    metrics = results["metrics"]
    assert metrics["test/acc"] > 0.6, metrics  # the memoryless baseline scores 0.25
    assert metrics["test/loss"] < 0.75 * math.log(4), metrics
