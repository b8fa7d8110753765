"""LSTM: torch.nn's form and Greff et al. (2017)'s vanilla LSTM with its eight variants.

Notation: σ sigmoid, ⊙ elementwise, gi = W_ih x_t (precomputed for all t in one matmul),
c = c_{t-1}, h = h_{t-1}, a = gi + b_ih + W_hh h + b_hh split into gate blocks a_i, a_f, a_g, a_o
(torch's order).

variant="vanilla" (Greff et al. 2017, diagonal peepholes p_i, p_f, p_o):

    i  = σ(a_i + p_i ⊙ c)           f  = σ(a_f + p_f ⊙ c)          g = tanh(a_g)
    c' = f ⊙ c + i ⊙ g
    o  = σ(a_o + p_o ⊙ c')          h' = o ⊙ tanh(c')

variant="torch" (default): vanilla without peepholes (torch.nn.LSTM; loads its state dict).
Each of Greff's variants changes one thing of vanilla:

    nig   no input gate            i ≡ 1                       (no i rows, no p_i)
    nfg   no forget gate           f ≡ 1                       (no f rows, no p_f)
    nog   no output gate           o ≡ 1                       (no o rows, no p_o)
    niaf  no input activation      g = a_g                     (instead of tanh(a_g))
    noaf  no output activation     h' = o ⊙ c'                 (instead of o ⊙ tanh(c'))
    np    no peepholes             p_i = p_f = p_o = 0         (no peephole parameter)
    cifg  coupled input-forget     f = 1 − i                   (no f rows, no p_f)
    fgr   full gate recurrence     a_{i,f,o} += R_{i,f,o} [i_{t-1}, f_{t-1}, o_{t-1}]

(FGR's gate activations at t−1 start at 0 and are carried as an extra internal state.)

In the code each variant is one pair of functions written like these equations
(``vanilla_forward`` / ``vanilla_backward``, ``cifg_forward`` ..., table ``EQUATIONS``);
``lstm_step`` and ``lstm_step_backward`` add what all variants share (the recurrent matmul, layer
norm, FGR's gate recurrence, zoneout, the parameter gradients' per-step sums).

Backward, given the total δh' = ∂L/∂h_t and δc' = ∂L/∂c_t coming back from step t+1 (and, for
FGR, δs = ∂L/∂[i, f, o]_t from step t+1's gate recurrence):

    tc  = tanh(c')                  (noaf: tc = c', 1 − tc² -> 1)
    δo  = δh' ⊙ tc  (+ δs_o)        δa_o = δo ⊙ o(1 − o)
    δc' += δh' ⊙ o ⊙ (1 − tc²) + δa_o ⊙ p_o               (o peeps at c_t)
    δi  = δc' ⊙ g  (+ δs_i)         δf = δc' ⊙ c  (+ δs_f)      cifg: δi −= δf (f = 1 − i)
    δa_i = δi ⊙ i(1 − i)            δa_f = δf ⊙ f(1 − f)
    δa_g = δc' ⊙ i ⊙ (1 − g²)       (niaf: δc' ⊙ i)
    ∂L/∂gi = ∂L/∂(W_hh h + b_hh) = δa = [δa_i, δa_f, δa_g, δa_o] (the present blocks)
    δh  = δa · W_hh                 δc = δc' ⊙ f + δa_i ⊙ p_i + δa_f ⊙ p_f
    fgr: δs_{t-1} = [δa_i, δa_f, δa_o] · R
    ∂L/∂W_hh = Σ_t δa_tᵀ h_{t-1}    ∂L/∂b_ih = ∂L/∂b_hh = Σ_t δa_t
    ∂L/∂p_i = Σ_{t,b} δa_i ⊙ c_{t-1}, ∂L/∂p_f likewise,
    ∂L/∂p_o = Σ_{t,b} δa_o ⊙ c_t    fgr: ∂L/∂R = Σ_t [δa_i, δa_f, δa_o]ᵀ [i, f, o]_{t-1}

Layer normalisation (``layer_norm=True``; Ba et al. 2016, haste's LayerNormLSTM), any variant.
N(y) = (y − μ) ρ normalises a row vector of width N (μ its mean, ρ = 1/√(var + ε), biased
variance, ε = 1e-5, as torch.nn.LayerNorm and haste). As in haste, the input and the recurrent
projections are normalised separately over the whole gate vector (all G = 4H or 3H gate rows
together, not block by block), each with its gain, before the biases, which act as their shifts
(b_ih, b_hh: a separate β would duplicate them; they start at 0, the gains at 1); and the cell
state is normalised before the output nonlinearity with its own gain γ_c (init 1) and shift β_c
(init 0):

    gi = N(W_ih x_t) ⊙ γ_ih                               (all t at once; autograd)
    a  = gi + b_ih + N(W_hh h) ⊙ γ_hh + b_hh              (peepholes p ⊙ c and fgr's R [i, f, o]
                                                           are added after, not normalised)
    i, f, g, c', o as above                               (o peeps at the raw c')
    ĉ  = N(c'),   m = ĉ ⊙ γ_c + β_c
    h' = o ⊙ tanh(m)                                      (noaf: h' = o ⊙ m)

  backward, writing N'(δŷ) := ρ ⊙ (δŷ − mean(δŷ) − ŷ ⊙ mean(δŷ ⊙ ŷ)) for the gradient through
  ŷ = N(y) (∂ŷ_j/∂y_k = ρ (δ_jk − 1/N − ŷ_j ŷ_k / N); ρ and ŷ of that normalisation):

    tc  = tanh(m)                   δm = δh' ⊙ o ⊙ (1 − tc²)     (noaf: δm = δh' ⊙ o)
    δo  = δh' ⊙ tc (+ δs_o) as above
    δc' += N'(δm ⊙ γ_c) + δa_o ⊙ p_o                   (N' of ĉ = N(c'); in place of the term
                                                        δh' ⊙ o ⊙ (1 − tc²) above)
    ∂L/∂γ_c = Σ_{t,b} δm ⊙ ĉ,       ∂L/∂β_c = Σ_{t,b} δm
    δi, δf, δa as above; then, with ŷ = N(W_hh h):
    δy  = N'(δa ⊙ γ_hh)             δh = δy · W_hh                 (instead of δa · W_hh)
    ∂L/∂W_hh = Σ_t δy_tᵀ h_{t-1},   ∂L/∂γ_hh = Σ_{t,b} δa ⊙ ŷ,   ∂L/∂b_ih = ∂L/∂b_hh = Σ_t δa_t

Zoneout (``zoneout=p``; Krueger et al. 2017), on c and h with separate masks d^c, d^h; c̃, h̃
are the c', h' computed above (h̃ from the un-zoned c̃, o peeps at c̃):

    c_t = d^c_t ⊙ c_{t-1} + (1 − d^c_t) ⊙ c̃_t      training: d ~ Bernoulli(p) per (t, b, unit)
    h_t = d^h_t ⊙ h_{t-1} + (1 − d^h_t) ⊙ h̃_t      eval: d ≡ p (the expectation)

  backward: the step above runs with δh' = (1 − d^h) ⊙ δh_t and δc' = (1 − d^c) ⊙ δc_t (plus its
  own terms), and δh_{t-1} += d^h ⊙ δh_t, δc_{t-1} += d^c ⊙ δc_t. δh_t is the total ∂L/∂h_t.
  fgr's carried gate activations are not zoned out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace

import torch
from torch import Tensor

from ..config.errors import check_choice
from .base import RecurrentBase
from .init import uniform_init
from .norm_zoneout import NormZoneoutMixin, normalize, normalize_backward
from .recurrence import Recurrence

VARIANTS = ("torch", "vanilla", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr")


@dataclass(frozen=True)
class LSTMSpec:
    """A variant's parameter layout: which gate blocks and peephole rows exist, and the options."""

    variant: str
    gates: tuple[str, ...]  # blocks of W_ih / W_hh, in torch's order i, f, g, o
    peepholes: tuple[str, ...] = ()  # rows of weight_peephole (a subset of i, f, o)
    gate_recurrence: bool = False  # fgr: R [i, f, o]_{t-1} enters the gates; an extra state
    layer_norm: bool = False  # params end with γ_hh, γ_c, β_c
    zoneout: bool = False  # two per-step inputs: the masks d^h, d^c

    def extras(self, params) -> tuple[Tensor | None, Tensor | None, tuple[Tensor, ...]]:
        """(peephole weights, R, (γ_hh, γ_c, β_c)) from ``params``, None / () where absent."""
        k = 3
        peep = gg = None
        if self.peepholes:
            peep, k = params[k], k + 1
        if self.gate_recurrence:
            gg, k = params[k], k + 1
        return peep, gg, tuple(params[k : k + 3]) if self.layer_norm else ()

    @property
    def core_saved(self) -> int:
        """How many tensors the variant's forward saves: its gates, and tanh(m) unless noaf."""
        return len(self.gates) + (self.variant != "noaf")

    @property
    def saves_candidate_cell(self) -> bool:
        """With zoneout the new state's c is not c̃: save c̃ where the backward step reads it
        (o's peephole; noaf without layer norm, where m = c̃)."""
        return self.zoneout and (
            "o" in self.peepholes or (self.variant == "noaf" and not self.layer_norm))

    @classmethod
    def of(cls, variant: str) -> LSTMSpec:
        full, peep = ("i", "f", "g", "o"), ("i", "f", "o")
        return {
            "torch": cls("torch", full),
            "vanilla": cls("vanilla", full, peep),
            "nig": cls("nig", ("f", "g", "o"), ("f", "o")),
            "nfg": cls("nfg", ("i", "g", "o"), ("i", "o")),
            "nog": cls("nog", ("i", "f", "g"), ("i", "f")),
            "niaf": cls("niaf", full, peep),
            "noaf": cls("noaf", full, peep),
            "np": cls("np", full),
            "cifg": cls("cifg", ("i", "g", "o"), ("i", "o")),
            "fgr": cls("fgr", full, peep, gate_recurrence=True),
        }[variant]


