"""IndRNN (Li, Li, Cook, Zhu & Gao 2018, "Independently Recurrent Neural Network"), with a
hand-written backward.

Each unit recurs only onto itself: the recurrent weight is a vector u, not a matrix.

Forward, one step (gi = W_ih x_t precomputed for all t):

    a_t = gi_t + b_ih + u ⊙ h_{t-1} + b_hh
    h_t = relu(a_t)

Backward, given the total δh_t = ∂L/∂h_t:

    δa_t = δh_t ⊙ [h_t > 0]
    ∂L/∂gi_t = δa_t          δh_{t-1} (recurrent part) = δa_t ⊙ u
    ∂L/∂u = Σ_{t,b} δa_t ⊙ h_{t-1},   ∂L/∂b_ih = ∂L/∂b_hh = Σ_t δa_t

So ∂h_t/∂h_{t−k} = Π diag(u ⊙ [h > 0]): a unit's gradient over k steps is u^k while it is
active. The paper bounds |u| ≤ γ^{1/T} (γ = 2, their ``MAG``) so that it can neither vanish nor
explode by more than γ over the sequence: ``recurrent_max`` (default 2^{1/T} with T the length of
the batch) is enforced by projecting u onto [−max, max] before every training forward, i.e.
projected gradient descent as in the paper, for any training loop. u starts U(0, 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import RecurrentBase
from .recurrence import Recurrence


def indrnn_step(gi: Tensor, state, params):
    (h,) = state
    u, b_ih, b_hh = params
    return (torch.relu(gi + b_ih + u * h + b_hh),), ()


def indrnn_step_backward(dstate, state_prev, state_new, saved, params):
    (dh,) = dstate
    (h_new,) = state_new
    da = torch.where(h_new > 0, dh, torch.zeros_like(dh))
    return (da * params[0],), da, ()


def indrnn_param_grads(ctx):
    db = ctx.dgi.sum((0, 1))
    return (ctx.dgi * ctx.state_prev(0)).sum((0, 1)), db, db.clone()


# native_loops.cpp computes indrnn_step / indrnn_step_backward over the loop
RECURRENCE = Recurrence("indrnn", indrnn_step, indrnn_step_backward, indrnn_param_grads,
                        lambda H: (H,), native="indrnn")
MAG = 2.0  # γ of Li et al. 2018: the largest gradient growth allowed over a sequence


class IndRNN(RecurrentBase):
    """IndRNN with the classic cells' interface: ``IndRNN(input_size, hidden_size, num_layers=1,
    bias=True, batch_first=False, dropout=0.0, recurrent_max=None, record_grad_norms=True,
    compile=None, device=None, dtype=None)``; ``forward(input, hx=None, lengths=None) ->
    (output, h_n)``.

    Parameters per layer: ``weight_ih_l{k}`` (H, I or H), ``weight_hh_l{k}`` (H): the recurrent
    vector u, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (H). ``recurrent_max``: the bound on |u|
    (``None``: 2^{1/T} for each batch of length T). Equations: module docstring.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, *,
                 recurrent_max: float | None = None, record_grad_norms: bool = True,
                 compile: bool | None = None, device=None, dtype=None):
        if recurrent_max is not None and (isinstance(recurrent_max, bool)
                                          or not isinstance(recurrent_max, (int, float))
                                          or not recurrent_max > 0):
            raise ValueError(f"recurrent_max must be a number > 0 or None; got {recurrent_max!r}")
        self.recurrent_max = recurrent_max
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         gate_size=hidden_size, record_grad_norms=record_grad_norms,
                         compile=compile, device=device, dtype=dtype)

    def recurrent_weight_shape(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def reset_parameters(self) -> None:
        """W_ih and the biases uniform(−1/√H, 1/√H) like torch.nn; u uniform(0, 1)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            if name.startswith("weight_hh"):
                nn.init.uniform_(p, 0.0, 1.0)
            else:
                nn.init.uniform_(p, -bound, bound)

    def recurrence(self) -> Recurrence:
        return RECURRENCE

    def bound(self, steps: int) -> float:
        """The |u| bound for sequences of ``steps`` steps."""
        if self.recurrent_max is not None:
            return float(self.recurrent_max)
        return MAG ** (1.0 / max(steps, 1))

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths: Tensor | None = None):
        if self.training and torch.is_grad_enabled():
            steps = input.shape[1 if self.batch_first and input.dim() == 3 else 0]
            limit = self.bound(steps)
            for layer in range(self.num_layers):
                # through .data: the projection is not part of the graph, and it leaves the
                # version counter alone, so a graph built by an earlier forward (values
                # unchanged: no optimizer step in between) still backpropagates
                getattr(self, f"weight_hh_l{layer}").data.clamp_(-limit, limit)
        output, (h_n,) = self._run(input, None if hx is None else (hx,), lengths)
        return output, h_n

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.recurrent_max is None else s + f", recurrent_max={self.recurrent_max}"
