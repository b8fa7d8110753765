"""GRU and its ablations (no reset gate, minimal gated unit), with a hand-written backward.

Notation: σ sigmoid, ⊙ elementwise product, gi = W_ih x_t + b_ih (W_ih x_t precomputed for all
t in one matmul; the biases are added in the step kernel), a_* pre-activations, δv = ∂L/∂v. Every variant is written as

    h' = n + z ⊙ (h − n)            (= (1 − z) ⊙ n + z ⊙ h)

with a reset gate r and a "keep" gate z that come from the sigmoid-gate vector g:

    variant="gru"       g = σ([a_r, a_z])   r = g_r,  z = g_z             weights 3H rows [r, z, n]
    variant="no_reset"  g = σ(a_z)          r ≡ 1,    z = g               weights 2H rows [z, n]
    variant="mgu"       g = σ(a_f)          r = f,    z = 1 − f           weights 2H rows [f, n]

(MGU, Zhou et al. 2016: h' = (1 − f) ⊙ h + f ⊙ n, one forget gate f serving as reset and update.)
In the backward pass δg collects δr and δz: gru δg = [δr, δz]; no_reset δg = δz; mgu δg = δr − δz;
then δa_g = δg ⊙ g ⊙ (1 − g).

reset="after" (torch.nn / cuDNN form, Cho et al. v1):

    gh   = W_hh h + b_hh                              (one 3H (2H) x H matmul per step)
    g    = σ(gi_g + gh_g)
    n    = tanh(gi_n + r ⊙ gh_n)
    h'   = n + z ⊙ (h − n)

  backward, given the total δh' = ∂L/∂h_t:

    δn   = δh' ⊙ (1 − z)         δz = δh' ⊙ (h − n)         δa_n = δn ⊙ (1 − n²)
    δr   = δa_n ⊙ gh_n           δa_g = δg ⊙ g ⊙ (1 − g)
    ∂L/∂gi = [δa_g, δa_n]        ∂L/∂gh = [δa_g, r ⊙ δa_n]
    δh   = δh' ⊙ z + ∂L/∂gh · W_hh
         i.e. ∂h'/∂h = diag(z) + diag((h−n)⊙z(1−z)) W_hz + diag((1−z)(1−n²)) (diag(r) W_hn
                       + diag(gh_n ⊙ r(1−r)) W_hr)        (gru; the others drop/merge terms)
    ∂L/∂W_hh = Σ_t (∂L/∂gh_t)ᵀ h_{t-1},   ∂L/∂b_hh = Σ_t ∂L/∂gh_t,   ∂L/∂b_ih = Σ_t ∂L/∂gi_t

reset="before" (Cho et al. 2014 v3; the MGU paper's form), the same parameters:

    g    = σ(gi_g + W_hg h + b_hg)
    u    = r ⊙ h
    n    = tanh(gi_n + W_hn u + b_hn)
    h'   = n + z ⊙ (h − n)

  backward:

    δz   = δh' ⊙ (h − n)         δa_n = δh' ⊙ (1 − z) ⊙ (1 − n²)
    δu   = δa_n · W_hn           δr = δu ⊙ h            δa_g = δg ⊙ g ⊙ (1 − g)
    ∂L/∂gi = ∂L/∂gh = [δa_g, δa_n]
    δh   = δh' ⊙ z + δu ⊙ r + δa_g · W_hg
    ∂L/∂W_hg = Σ_t δa_gᵀ h_{t-1},   ∂L/∂W_hn = Σ_t δa_nᵀ u_t,
    ∂L/∂b_ih = ∂L/∂b_hh = Σ_t [δa_g, δa_n]

With r ≡ 1 (no_reset) both placements are the same function; it always runs the "after" code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bptt import Recurrence, RecurrentBase, check_choice, outer_sum

VARIANTS = ("gru", "no_reset", "mgu")
RESETS = ("after", "before")


def _split(g: Tensor, variant: str):
    """Sigmoid-gate vector g -> (r, z); r is None when r ≡ 1."""
    if variant == "gru":
        r, z = g.chunk(2, 1)
        return r, z
    if variant == "no_reset":
        return None, g
    return g, 1 - g  # mgu: r = f, z = 1 - f


def _merge(dr: Tensor | None, dz: Tensor, variant: str) -> Tensor:
    """(δr, δz) -> δg."""
    if variant == "gru":
        return torch.cat([dr, dz], 1)
    if variant == "no_reset":
        return dz
    return dr - dz  # mgu


# ---- reset after --------------------------------------------------------------------------


def gru_after_step(gi, state, params, *, variant):
    (h,) = state
    w_hh, b_ih, b_hh = params
    k = w_hh.shape[0] - h.shape[1]  # rows of the sigmoid gates
    gi = gi + b_ih
    gh = h.mm(w_hh.t()) + b_hh
    g = torch.sigmoid(gi[:, :k] + gh[:, :k])
    r, z = _split(g, variant)
    gh_n = gh[:, k:].contiguous()  # saved: its own (B, H) tensor, not a view pinning all of gh
    n = torch.tanh(gi[:, k:] + (gh_n if r is None else r * gh_n))
    h_new = n + z * (h - n)
    return (h_new,), (g, n, gh_n)


def gru_after_step_backward(dstate, state_prev, state_new, saved, params, *, variant):
    (dh,) = dstate
    (h,) = state_prev
    g, n, gh_n = saved
    w_hh = params[0]
    r, z = _split(g, variant)
    dz = dh * (h - n)
    da_n = dh * (1 - z) * (1 - n * n)
    dr = None if r is None else da_n * gh_n
    da_g = _merge(dr, dz, variant) * g * (1 - g)
    dgi = torch.cat([da_g, da_n], 1)
    if r is None:
        dgh, extras = dgi, ()
    else:
        dgh_n = da_n * r
        dgh, extras = torch.cat([da_g, dgh_n], 1), (dgh_n,)
    dh_prev = torch.addmm(dh * z, dgh, w_hh)
    return (dh_prev,), dgi, extras


def gru_after_param_grads(ctx):
    db_ih = ctx.dgi.sum((0, 1))
    if not ctx.extras:  # no reset gate: dL/dgh = dL/dgi
        return ctx.outer_prev(ctx.dgi), db_ih, db_ih.clone()
    (dgh_n,) = ctx.extras
    k = ctx.dgi.shape[-1] - ctx.hidden_size
    dw = torch.cat([ctx.outer_prev(ctx.dgi[..., :k]), ctx.outer_prev(dgh_n)], 0)
    db_hh = torch.cat([db_ih[:k], dgh_n.sum((0, 1))])
    return dw, db_ih, db_hh


# ---- reset before -------------------------------------------------------------------------


def gru_before_step(gi, state, params, *, variant):
    (h,) = state
    w_hh, b_ih, b_hh = params
    k = w_hh.shape[0] - h.shape[1]
    gi = gi + b_ih + b_hh
    g = torch.sigmoid(gi[:, :k] + h.mm(w_hh[:k].t()))
    r, z = _split(g, variant)
    u = r * h
    n = torch.tanh(gi[:, k:] + u.mm(w_hh[k:].t()))
    h_new = n + z * (h - n)
    return (h_new,), (g, n, u)


def gru_before_step_backward(dstate, state_prev, state_new, saved, params, *, variant):
    (dh,) = dstate
    (h,) = state_prev
    g, n, _u = saved
    w_hh = params[0]
    k = w_hh.shape[0] - h.shape[1]
    r, z = _split(g, variant)
    dz = dh * (h - n)
    da_n = dh * (1 - z) * (1 - n * n)
    du = da_n.mm(w_hh[k:])
    da_g = _merge(du * h, dz, variant) * g * (1 - g)
    dgi = torch.cat([da_g, da_n], 1)
    dh_prev = torch.addmm(dh * z + du * r, da_g, w_hh[:k])
    return (dh_prev,), dgi, ()


def gru_before_param_grads(ctx):
    k = ctx.dgi.shape[-1] - ctx.hidden_size
    u = ctx.saved(2)
    dw = torch.cat(
        [ctx.outer_prev(ctx.dgi[..., :k]), outer_sum(ctx.dgi[..., k:], u)], 0
    )
    db = ctx.dgi.sum((0, 1))
    return dw, db, db.clone()


# ---- registry -----------------------------------------------------------------------------


def _recurrence(variant: str, reset: str) -> Recurrence:
    if reset == "after" or variant == "no_reset":
        step, backward, grads = gru_after_step, gru_after_step_backward, gru_after_param_grads
        reset = "after"
    else:
        step, backward, grads = gru_before_step, gru_before_step_backward, gru_before_param_grads
    return Recurrence(
        f"gru_{variant}_{reset}",
        lambda gi, s, p: step(gi, s, p, variant=variant),
        lambda ds, sp, sn, sv, p: backward(ds, sp, sn, sv, p, variant=variant),
        grads,
        lambda H: (H,),
    )


RECURRENCES = {(v, r): _recurrence(v, r) for v in VARIANTS for r in RESETS}


class GRU(RecurrentBase):
    """GRU with torch.nn.GRU's constructor, parameters and outputs, and our own BPTT.

    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    reset=None, variant="gru", record_grad_norms=True, compile=None, device=None, dtype=None)``;
    ``forward(input, hx=None, lengths=None) -> (output, h_n)``. Equations and their hand-derived
    derivatives: the module docstring of ``rnnlab.cells.gru``.

    * ``reset="after"`` (torch.nn/cuDNN) or ``"before"`` (Cho 2014 v3). ``None`` means "after"
      for ``gru``/``no_reset`` and "before" for ``mgu`` (the MGU paper's form).
    * ``variant="gru"``: parameters per layer ``weight_ih_l{k}`` (3H, I), ``weight_hh_l{k}``
      (3H, H), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (3H), rows [r, z, n] — torch.nn.GRU's
      layout, so its state dict loads (with reset="after" the outputs match too).
    * ``variant="no_reset"``: r ≡ 1: n = tanh(W_in x + b_in + W_hn h + b_hn). Weights (2H, I),
      (2H, H), biases (2H), rows [z, n].
    * ``variant="mgu"``: f = σ(W_if x + b_if + W_hf h + b_hf),
      n = tanh(W_in x + b_in + W_hn (f ⊙ h) + b_hn), h' = (1 − f) ⊙ h + f ⊙ n. Weights (2H, I),
      (2H, H), biases (2H), rows [f, n]. With reset="after": n = tanh(W_in x + b_in
      + f ⊙ (W_hn h + b_hn)).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        reset: str | None = None,
        variant: str = "gru",
        record_grad_norms: bool = True,
        compile: bool | None = None,
        device=None,
        dtype=None,
    ):
        check_choice("variant", variant, VARIANTS)
        if reset is not None:
            check_choice("reset", reset, RESETS)
        if bidirectional:
            raise ValueError("bidirectional must be False (the scratch cells are unidirectional)")
        self.variant = variant
        self.reset = reset if reset is not None else ("before" if variant == "mgu" else "after")
        rows = 3 if variant == "gru" else 2
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout,
            gate_size=rows * hidden_size, record_grad_norms=record_grad_norms, compile=compile,
            device=device, dtype=dtype,
        )

    @property
    def gate_names(self) -> tuple[str, ...]:
        """Gate blocks of weight_ih / weight_hh / biases, in row order."""
        return {"gru": ("r", "z", "n"), "no_reset": ("z", "n"), "mgu": ("f", "n")}[self.variant]

    def recurrence(self) -> Recurrence:
        return RECURRENCES[(self.variant, self.reset)]

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths: Tensor | None = None):
        output, (h_n,) = self._run(input, None if hx is None else (hx,), lengths)
        return output, h_n

    def extra_repr(self) -> str:
        return super().extra_repr() + f", reset={self.reset!r}, variant={self.variant!r}"