# --------------------------------------------------------------------------------------------
# Each variant's equations, written as in Greff et al. (2017), forward and backward.
#
# forward(a, c, p, out) -> (c', h', saved): a.i, a.f, a.g, a.o are the gate pre-activations
#   (W x + R h + b, the blocks this variant has; fgr's gate recurrence already added), c = c_{t-1},
#   p.i, p.f, p.o the peephole rows, out(c') = m, what the output nonlinearity reads (c' itself,
#   or LN(c') ⊙ γ_c + β_c with layer norm). saved: the gates present in torch's order, then
#   tanh(m) (not for noaf).
# backward(dh, dc, c, c', saved, p, out, ds) -> (δa, da, δc_{t-1}): dh, dc are the totals
#   ∂L/∂h_t, ∂L/∂c_t; out(δm) = ∂L/∂c' through m; ds is fgr's δ[i, f, o]_t from step t+1 (else
#   None). δa = [δa_i, δa_f, δa_g, δa_o] (the blocks present) is ∂L/∂a, also as da.i, da.f, ...
# lstm_step / lstm_step_backward below do what every variant shares: the recurrent matmul (and its
# layer norm), fgr's gate recurrence, zoneout, the peephole and layer-norm parameter gradients.
# --------------------------------------------------------------------------------------------

