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

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from .base import RecurrentBase
from .gru import NormZoneoutMixin, normalize, normalize_backward
from .recurrence import Recurrence, check_choice

VARIANTS = ("torch", "vanilla", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr")


@dataclass(frozen=True)
class LSTMSpec:
    """What a variant changes, as flags read by the step functions."""

    gates: tuple[str, ...]  # blocks of W_ih / W_hh, in torch's order i, f, g, o
    peepholes: tuple[str, ...]  # rows of weight_peephole (a subset of i, f, o)
    input_act: bool = True  # g = tanh(a_g)
    output_act: bool = True  # h = o ⊙ tanh(c)
    coupled: bool = False  # cifg: f = 1 - i
    gate_recurrence: bool = False  # fgr
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
    def saves_candidate_cell(self) -> bool:
        """With zoneout the new state's c is not c̃: save c̃ where the backward step reads it
        (o's peephole; noaf without layer norm, where tc = c̃)."""
        return self.zoneout and ("o" in self.peepholes or not (self.output_act or self.layer_norm))

    @classmethod
    def of(cls, variant: str) -> LSTMSpec:
        full, peep = ("i", "f", "g", "o"), ("i", "f", "o")
        return {
            "torch": cls(full, ()),
            "vanilla": cls(full, peep),
            "nig": cls(("f", "g", "o"), ("f", "o")),
            "nfg": cls(("i", "g", "o"), ("i", "o")),
            "nog": cls(("i", "f", "g"), ("i", "f")),
            "niaf": cls(full, peep, input_act=False),
            "noaf": cls(full, peep, output_act=False),
            "np": cls(full, ()),
            "cifg": cls(("i", "g", "o"), ("i", "o"), coupled=True),
            "fgr": cls(full, peep, gate_recurrence=True),
        }[variant]


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
    p = dict(zip(spec.peepholes, peep.unbind(0))) if spec.peepholes else {}
    if spec.gate_recurrence:  # the previous step's gate activations enter i, f, o
        r = state[2].mm(gg.t()).chunk(3, 1)
        for name, extra in zip(("i", "f", "o"), r):
            a[name] = a[name] + extra

    def gate(name, peep_at):
        pre = a[name] if name not in p else a[name] + p[name] * peep_at
        return torch.sigmoid(pre)

    i = gate("i", c) if "i" in a else None
    f = gate("f", c) if "f" in a else (1 - i if spec.coupled else None)
    g = torch.tanh(a["g"]) if spec.input_act else a["g"]
    c_new = (c if f is None else f * c) + (g if i is None else i * g)
    o = gate("o", c_new) if "o" in a else None
    if spec.layer_norm:
        chat, rho_c = normalize(c_new)
        m = chat * ln[1] + ln[2]
    else:
        m = c_new
    tc = torch.tanh(m) if spec.output_act else m
    h_new = tc if o is None else o * tc

    present = {"i": i, "f": f, "o": o}
    saved = tuple(g if name == "g" else present[name] for name in spec.gates)  # (i, f, g, o) ∩ gates
    if spec.output_act:
        saved = (*saved, tc)
    if spec.layer_norm:
        saved = (*saved, yhat, rho, chat, rho_c)
    if spec.saves_candidate_cell:
        saved = (*saved, c_new)
    if zoneout:  # h_new, c_new are h̃, c̃
        d_h, d_c = zoneout
        h_new, c_new = d_h * h + (1 - d_h) * h_new, d_c * c + (1 - d_c) * c_new

    new_state = (h_new, c_new)
    if spec.gate_recurrence:
        new_state = (h_new, c_new, torch.cat([i, f, o], 1))
    return new_state, saved


def lstm_step_backward(
    dstate, state_prev, state_new, saved, params, *zoneout, spec: LSTMSpec
):
    dh, dc = dstate[0], dstate[1]
    c, c_new = state_prev[1], state_new[1]
    w_hh = params[0]
    peep, gg, ln = spec.extras(params)
    p = dict(zip(spec.peepholes, peep.unbind(0))) if spec.peepholes else {}
    saved = list(saved)
    i = saved.pop(0) if "i" in spec.gates else None
    f = saved.pop(0) if "f" in spec.gates else (1 - i if spec.coupled else None)
    g = saved.pop(0)
    o = saved.pop(0) if "o" in spec.gates else None
    tc = saved.pop(0) if spec.output_act else None
    if spec.layer_norm:
        yhat, rho, chat, rho_c = (saved.pop(0) for _ in range(4))
    if zoneout:
        # c̃ (the un-zoned cell) is what this step's equations saw; saved only where it is read
        c_new = saved.pop(0) if spec.saves_candidate_cell else None
        # totals at h_t, c_t -> δh̃, δc̃; the direct terms d ⊙ δ go to step t−1 below
        d_h, d_c = zoneout
        dh_out, dc_out = dh, dc
        dh, dc = dh * (1 - d_h), dc * (1 - d_c)
    if tc is None:  # no output activation: h' = o ⊙ m
        tc = chat * ln[1] + ln[2] if spec.layer_norm else c_new
    ds = dict(zip(("i", "f", "o"), dstate[2].chunk(3, 1))) if spec.gate_recurrence else {}

    da = {}
    dtc = dh if o is None else dh * o
    if spec.layer_norm:  # through m = N(c') ⊙ γ_c + β_c
        dm = dtc * (1 - tc * tc) if spec.output_act else dtc
        dc = dc + normalize_backward(dm * ln[1], chat, rho_c)
    else:
        dc = dc + (dtc * (1 - tc * tc) if spec.output_act else dtc)
    if o is not None:
        do = dh * tc + ds["o"] if ds else dh * tc
        da["o"] = do * o * (1 - o)
        if "o" in p:
            dc = dc + da["o"] * p["o"]
    di = dc * g if i is not None else None
    df = dc * c if f is not None else None
    if ds:
        di, df = di + ds["i"], df + ds["f"]
    if spec.coupled:
        di = di - df
    if "i" in spec.gates:
        da["i"] = di * i * (1 - i)
    if "f" in spec.gates:
        da["f"] = df * f * (1 - f)
    dg = dc if i is None else dc * i
    da["g"] = dg * (1 - g * g) if spec.input_act else dg

    dgi = torch.cat([da[name] for name in spec.gates], 1)
    dc_prev = dc if f is None else dc * f
    for name in ("i", "f"):
        if name in p:
            dc_prev = dc_prev + da[name] * p[name]
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
        at = {"i": c, "f": c, "o": c_new}
        extras = (torch.stack([(da[n] * at[n]).sum(0) for n in spec.peepholes]),)
    if spec.layer_norm:  # dL/d(W_hh h), and batch sums for γ_hh, γ_c, β_c
        extras = (*extras, dy, (dgi * yhat).sum(0), (dm * chat).sum(0), dm.sum(0))
    if spec.gate_recurrence:
        dprev = (*dprev, torch.cat([da["i"], da["f"], da["o"]], 1).mm(gg))
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


def _recurrence(spec: LSTMSpec, name: str) -> Recurrence:
    # without options the step functions run exactly the plain cell's operations (d is empty)
    return Recurrence(
        name,
        lambda gi, s, p, *d: lstm_step(gi, s, p, *d, spec=spec),
        lambda ds, sp, sn, sv, p, *d: lstm_step_backward(ds, sp, sn, sv, p, *d, spec=spec),
        _lstm_param_grads(spec),
        (lambda H: (H, H, 3 * H)) if spec.gate_recurrence else (lambda H: (H, H)),
        num_user_states=2,
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
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)
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
        if "f" not in self.spec.gates and not self.spec.coupled:
            return
        gate, value = ("i", -float(value)) if self.spec.coupled else ("f", float(value))
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
