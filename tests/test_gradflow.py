"""Gradient-flow monitor: the analytic linear recurrence through the real callback, the summaries,
the fixed probe's hygiene, the DDP reduction."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from rnnlab.data.base import DataSpec, TensorDictDataset
from rnnlab.gradflow import (
    DH,
    DX,
    GradientFlowMonitor,
    batch_stats,
    curve_summaries,
    fixed_probe,
    load_gradflow,
)
from rnnlab.gradflow.stats import FLOOR
from rnnlab.model.models import SequenceModel
from rnnlab.model.task import SequenceTask

T, H, B = 30, 4, 8


def linear_model(a: float, impl: str) -> SequenceModel:
    """h_t = a h_{t-1} + x_t exactly: ReLU RNN with W_ih = I, W_hh = a I, no biases, and x > 0
    (so h > 0 and the ReLU is the identity, no tanh anywhere)."""
    spec = DataSpec("last_regression", output_size=1, input_size=H)
    model = SequenceModel(spec, cell="rnn", impl=impl, hidden_size=H, nonlinearity="relu",
                          encoder="identity")
    with torch.no_grad():
        model.rnn.weight_ih_l0.copy_(torch.eye(H))
        model.rnn.weight_hh_l0.copy_(a * torch.eye(H))
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
    return model


def linear_data(n: int, seed: int = 0) -> TensorDictDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDictDataset(x=0.5 + torch.rand(n, T, H, generator=g),
                             y=torch.randn(n, 1, generator=g))


def fit_with_monitor(model, probe: str, steps: int = 3, tmp_path=None, **monitor_options):
    """A real Trainer run (lr = 0, so the weights and the analytic answer stay put)."""
    task = SequenceTask(model, partial(torch.optim.SGD, lr=0.0))
    data = L.LightningDataModule.from_datasets(train_dataset=linear_data(64, 0),
                                               val_dataset=linear_data(16, 1), batch_size=B)
    monitor = GradientFlowMonitor(every_n_steps=1, probe=probe, output_dir=str(tmp_path),
                                  **monitor_options)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, accelerator="cpu", devices=1, callbacks=[monitor])
    trainer.fit(task, datamodule=data)
    return monitor, trainer


@pytest.mark.filterwarnings("ignore:'pin_memory' argument")
@pytest.mark.parametrize("a", [0.8, 1.1])
@pytest.mark.parametrize("probe", ["train", "fixed"])
@pytest.mark.parametrize("impl", ["scratch", "fused"])
def test_linear_recurrence_matches_analytic_curve(a, probe, impl, tmp_path):
    """||dL/dh_t|| = |a|^(T-t) ||dL/dh_T||; with W_ih = I and ReLU' = 1, dL/dx_t is the same."""
    monitor, trainer = fit_with_monitor(linear_model(a, impl), probe, tmp_path=tmp_path)
    expected_steps = [0, 1, 2] + ([3] if probe == "fixed" else [])  # fixed: also at the end
    assert [r["step"] for r in monitor.records] == expected_steps
    assert monitor.quantity == (DH if impl == "scratch" else DX)
    analytic = a ** (T - np.arange(1, T + 1, dtype=np.float64))
    for record in monitor.records:
        mean, p10, p90 = record["stats"][:, 0]
        for curve in (mean, p10, p90):
            np.testing.assert_allclose(curve / curve[-1], analytic, rtol=2e-5)
        assert np.all(p10 <= mean) and np.all(mean <= p90)
        s = record["summaries"]["layer0"]
        assert s["log10_first_over_last"] == pytest.approx((T - 1) * math.log10(a), abs=1e-4)
        assert s["log10_decay_per_step"] == pytest.approx(-math.log10(a), rel=1e-4)
        # steps back from the loss with norm >= 1% of the peak
        horizon = min(T, math.floor(math.log(0.01) / math.log(a)) + 1) if a < 1 else T
        assert s["horizon"] == horizon
    # gradflow.npz holds the same records
    saved = load_gradflow(tmp_path)
    assert saved["quantity"] == monitor.quantity and saved["layers"] == ["layer0"]
    assert saved["mean"].shape == (len(expected_steps), 1, T)
    assert list(saved["steps"]) == expected_steps
    np.testing.assert_allclose(saved["mean"][0, 0] / saved["mean"][0, 0, -1], analytic, rtol=2e-5)
    # the model is left disarmed, the cells record as configured
    model = trainer.lightning_module.model
    assert not model._flow_watch and model.gradient_flow_input is None


def test_fixed_probe_remeasures_an_exploding_curve():
    """a = 2.5: the norm grows 2.5^29 ~ 3e11 going back, past the first scale's headroom."""
    model = linear_model(2.5, "scratch")
    batch = {k: v[:B] for k, v in linear_data(B).tensors.items()}
    flows, scale = fixed_probe(model, batch)
    assert scale < 1.0  # the second attempt
    mean = batch_stats(flows["layer0"].double() / scale)[0].double().numpy()
    analytic = 2.5 ** (T - np.arange(1, T + 1, dtype=np.float64))
    np.testing.assert_allclose(mean / mean[-1], analytic, rtol=1e-4)


def test_summaries_definitions():
    m = np.array([1e-6, 1e-4, 1e-2, 1.0, np.nan])  # a padded last step is skipped
    s = curve_summaries(m, fraction=0.01)
    assert s["log10_first_over_last"] == pytest.approx(-6.0)
    assert s["log10_decay_per_step"] == pytest.approx(2.0)
    assert s["horizon"] == 2  # t = 3, 4 are >= 1% of the peak
    bump = curve_summaries(np.array([1.0, 1e-9, 1.0, 1.0]))  # a dip does not cut the horizon
    assert bump["horizon"] == 4
    underflow = curve_summaries(np.array([0.0, 1.0]))
    assert underflow["log10_first_over_last"] == pytest.approx(math.log10(FLOOR))
    assert all(math.isnan(v) for v in curve_summaries(np.full(3, np.nan)).values())