Gates = SimpleNamespace  # a.i, a.f, a.g, a.o: the blocks of one gate vector
σ, tanh = torch.sigmoid, torch.tanh


def torch_forward(a, c, p, out):  # also "np": no peepholes
    i = σ(a.i)
    f = σ(a.f)
    g = tanh(a.g)
    c_new = f * c + i * g
    o = σ(a.o)
    tc = tanh(out(c_new))
    return c_new, o * tc, (i, f, g, o, tc)


def torch_backward(dh, dc, c, c_new, s, p, out, ds):
    i, f, g, o, tc = s
    dc = dc + out(dh * o * (1 - tc * tc))
    da_o = dh * tc * o * (1 - o)
    di, df = dc * g, dc * c
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_g = dc * i * (1 - g * g)
    da = Gates(i=da_i, f=da_f, g=da_g, o=da_o)
    return torch.cat([da_i, da_f, da_g, da_o], 1), da, dc * f


def vanilla_forward(a, c, p, out):  # also "fgr", whose a already holds R [i, f, o]_{t-1}
    i = σ(a.i + p.i * c)
    f = σ(a.f + p.f * c)
    g = tanh(a.g)
    c_new = f * c + i * g
    o = σ(a.o + p.o * c_new)
    tc = tanh(out(c_new))
    return c_new, o * tc, (i, f, g, o, tc)


