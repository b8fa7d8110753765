"""GRU and its ablations (no reset gate, minimal gated unit), with a hand-written backward.

Notation: σ sigmoid, ⊙ elementwise product, gi = W_ih x_t + b_ih (W_ih x_t precomputed for all
t in one matmul; the biases are added in the step kernel), a_* pre-activations, δv = ∂L/∂v.
Every variant is written as

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

Layer normalisation (``layer_norm=True``; Ba et al. 2016, haste's LayerNormGRU). For a row vector
y of width N:  μ = mean(y),  ρ = 1/√(mean((y − μ)²) + ε),  ŷ = N(y) = (y − μ) ρ  (ε = 1e-5 and
the biased variance, as torch.nn.LayerNorm and haste). The input and the recurrent projection are
normalised separately, each with its own gain, *before* the biases, which act as the
normalisations' shifts (β_ih = b_ih, β_hh = b_hh: a separate β would only duplicate them; they
start at 0, the gains γ_ih, γ_hh at 1). As in haste, a projection is normalised over the whole
gate vector (3H, or 2H: all gate blocks together, not block by block):

    gi = N(W_ih x_t) ⊙ γ_ih          (all t at once, outside the time loop; autograd)
    after:   gh = N(W_hh h) ⊙ γ_hh + b_hh,   the rest as above (haste's LayerNormGRU)
    before:  (haste has no such GRU) the candidate's recurrent input W_hn u needs r, hence the
             gate rows' normalised input first, so the recurrent projection is normalised in two
             parts, the gate rows g and the candidate rows n, each with its slice of γ_hh:
             g = σ(gi_g + b_ig + b_hg + N(W_hg h) ⊙ γ_hg)
             n = tanh(gi_n + b_in + b_hn + N(W_hn u) ⊙ γ_hn)

  backward of ŷ = N(y) (the means run over the row): ∂ŷ_j/∂y_k = ρ (δ_jk − 1/N − ŷ_j ŷ_k / N), so

    δy = N'(δŷ) := ρ ⊙ (δŷ − mean(δŷ) − ŷ ⊙ mean(δŷ ⊙ ŷ))

  after:  δy = N'(∂L/∂gh ⊙ γ_hh),   δh = δh' ⊙ z + δy · W_hh          (instead of ∂L/∂gh · W_hh)
          ∂L/∂W_hh = Σ_t δy_tᵀ h_{t-1},  ∂L/∂γ_hh = Σ_t ∂L/∂gh_t ⊙ ŷ_t,  ∂L/∂b_hh = Σ_t ∂L/∂gh_t
          (∂L/∂gh, ∂L/∂gi, δa_* as above, with gh_n = ŷ_n ⊙ γ_hn + b_hn)
  before: δy_n = N'(δa_n ⊙ γ_hn),  δu = δy_n · W_hn  (then δr = δu ⊙ h as before),
          δy_g = N'(δa_g ⊙ γ_hg),  δh = δh' ⊙ z + δu ⊙ r + δy_g · W_hg
          ∂L/∂W_hg = Σ_t δy_gᵀ h_{t-1},  ∂L/∂W_hn = Σ_t δy_nᵀ u_t,
          ∂L/∂γ_hh = Σ_t [δa_g ⊙ ŷ_g, δa_n ⊙ ŷ_n],  biases as above

Zoneout (``zoneout=p``; Krueger et al. 2017): with h̃ the new state computed above,

    h_t = d_t ⊙ h_{t-1} + (1 − d_t) ⊙ h̃_t     training: d_t ~ Bernoulli(p) per (t, b, unit);
                                               eval: d_t ≡ p (the expectation)

  backward: the step above gets δh̃ = (1 − d_t) ⊙ δh_t in place of δh', and
  δh_{t-1} gains the direct term d_t ⊙ δh_t. δh_t is the total ∂L/∂h_t (what is recorded).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config.errors import check_choice
from .base import RecurrentBase
from .norm_zoneout import NormZoneoutMixin, normalize, normalize_backward
from .projection import outer_sum
from .recurrence import Recurrence

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


def _gates(variant: str):
    """saved -> the step's gates: r and z (z keeps: h_t = z h_{t−1} + (1 − z) n), or MGU's f
    (h_t = (1 − f) h_{t−1} + f n); "keep" = z, "reset" = what multiplies h_{t−1} inside n (r,
    MGU's f, 1 for no_reset). saved[0] is the sigmoid gate vector."""

    def gates(saved):
        r, z = _split(saved[0], variant)
        named = {"f": r} if variant == "mgu" else {"z": z} if r is None else {"r": r, "z": z}
        return {**named, "keep": z, "reset": torch.ones_like(z) if r is None else r}

    return gates


def _zoneout(d: Tensor, prev: Tensor, new: Tensor) -> Tensor:
    # d·prev + (1 − d)·new rather than new + d·(prev − new): exact for a 0/1 mask (the unit keeps
    # its previous value bit for bit; d = 0 gives exactly the plain cell's state)
    return d * prev + (1 - d) * new


# ---- reset after --------------------------------------------------------------------------


def gru_after_step(gi, state, params, *zoneout, variant, layer_norm=False):
    (h,) = state
    w_hh, b_ih, b_hh = params[:3]
    k = w_hh.shape[0] - h.shape[1]  # rows of the sigmoid gates
    gi = gi + b_ih
    if layer_norm:
        yhat, rho = normalize(h.mm(w_hh.t()))
        gh = yhat * params[3] + b_hh
    else:
        gh = h.mm(w_hh.t()) + b_hh
    g = torch.sigmoid(gi[:, :k] + gh[:, :k])
    r, z = _split(g, variant)
    gh_n = gh[:, k:].contiguous()  # saved: its own (B, H) tensor, not a view pinning all of gh
    n = torch.tanh(gi[:, k:] + (gh_n if r is None else r * gh_n))
    h_new = n + z * (h - n)
    # with layer norm gh_n is recomputed from ŷ in the backward step instead of being saved
    saved = (g, n, yhat, rho) if layer_norm else (g, n, gh_n)
    if zoneout:
        h_new = _zoneout(zoneout[0], h, h_new)
    return (h_new,), saved


def gru_after_step_backward(
    dstate, state_prev, state_new, saved, params, *zoneout, variant, layer_norm=False
):
    (dh,) = dstate
    (h,) = state_prev
    w_hh = params[0]
    if layer_norm:
        g, n, yhat, rho = saved
        k = g.shape[1]
        gh_n = yhat[:, k:] * params[3][k:] + params[2][k:]
    else:
        g, n, gh_n = saved
    if zoneout:  # δh (total at h_t) -> δh̃; the direct term d ⊙ δh is added to δh_{t-1} below
        d = zoneout[0]
        dh_out, dh = dh, dh * (1 - d)
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
    direct = dh * z if not zoneout else dh * z + dh_out * d
    if layer_norm:  # through gh = N(W_hh h) ⊙ γ_hh + b_hh
        dy = normalize_backward(dgh * params[3], yhat, rho)
        dh_prev = torch.addmm(direct, dy, w_hh)
        return (dh_prev,), dgi, (dy, (dgh * yhat).sum(0), dgh.sum(0))
    dh_prev = torch.addmm(direct, dgh, w_hh)
    return (dh_prev,), dgi, extras


def gru_after_ln_param_grads(ctx):
    dy, dgamma, db_hh = ctx.extras  # dL/d(W_hh h) per step; batch sums for γ_hh and b_hh
    return ctx.outer_prev(dy), ctx.dgi.sum((0, 1)), db_hh.sum(0), dgamma.sum(0)


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


def gru_before_step(gi, state, params, *zoneout, variant, layer_norm=False):
    (h,) = state
    w_hh, b_ih, b_hh = params[:3]
    k = w_hh.shape[0] - h.shape[1]
    gi = gi + b_ih + b_hh
    if layer_norm:
        gamma = params[3]
        yhat_g, rho_g = normalize(h.mm(w_hh[:k].t()))
        g = torch.sigmoid(gi[:, :k] + yhat_g * gamma[:k])
    else:
        g = torch.sigmoid(gi[:, :k] + h.mm(w_hh[:k].t()))
    r, z = _split(g, variant)
    u = r * h
    if layer_norm:
        yhat_n, rho_n = normalize(u.mm(w_hh[k:].t()))
        n = torch.tanh(gi[:, k:] + yhat_n * gamma[k:])
        saved = (g, n, u, yhat_g, rho_g, yhat_n, rho_n)
    else:
        n = torch.tanh(gi[:, k:] + u.mm(w_hh[k:].t()))
        saved = (g, n, u)
    h_new = n + z * (h - n)
    if zoneout:
        h_new = _zoneout(zoneout[0], h, h_new)
    return (h_new,), saved


def gru_before_step_backward(
    dstate, state_prev, state_new, saved, params, *zoneout, variant, layer_norm=False
):
    (dh,) = dstate
    (h,) = state_prev
    g, n, _u = saved[:3]
    w_hh = params[0]
    k = w_hh.shape[0] - h.shape[1]
    if zoneout:  # δh (total at h_t) -> δh̃; the direct term d ⊙ δh is added to δh_{t-1} below
        d = zoneout[0]
        dh_out, dh = dh, dh * (1 - d)
    r, z = _split(g, variant)
    dz = dh * (h - n)
    da_n = dh * (1 - z) * (1 - n * n)
    if layer_norm:
        gamma = params[3]
        yhat_g, rho_g, yhat_n, rho_n = saved[3:]
        dy_n = normalize_backward(da_n * gamma[k:], yhat_n, rho_n)
        du = dy_n.mm(w_hh[k:])
    else:
        du = da_n.mm(w_hh[k:])
    da_g = _merge(du * h, dz, variant) * g * (1 - g)
    dgi = torch.cat([da_g, da_n], 1)
    direct = dh * z + du * r if not zoneout else dh * z + du * r + dh_out * d
    if layer_norm:
        dy_g = normalize_backward(da_g * gamma[:k], yhat_g, rho_g)
        dh_prev = torch.addmm(direct, dy_g, w_hh[:k])
        dgamma = torch.cat([(da_g * yhat_g).sum(0), (da_n * yhat_n).sum(0)])
        return (dh_prev,), dgi, (torch.cat([dy_g, dy_n], 1), dgamma)
    dh_prev = torch.addmm(direct, da_g, w_hh[:k])
    return (dh_prev,), dgi, ()


def gru_before_param_grads(ctx):
    k = ctx.dgi.shape[-1] - ctx.hidden_size
    u = ctx.saved(2)
    # dL/d(W_hg h), dL/d(W_hn u): the pre-activation gradients, or with layer norm the
    # gradients before the normalisations
    dy = ctx.extras[0] if ctx.extras else ctx.dgi
    dw = torch.cat(
        [ctx.outer_prev(dy[..., :k]), outer_sum(dy[..., k:], u)], 0
    )
    db = ctx.dgi.sum((0, 1))
    if ctx.extras:
        return dw, db, db.clone(), ctx.extras[1].sum(0)
    return dw, db, db.clone()


# ---- registry -----------------------------------------------------------------------------


def _recurrence(variant: str, reset: str, layer_norm: bool = False, zoneout: bool = False):
    if reset == "after" or variant == "no_reset":
        step, backward, grads = gru_after_step, gru_after_step_backward, gru_after_param_grads
        if layer_norm:
            grads = gru_after_ln_param_grads
        reset = "after"
    else:
        step, backward, grads = gru_before_step, gru_before_step_backward, gru_before_param_grads
    name = f"gru_{variant}_{reset}" + "_ln" * layer_norm + "_zoneout" * zoneout
    # without options the step functions run exactly the plain cell's operations (d is empty)
    return Recurrence(
        name,
        lambda gi, s, p, *d: step(gi, s, p, *d, variant=variant, layer_norm=layer_norm),
        lambda ds, sp, sn, sv, p, *d: backward(
            ds, sp, sn, sv, p, *d, variant=variant, layer_norm=layer_norm
        ),
        grads,
        lambda H: (H,),
        gates=_gates(variant),
        # native_loops.cpp computes gru_after_step / gru_after_step_backward over the loop
        native="gru" if (variant == "gru" and reset == "after" and not layer_norm
                         and not zoneout) else None,
    )


# keyed by (variant, reset, layer_norm, zoneout)
RECURRENCES = {
    (v, r, ln, zo): _recurrence(v, r, ln, zo)
    for v in VARIANTS for r in RESETS for ln in (False, True) for zo in (False, True)
}


class GRU(NormZoneoutMixin, RecurrentBase):
    """GRU with torch.nn.GRU's constructor, parameters and outputs, and our own BPTT.

    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    reset=None, variant="gru", layer_norm=False, zoneout=0.0, record_grad_norms=True,
    compile=None, device=None, dtype=None)``; ``forward(input, hx=None, lengths=None) ->
    (output, h_n)``. Equations and their hand-derived derivatives: the module docstring of
    ``rnnlab.cells.gru``.

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
    * ``layer_norm=True`` (haste's LayerNormGRU; any variant and reset): W_ih x and the
      recurrent projection are layer-normalised over the whole gate vector before the biases
      (reset="before": gate rows and candidate rows of the recurrent projection separately).
      Adds ``ln_weight_ih_l{k}`` and ``ln_weight_hh_l{k}`` (G = rows of weight_ih), the gains,
      initialised to 1; ``bias_ih``/``bias_hh`` are the shifts and start at 0.
    * ``zoneout=p`` in [0, 1): in training each unit of h keeps its previous value with
      probability p (masks from torch's global RNG); in eval h_t = p h_{t-1} + (1 − p) h̃_t.
    Both off (the default): exactly the plain cell, same parameters and step graphs.
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
        layer_norm: bool = False,
        zoneout: float = 0.0,
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
        self._set_options(layer_norm, zoneout)
        self.variant = variant
        self.reset = reset if reset is not None else ("before" if variant == "mgu" else "after")
        rows = 3 if variant == "gru" else 2
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout,
            gate_size=rows * hidden_size, record_grad_norms=record_grad_norms, compile=compile,
            device=device, dtype=dtype,
        )

    def extra_parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.norm_parameter_shapes()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.reset_norm_parameters()

    @property
    def gate_names(self) -> tuple[str, ...]:
        """Gate blocks of weight_ih / weight_hh / biases, in row order."""
        return {"gru": ("r", "z", "n"), "no_reset": ("z", "n"), "mgu": ("f", "n")}[self.variant]

    def recurrence(self) -> Recurrence:
        return RECURRENCES[(self.variant, self.reset, self.layer_norm, self.zoneout > 0)]

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths: Tensor | None = None):
        output, (h_n,) = self._run(input, None if hx is None else (hx,), lengths)
        return output, h_n

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", reset={self.reset!r}, variant={self.variant!r}"
        return s + self.options_repr()
