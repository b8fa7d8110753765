"""Elman RNN (tanh or ReLU), torch.nn.RNN's equations with a hand-written backward.

Forward, one step (gi = W_ih x_t precomputed for all t):

    a_t = gi_t + b_ih + W_hh h_{t-1} + b_hh
    h_t = φ(a_t)                         φ = tanh or relu

Backward, given the total δh_t = ∂L/∂h_t (output gradient at t + recurrence from t+1):

    δa_t     = δh_t ⊙ φ'(a_t)            tanh: 1 − h_t²      relu: [h_t > 0]
    ∂L/∂gi_t = δa_t
    ∂h_t/∂h_{t-1} = diag(φ'(a_t)) W_hh   so   δh_{t-1} (recurrent part) = δa_t W_hh
    ∂L/∂W_hh = Σ_t δa_tᵀ h_{t-1},  ∂L/∂b_ih = ∂L/∂b_hh = Σ_t δa_t
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config.errors import check_choice
from .base import RecurrentBase
from .recurrence import Recurrence

NONLINEARITIES = ("tanh", "relu")


def rnn_step(gi: Tensor, state, params, *, relu: bool):
    (h,) = state
    w_hh, b_ih, b_hh = params
    a = gi + b_ih + h.mm(w_hh.t()) + b_hh
    h_new = torch.relu(a) if relu else torch.tanh(a)
    return (h_new,), ()


def rnn_step_backward(dstate, state_prev, state_new, saved, params, *, relu: bool):
    (dh,) = dstate
    (h_new,) = state_new
    w_hh = params[0]
    if relu:
        da = torch.where(h_new > 0, dh, torch.zeros_like(dh))
    else:
        da = dh * (1 - h_new * h_new)
    dh_prev = da.mm(w_hh)
    return (dh_prev,), da, ()


def rnn_param_grads(ctx):
    db = ctx.dgi.sum((0, 1))
    return ctx.outer_prev(ctx.dgi), db, db.clone()


def _recurrence(relu: bool) -> Recurrence:
    name = "rnn_relu" if relu else "rnn_tanh"

    def step(gi, state, params):
        return rnn_step(gi, state, params, relu=relu)

    def step_backward(dstate, state_prev, state_new, saved, params):
        return rnn_step_backward(dstate, state_prev, state_new, saved, params, relu=relu)

    # native_loops.cpp computes rnn_step / rnn_step_backward over the loop
    return Recurrence(name, step, step_backward, rnn_param_grads, lambda H: (H,), native=name)


RECURRENCES = {"tanh": _recurrence(False), "relu": _recurrence(True)}


class RNN(RecurrentBase):
    """Elman RNN with torch.nn.RNN's constructor, parameters and outputs, and our own BPTT.

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity="tanh"|"relu", bias=True,
    batch_first=False, dropout=0.0, record_grad_norms=True, compile=None, device=None,
    dtype=None)``; ``forward(input, hx=None, lengths=None) -> (output, h_n)``.

    Parameters per layer: ``weight_ih_l{k}`` (H, I or H), ``weight_hh_l{k}`` (H, H),
    ``bias_ih_l{k}`` (H), ``bias_hh_l{k}`` (H). Equations and their derivative: see the module
    docstring of ``rnnlab.cells.rnn``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        *,
        record_grad_norms: bool = True,
        compile: bool | None = None,
        device=None,
        dtype=None,
    ):
        check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout,
            gate_size=hidden_size, record_grad_norms=record_grad_norms, compile=compile,
            device=device, dtype=dtype,
        )

    def recurrence(self) -> Recurrence:
        return RECURRENCES[self.nonlinearity]

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths: Tensor | None = None):
        output, (h_n,) = self._run(input, None if hx is None else (hx,), lengths)
        return output, h_n

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"