def vanilla_backward(dh, dc, c, c_new, s, p, out, ds):
    i, f, g, o, tc = s
    dc = dc + out(dh * o * (1 - tc * tc))
    do = dh * tc if ds is None else dh * tc + ds.o
    da_o = do * o * (1 - o)
    dc = dc + da_o * p.o
    di, df = dc * g, dc * c
    if ds is not None:
        di, df = di + ds.i, df + ds.f
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_g = dc * i * (1 - g * g)
    da = Gates(i=da_i, f=da_f, g=da_g, o=da_o)
    return torch.cat([da_i, da_f, da_g, da_o], 1), da, dc * f + da_i * p.i + da_f * p.f


def nig_forward(a, c, p, out):  # no input gate: i ≡ 1
    f = σ(a.f + p.f * c)
    g = tanh(a.g)
    c_new = f * c + g
    o = σ(a.o + p.o * c_new)
    tc = tanh(out(c_new))
    return c_new, o * tc, (f, g, o, tc)


def nig_backward(dh, dc, c, c_new, s, p, out, ds):
    f, g, o, tc = s
    dc = dc + out(dh * o * (1 - tc * tc))
    da_o = dh * tc * o * (1 - o)
    dc = dc + da_o * p.o
    da_f = dc * c * f * (1 - f)
    da_g = dc * (1 - g * g)
    da = Gates(f=da_f, g=da_g, o=da_o)
    return torch.cat([da_f, da_g, da_o], 1), da, dc * f + da_f * p.f


def nfg_forward(a, c, p, out):  # no forget gate: f ≡ 1
    i = σ(a.i + p.i * c)
    g = tanh(a.g)
    c_new = c + i * g
    o = σ(a.o + p.o * c_new)
    tc = tanh(out(c_new))
    return c_new, o * tc, (i, g, o, tc)


def nfg_backward(dh, dc, c, c_new, s, p, out, ds):
    i, g, o, tc = s
    dc = dc + out(dh * o * (1 - tc * tc))
    da_o = dh * tc * o * (1 - o)
    dc = dc + da_o * p.o
    da_i = dc * g * i * (1 - i)
    da_g = dc * i * (1 - g * g)
    da = Gates(i=da_i, g=da_g, o=da_o)
    return torch.cat([da_i, da_g, da_o], 1), da, dc + da_i * p.i


def nog_forward(a, c, p, out):  # no output gate: o ≡ 1
    i = σ(a.i + p.i * c)
    f = σ(a.f + p.f * c)
    g = tanh(a.g)
    c_new = f * c + i * g
    tc = tanh(out(c_new))
    return c_new, tc, (i, f, g, tc)


def nog_backward(dh, dc, c, c_new, s, p, out, ds):
    i, f, g, tc = s
    dc = dc + out(dh * (1 - tc * tc))
    di, df = dc * g, dc * c
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_g = dc * i * (1 - g * g)
    da = Gates(i=da_i, f=da_f, g=da_g)
    return torch.cat([da_i, da_f, da_g], 1), da, dc * f + da_i * p.i + da_f * p.f


def niaf_forward(a, c, p, out):  # no input activation: g = a_g
    i = σ(a.i + p.i * c)
    f = σ(a.f + p.f * c)
    g = a.g
    c_new = f * c + i * g
    o = σ(a.o + p.o * c_new)
    tc = tanh(out(c_new))
    return c_new, o * tc, (i, f, g, o, tc)


def niaf_backward(dh, dc, c, c_new, s, p, out, ds):
    i, f, g, o, tc = s
    dc = dc + out(dh * o * (1 - tc * tc))
    da_o = dh * tc * o * (1 - o)
    dc = dc + da_o * p.o
    di, df = dc * g, dc * c
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_g = dc * i
    da = Gates(i=da_i, f=da_f, g=da_g, o=da_o)
    return torch.cat([da_i, da_f, da_g, da_o], 1), da, dc * f + da_i * p.i + da_f * p.f