def test_batch_stats_leave_padding_out():
    norms = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [5.0, 0.0, 0.0]])  # (T=3, B=3)
    stats = batch_stats(norms, lengths=torch.tensor([3, 1, 1]))
    assert stats.shape == (3, 3)
    torch.testing.assert_close(stats[0], torch.tensor([2.0, 4.0, 5.0]))
    assert stats[1, 0] == pytest.approx(1.2) and stats[2, 0] == pytest.approx(2.8)  # p10, p90
    all_padded = batch_stats(norms, lengths=torch.tensor([2, 1, 1]))
    assert torch.isnan(all_padded[:, 2]).all()


def _dropout_model() -> SequenceModel:
    spec = DataSpec("step_classification", output_size=5, vocab_size=5)
    torch.manual_seed(0)
    return SequenceModel(spec, cell="gru", impl="scratch", hidden_size=8, num_layers=2,
                         dropout=0.5)


def test_fixed_probe_leaves_training_state_untouched():
    model = _dropout_model()
    x = torch.randint(0, 5, (6, 12))
    batch = {"x": x, "y": torch.randint(0, 5, (6, 12))}
    model(x).sum().backward()  # some training gradients are there
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.head.eval()  # a submodule in its own mode must come back so
    rng = torch.get_rng_state()
    flows, scale = fixed_probe(model, batch)
    assert set(flows) == {"layer0", "layer1"} and flows["layer0"].shape == (12, 6)
    assert scale > 0 and math.log2(scale) == int(math.log2(scale))  # divided out exactly
    assert torch.equal(torch.get_rng_state(), rng)
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, grads[name]), name
    assert model.training and model.rnn.training and not model.head.training
    assert not model._flow_watch and model.gradient_flow_input is None
    again, _ = fixed_probe(model, batch)  # eval mode inside: no dropout, the same numbers
    torch.testing.assert_close(again["layer0"], flows["layer0"])


def test_fixed_probe_scale_avoids_float32_underflow():
    """Unscaled float32 norms underflow below ~1e-19 (the square); the probe's power-of-two
    loss scale recovers what float64 sees."""
    spec = DataSpec("last_regression", output_size=1, input_size=10)
    torch.manual_seed(0)
    model = SequenceModel(spec, cell="rnn", impl="scratch", hidden_size=128)
    g = torch.Generator().manual_seed(1)
    batch = {"x": torch.randn(16, 100, 10, generator=g), "y": torch.randn(16, 1, generator=g)}
    flows, scale = fixed_probe(model, batch)
    ours = batch_stats(flows["layer0"].double() / scale)[0].double()
    model64 = model.double()
    batch64 = {k: v.double() for k, v in batch.items()}
    flows64, scale64 = fixed_probe(model64, batch64)
    reference = batch_stats(flows64["layer0"].double() / scale64)[0].double()
    assert reference[0] / reference[-1] < 1e-20  # deep in the range plain float32 loses
    torch.testing.assert_close(ours, reference, rtol=1e-3, atol=0)


def test_monitor_arguments_are_checked():
    with pytest.raises(ValueError, match="every_n_steps"):
        GradientFlowMonitor(every_n_steps=0)
    with pytest.raises(ValueError, match="probe"):
        GradientFlowMonitor(probe="val")
    with pytest.raises(ValueError, match="horizon_fraction"):
        GradientFlowMonitor(horizon_fraction=1.5)


def test_ddp_reduction_is_a_nan_aware_mean_over_ranks():
    """Rank 0's view: its own (3, L, T=2) stats and another rank's with T=3 (ragged batches)."""
    mine = torch.tensor([[[1.0, 2.0]], [[0.5, 1.0]], [[2.0, 3.0]]])
    other = torch.tensor([[[3.0, 4.0, 6.0]], [[1.5, 2.0, 3.0]], [[4.0, 5.0, 7.0]]])

    def all_gather(tensor):
        if tensor.dim() == 1:
            return torch.stack([tensor, torch.tensor([3])])
        return torch.stack([tensor, other])

    trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(all_gather=all_gather))
    reduced = GradientFlowMonitor._reduce(trainer, mine)
    expected = torch.tensor([[[2.0, 3.0, 6.0]], [[1.0, 1.5, 3.0]], [[3.0, 4.0, 7.0]]])
    torch.testing.assert_close(reduced, expected)


def test_plot_labels_name_their_own_folder_when_one_has_no_records(tmp_path, monkeypatch):
    """A folder without records is skipped; the labels of the others still name their folder."""
    from rnnlab.commands import plot_gradflow as cli

    for name in ("a_empty", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gradflow.npz").touch()
    monkeypatch.setattr(cli, "load_gradflow", lambda d: {
        "steps": np.arange(0 if Path(d).name == "a_empty" else 2), "cell": "lstm"})
    drawn = {}
    monkeypatch.setattr(cli, "curves_figure", lambda runs, *a, **k: drawn.setdefault("runs", runs)
                        and _NoFigure())
    monkeypatch.setattr(cli, "heatmaps_figure", lambda runs, *a, **k: _NoFigure())
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert [label for label, _ in drawn["runs"]] == ["lstm [b]", "lstm [c]"]


class _NoFigure:
    def savefig(self, path, **kwargs):
        Path(path).touch()
