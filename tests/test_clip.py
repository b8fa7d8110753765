"""trainer.gradient_clip_val: a value <= 0 (which Lightning silently ignores) is refused in one
line, null turns clipping off, and gradflow/clip_fraction counts the steps whose gradients the
clipping actually changed (rnnlab.gradflow.clipping)."""

from __future__ import annotations

import pytest
import torch

from rnnlab.config.composition import command_line_error
from rnnlab.config.configdir import CONFIG_DIR, CONFIG_NAME
from rnnlab.gradflow.clipping import ClipCounter


@pytest.mark.parametrize("value", ["0", "-1", "0.0"])
def test_a_clip_value_at_or_below_zero_is_refused_in_one_line(value):
    reason = command_line_error([f"trainer.gradient_clip_val={value}"], CONFIG_DIR, CONFIG_NAME)
    assert reason == (f"trainer.gradient_clip_val must be > 0 (null turns clipping off), got "
                      f"{float(value)}")


def test_null_and_positive_clip_values_compose():
    for value in ("null", "0.5"):
        assert command_line_error([f"trainer.gradient_clip_val={value}"], CONFIG_DIR,
                                  CONFIG_NAME) is None


def test_the_python_api_refuses_it_too(run_training):
    with pytest.raises(SystemExit) as exit_info:
        run_training(["debug=fast", "trainer.gradient_clip_val=-1"])
    assert exit_info.value.code == 2


def _changed_by(clip, algorithm, grads):
    """Whether Lightning's clipping (torch's clip_grad_*_) changes these gradients."""
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    if algorithm == "norm":
        torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        torch.nn.utils.clip_grad_value_(params, clip)
    return any(not torch.equal(p.grad, g) for p, g in zip(params, grads))


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_the_fraction_counts_the_steps_whose_gradients_clipping_changed(algorithm):
    torch.manual_seed(0)
    base = [torch.randn(5, 3), torch.randn(7)]
    size = float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in base]),
                                          2 if algorithm == "norm" else float("inf")))
    clip = 1.0
    # steps at, just below and just above the clip value, and far on either side
    steps = [[g * (clip * scale / size) for g in base]
             for scale in (0.5, 1.0 - 1e-3, 1.0, 1.0 + 1e-7, 1.0 + 1e-3, 3.0)]
    counter = ClipCounter()
    for grads in steps:
        counter.track(grads, algorithm)
    fired, total = counter.count(clip, algorithm)
    assert total == len(steps)
    assert fired == sum(_changed_by(clip, algorithm, grads) for grads in steps)
    assert 0 < fired < total

    # a clip value Lightning does not apply clips nothing: the fraction is 0, never 1
    for value in (0.0, -1.0, None):
        for grads in steps:
            counter.track(grads, algorithm)
        assert counter.count(value, algorithm) == (0, len(steps))