def noaf_forward(a, c, p, out):  # no output activation: h' = o ⊙ m
    i = σ(a.i + p.i * c)
    f = σ(a.f + p.f * c)
    g = tanh(a.g)
    c_new = f * c + i * g
    o = σ(a.o + p.o * c_new)
    return c_new, o * out(c_new), (i, f, g, o)


def noaf_backward(dh, dc, c, c_new, s, p, out, ds):
    i, f, g, o = s
    m = out.value(c_new)  # recomputed, not saved
    dc = dc + out(dh * o)
    da_o = dh * m * o * (1 - o)
    dc = dc + da_o * p.o
    di, df = dc * g, dc * c
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_g = dc * i * (1 - g * g)
    da = Gates(i=da_i, f=da_f, g=da_g, o=da_o)
    return torch.cat([da_i, da_f, da_g, da_o], 1), da, dc * f + da_i * p.i + da_f * p.f


def cifg_forward(a, c, p, out):  # coupled input and forget gate: f = 1 − i
    i = σ(a.i + p.i * c)
    f = 1 - i
    g = tanh(a.g)
    c_new = f * c + i * g
    o = σ(a.o + p.o * c_new)
    tc = tanh(out(c_new))
    return c_new, o * tc, (i, g, o, tc)


def cifg_backward(dh, dc, c, c_new, s, p, out, ds):
    i, g, o, tc = s
    f = 1 - i
    dc = dc + out(dh * o * (1 - tc * tc))
    da_o = dh * tc * o * (1 - o)
    dc = dc + da_o * p.o
    da_i = (dc * g - dc * c) * i * (1 - i)  # through i and through f = 1 − i
    da_g = dc * i * (1 - g * g)
    da = Gates(i=da_i, g=da_g, o=da_o)
    return torch.cat([da_i, da_g, da_o], 1), da, dc * f + da_i * p.i


EQUATIONS = {  # variant: (forward, backward)
    "torch": (torch_forward, torch_backward),
    "vanilla": (vanilla_forward, vanilla_backward),
    "nig": (nig_forward, nig_backward),
    "nfg": (nfg_forward, nfg_backward),
    "nog": (nog_forward, nog_backward),
    "niaf": (niaf_forward, niaf_backward),
    "noaf": (noaf_forward, noaf_backward),
    "np": (torch_forward, torch_backward),
    "cifg": (cifg_forward, cifg_backward),
    "fgr": (vanilla_forward, vanilla_backward),
}


class CellOutput:
    """m = out(c'): c' itself, or LN(c') ⊙ γ_c + β_c; keeps (ĉ, ρ_c) for the saved tensors."""

    def __init__(self, ln: tuple[Tensor, ...]):
        self.ln, self.saved = ln, ()

    def __call__(self, c_new: Tensor) -> Tensor:
        if not self.ln:
            return c_new
        chat, rho_c = normalize(c_new)
        self.saved = (chat, rho_c)
        return chat * self.ln[1] + self.ln[2]


class CellOutputBackward:
    """out(δm) = ∂L/∂c' through m; keeps δm for γ_c, β_c. ``value(c')`` recomputes m."""

    def __init__(self, ln: tuple[Tensor, ...], chat: Tensor | None, rho_c: Tensor | None):
        self.ln, self.chat, self.rho_c, self.dm = ln, chat, rho_c, None

    def __call__(self, dm: Tensor) -> Tensor:
        if not self.ln:
            return dm
        self.dm = dm
        return normalize_backward(dm * self.ln[1], self.chat, self.rho_c)

    def value(self, c_new: Tensor | None) -> Tensor:
        return self.chat * self.ln[1] + self.ln[2] if self.ln else c_new


def lstm_step(gi, state, params, *zoneout, spec: LSTMSpec):
    h, c = state[0], state[1]
    w_hh, b_ih, b_hh = params[0], params[1], params[2]
    peep, gg, ln = spec.extras(params)
    if spec.layer_norm:
        yhat, rho = normalize(h.mm(w_hh.t()))
        a = gi + b_ih + yhat * ln[0] + b_hh
    else:
        a = gi + b_ih + h.mm(w_hh.t()) + b_hh
    a = dict(zip(spec.gates, a.chunk(len(spec.gates), 1)))
    p = Gates(**dict(zip(spec.peepholes, peep.unbind(0)))) if spec.peepholes else None
    if spec.gate_recurrence:  # the previous step's gate activations enter i, f, o
        r = state[2].mm(gg.t()).chunk(3, 1)
        for name, extra in zip(("i", "f", "o"), r):
            a[name] = a[name] + extra

    out = CellOutput(ln)
    c_new, h_new, saved = EQUATIONS[spec.variant][0](Gates(**a), c, p, out)
    if spec.layer_norm:
        saved = (*saved, yhat, rho, *out.saved)
    if spec.saves_candidate_cell:
        saved = (*saved, c_new)
    new_state = (h_new, c_new)
    if zoneout:  # h_new, c_new are h̃, c̃
        d_h, d_c = zoneout
        new_state = (d_h * h + (1 - d_h) * h_new, d_c * c + (1 - d_c) * c_new)
    if spec.gate_recurrence:
        i, f, _, o = saved[:4]
        new_state = (*new_state, torch.cat([i, f, o], 1))
    return new_state, saved


def lstm_step_backward(
    dstate, state_prev, state_new, saved, params, *zoneout, spec: LSTMSpec
):
    dh, dc = dstate[0], dstate[1]
    c, c_new = state_prev[1], state_new[1]
    w_hh = params[0]
    peep, gg, ln = spec.extras(params)
    p = Gates(**dict(zip(spec.peepholes, peep.unbind(0)))) if spec.peepholes else None
    core, rest = saved[: spec.core_saved], saved[spec.core_saved :]
    yhat = rho = chat = rho_c = None
    if spec.layer_norm:
        (yhat, rho, chat, rho_c), rest = rest[:4], rest[4:]
    if zoneout:
        # c̃ (the un-zoned cell) is what this step's equations saw; saved only where it is read
        c_new = rest[0] if spec.saves_candidate_cell else None
        # totals at h_t, c_t -> δh̃, δc̃; the direct terms d ⊙ δ go to step t−1 below
        d_h, d_c = zoneout
        dh_out, dc_out = dh, dc
        dh, dc = dh * (1 - d_h), dc * (1 - d_c)
    ds = (Gates(**dict(zip(("i", "f", "o"), dstate[2].chunk(3, 1)))) if spec.gate_recurrence
          else None)

    out = CellOutputBackward(ln, chat, rho_c)
    dgi, da, dc_prev = EQUATIONS[spec.variant][1](dh, dc, c, c_new, core, p, out, ds)
    if spec.layer_norm:  # through N(W_hh h) ⊙ γ_hh
        dy = normalize_backward(dgi * ln[0], yhat, rho)
        dh_prev = dy.mm(w_hh)
    else:
        dh_prev = dgi.mm(w_hh)
    if zoneout:
        dh_prev, dc_prev = dh_prev + d_h * dh_out, dc_prev + d_c * dc_out
    dprev = (dh_prev, dc_prev)
    extras = ()
    if spec.peepholes:  # batch-summed peephole gradients of this step: (rows, H)
        at = {"i": c, "f": c, "o": c_new}  # i, f peep at c_{t-1}, o at c_t
        extras = (torch.stack([(getattr(da, n) * at[n]).sum(0) for n in spec.peepholes]),)
    if spec.layer_norm:  # dL/d(W_hh h), and batch sums for γ_hh, γ_c, β_c
        extras = (*extras, dy, (dgi * yhat).sum(0), (out.dm * chat).sum(0), out.dm.sum(0))
    if spec.gate_recurrence:
        dprev = (*dprev, torch.cat([da.i, da.f, da.o], 1).mm(gg))
    return dprev, dgi, extras


def _lstm_param_grads(spec: LSTMSpec):
    def param_grads(ctx):
        db = ctx.dgi.sum((0, 1))
        # layer norm: W_hh's gradient comes from dL/d(W_hh h), before the normalisation
        dy = ctx.extras[1 if spec.peepholes else 0] if spec.layer_norm else ctx.dgi
        grads = [ctx.outer_prev(dy), db, db.clone()]
        if spec.peepholes:
            grads.append(ctx.extras[0].sum(0))
        if spec.gate_recurrence:
            H = ctx.hidden_size
            da_ifo = torch.cat([ctx.dgi[..., : 2 * H], ctx.dgi[..., 3 * H :]], -1)
            grads.append(ctx.outer_prev(da_ifo, 2))
        if spec.layer_norm:  # γ_hh, γ_c, β_c
            grads.extend(e.sum(0) for e in ctx.extras[-3:])
        return grads

    return param_grads


def _gates(spec: LSTMSpec):
    """saved -> the sigmoid gates the variant has (i, f, o; CIFG's f = 1 − i), keep = f (1 for
    NFG, which has no forget gate: c_t = c_{t−1} + i g)."""
    names = spec.gates

    def gates(saved):
        out = {n: saved[k] for k, n in enumerate(names) if n != "g"}
        if spec.variant == "cifg":
            out["f"] = 1 - out["i"]
        keep = out.get("f")
        if keep is None:  # nfg
            keep = torch.ones_like(saved[0])
        return {**{n: out[n] for n in ("i", "f", "o") if n in out}, "keep": keep}

    return gates


def _recurrence(spec: LSTMSpec, name: str) -> Recurrence:
    # without options the step functions run exactly the plain cell's operations (d is empty)
    return Recurrence(
        name,
        lambda gi, s, p, *d: lstm_step(gi, s, p, *d, spec=spec),
        lambda ds, sp, sn, sv, p, *d: lstm_step_backward(ds, sp, sn, sv, p, *d, spec=spec),
        _lstm_param_grads(spec),
        (lambda H: (H, H, 3 * H)) if spec.gate_recurrence else (lambda H: (H, H)),
        num_user_states=2,
        gates=_gates(spec),
        # native_loops.cpp computes torch_forward / torch_backward (no peepholes) over the loop
        native="lstm" if (spec.variant in ("torch", "np") and not spec.layer_norm
                          and not spec.zoneout) else None,
    )


# keyed by (variant, layer_norm, zoneout)
RECURRENCES = {
    (v, ln, zo): _recurrence(
        replace(LSTMSpec.of(v), layer_norm=ln, zoneout=zo),
        f"lstm_{v}" + ("_ln" if ln else "") + ("_zoneout" if zo else ""),
    )
    for v in VARIANTS for ln in (False, True) for zo in (False, True)
}


class LSTM(NormZoneoutMixin, RecurrentBase):
    """LSTM with torch.nn.LSTM's constructor, parameters and outputs, and our own BPTT.

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    variant="torch", forget_bias=None, layer_norm=False, zoneout=0.0, record_grad_norms=True,
    compile=None, device=None, dtype=None)``; ``forward(input, hx=None, lengths=None) -> (output,
    (h_n, c_n))`` with ``hx = (h_0, c_0)``. Equations, variants and derivatives: module docstring
    of ``rnnlab.cells.lstm``.

    Parameters per layer k (G = number of gate blocks × H; 4H for torch, vanilla, niaf, noaf,
    np, fgr; 3H for nig [f,g,o], nfg [i,g,o], nog [i,f,g], cifg [i,g,o]):
    ``weight_ih_l{k}`` (G, I), ``weight_hh_l{k}`` (G, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (G);
    with peepholes ``weight_peephole_l{k}`` (P, H), rows p_i, p_f, p_o for the gates present
    (P = 3, or 2 for nig/nfg/nog/cifg); fgr: ``weight_gg_l{k}`` (3H, 3H), the gate-to-gate
    recurrent matrix R (rows: targets i, f, o; columns: sources i, f, o at t−1).

    ``forget_bias``: if not None, after the uniform init set the forget-gate slice of
    ``bias_ih`` to ``forget_bias`` and that of ``bias_hh`` to 0, so the total forget bias is
    ``forget_bias`` (Jozefowicz et al. 2015). cifg (f = 1 − i): the input-gate slices get
    −forget_bias and 0, which gives f the same total bias; nfg (f ≡ 1): nothing to set.
    With layer norm the biases are added after the normalisations (which would cancel a bias
    added before them), so ``forget_bias`` still shifts f's pre-activation as intended.

    ``layer_norm=True`` (haste's LayerNormLSTM; any variant): W_ih x and W_hh h layer-normalised
    over the whole gate vector before the biases, and h' = o ⊙ tanh(LN(c')). Adds per layer
    ``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}`` (G), the gains (init 1), and ``ln_weight_c_l{k}``,
    ``ln_bias_c_l{k}`` (H), the cell normalisation's gain (1) and shift (0); ``bias_ih``/``bias_hh``
    are the gate normalisations' shifts and start at 0 (then ``forget_bias``, if given).
    ``zoneout=p`` in [0, 1): in training each unit of c and of h (separate masks) keeps its
    previous value with probability p (torch's global RNG); in eval the expectation
    s_t = p s_{t-1} + (1 − p) s̃_t. Both off (the default): exactly the plain cell.
    """

    zoned_states = 2  # h and c

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        variant: str = "torch",
        forget_bias: float | None = None,
        layer_norm: bool = False,
        zoneout: float = 0.0,
        record_grad_norms: bool = True,
        compile: bool | None = None,
        device=None,
        dtype=None,
    ):
        check_choice("variant", variant, VARIANTS)
        if bidirectional:
            raise ValueError("bidirectional must be False (the scratch cells are unidirectional)")
        if proj_size:
            raise ValueError("proj_size must be 0 (projections are not supported)")
        if forget_bias is not None:
            if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)):
                raise ValueError(f"forget_bias must be a number or None; got {forget_bias!r}")
            if not bias:
                raise ValueError("forget_bias needs bias=True (there is no bias to set)")
        self._set_options(layer_norm, zoneout)
        self.variant = variant
        self.spec = replace(LSTMSpec.of(variant), layer_norm=layer_norm, zoneout=self.zoneout > 0)
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout,
            gate_size=len(self.spec.gates) * hidden_size, record_grad_norms=record_grad_norms,
            compile=compile, device=device, dtype=dtype,
        )

    def extra_parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        if self.spec.peepholes:
            shapes["weight_peephole"] = (len(self.spec.peepholes), self.hidden_size)
        if self.spec.gate_recurrence:
            shapes["weight_gg"] = (3 * self.hidden_size, 3 * self.hidden_size)
        shapes.update(self.norm_parameter_shapes())  # after these: the order params[3:] follows
        if self.layer_norm:
            shapes["ln_weight_c"] = (self.hidden_size,)
            shapes["ln_bias_c"] = (self.hidden_size,)
        return shapes

    @property
    def gate_names(self) -> tuple[str, ...]:
        """Gate blocks of weight_ih / weight_hh / biases, in row order."""
        return self.spec.gates

    def reset_parameters(self) -> None:
        uniform_init(self, self.hidden_size)  # torch.nn's, as every cell (base.py)
        self.reset_norm_parameters()
        if self.forget_bias is not None:
            self.set_forget_bias(self.forget_bias)

    @torch.no_grad()
    def set_forget_bias(self, value: float) -> None:
        """Total forget-gate bias = ``value``: bias_ih slice = value, bias_hh slice = 0.

        cifg (f = 1 − i): the input-gate slices get −value and 0; nfg (f ≡ 1): nothing to do.
        """
        if not self.bias:
            raise ValueError("forget_bias needs bias=True (there is no bias to set)")
        coupled = self.variant == "cifg"
        if "f" not in self.spec.gates and not coupled:
            return
        gate, value = ("i", -float(value)) if coupled else ("f", float(value))
        H = self.hidden_size
        rows = slice(self.spec.gates.index(gate) * H, (self.spec.gates.index(gate) + 1) * H)
        for layer in range(self.num_layers):
            getattr(self, f"bias_ih_l{layer}")[rows].fill_(value)
            getattr(self, f"bias_hh_l{layer}")[rows].zero_()

    def recurrence(self) -> Recurrence:
        return RECURRENCES[(self.variant, self.layer_norm, self.zoneout > 0)]

    def forward(
        self,
        input: Tensor,
        hx: tuple[Tensor, Tensor] | None = None,
        lengths: Tensor | None = None,
    ):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError("hx must be a tuple (h_0, c_0) for LSTM")
        output, (h_n, c_n) = self._run(input, None if hx is None else tuple(hx), lengths)
        return output, (h_n, c_n)

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", variant={self.variant!r}"
        s = s if self.forget_bias is None else s + f", forget_bias={self.forget_bias}"
        return s + self.options_repr()
