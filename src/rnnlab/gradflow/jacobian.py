"""Why a gradient vanishes, measured: the step Jacobian J_t = ∂s_t/∂s_{t−1} of a scratch recurrent
stack on a batch, the norms of its products over the last steps, and the Lyapunov exponents of
the dynamics (docs/gradflow.md, "Step Jacobians"). Torch only.

**Which state.** s_t is every state tensor the cell carries from step to step: h for rnn, gru,
indrnn, minGRU and minLSTM, (h, c) for the LSTM (FGR also carries its previous gates). The
gradient rnnlab records, ∂L/∂h_t, reaches h_{t−1} through the whole state: for the LSTM the
h → h block is not a factor of the chain rule (the path the LSTM was built for is c → c, whose
block is diag(f_t)), so the Jacobian reported is the full state's, 2H × 2H for the LSTM, and
∂L/∂s_{t−1} = ∂L/∂s_t · J_t exactly.

**How.** From each cell's own hand-derived backward step (``Recurrence.step_backward``, the
formulas in the cell modules' docstrings), the same code that trains the model: row j of J_t is
the state gradient at t−1 when ∂L/∂s_t = e_j, all rows of all samples in one batched call.
minGRU / minLSTM have no recurrent weights: J_t = diag(a_t), their recurrence coefficient. Past
the end of a shorter sequence the state is frozen, J_t = I. Exact (tests compare every cell and
variant against ``torch.autograd.functional.jacobian`` in float64); the cost is S backward rows
per sample and step, so the monitor measures a few probe rows (``jacobian_rows``).

**What.** Per layer, for t = 1..T (1-based like the gradient-norm curves):

- ``norm``: the spectral norm ‖J_t‖₂ per sample, (T, B): > 1 stretches some direction, < 1
  shrinks every direction of the state;
- ``log10_product``: log10 ‖J_T ⋯ J_{t+1}‖₂ = log10 ‖∂s_T/∂s_t‖₂ per sample, (T, B), 0 at t = T:
  how strongly the state at t can still move the last state, the horizon the factors imply
  (the gradient from a loss at T is this product applied to ∂L/∂s_T);
- ``lyapunov``: the top-k Lyapunov exponents (natural log per step) of the trajectory, by the
  standard QR method: k orthonormal vectors pushed through the J_t and re-orthonormalised every
  ``reorthonormalise`` steps, log |diag R| summed, divided by T. λ₁ < 0: perturbations die out
  (the gradient vanishes at the rate e^{λ₁} per step at best); λ₁ > 0: chaotic, it explodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LayerJacobians", "jacobian_record", "lyapunov_exponents", "product_log10_norms",
           "spectral_norms", "step_jacobians"]


@dataclass
class LayerJacobians:
    """One layer's step Jacobians on a batch: ``J`` (T, B, S, S) with J[t, b] = ∂s_{t+1}/∂s_t of
    sample b (row index: the component of s_{t+1}), the layer's output h (T, B, H), its gates
    ``{name: (T, B, H)}`` (``Recurrence.gates``; empty for cells without gates) and ``valid``
    (T, B) bool, False past the end of a shorter sequence (None: every step valid)."""

    J: Tensor
    output: Tensor
    gates: dict[str, Tensor]
    valid: Tensor | None = None


def _recurrent_layers(stack, x: Tensor, lengths: Tensor | None):
    """(J, output) per layer of a RecurrentBase stack, eager, with no autograd graph."""
    from rnnlab.cells.sequence import Sequence

    seq = Sequence.of(x, None, lengths, batch_first=stack.batch_first,
                      input_size=stack.input_size, hidden_size=stack.hidden_size,
                      num_layers=stack.num_layers)
    rec = stack.recurrence()
    widths = rec.state_sizes(stack.hidden_size)
    S = sum(widths)
    inp, layers = seq.x, []
    steps, batch = inp.shape[0], inp.shape[1]
    eye = torch.eye(S, dtype=inp.dtype, device=inp.device)
    # e_j for every sample: rows b*S + j, split into the state's parts
    basis = tuple(eye.repeat(batch, 1).split(list(widths), 1))
    for layer in range(stack.num_layers):
        params = stack.layer_parameters(layer)
        gi = stack.input_projection(layer, inp)
        step_inputs = stack.step_inputs(layer, gi)
        state = tuple(inp.new_zeros(batch, w) for w in widths)
        Js, outs, gates = [], [], []
        for t in range(steps):
            inputs = tuple(i[t] for i in step_inputs)
            new_state, saved = rec.step(gi[t], state, params, *inputs)
            rows = lambda ts: tuple(v.repeat_interleave(S, 0) for v in ts)  # noqa: E731
            dprev, _, _ = rec.step_backward(basis, rows(state), rows(new_state), rows(saved),
                                            params, *rows(inputs))
            J = torch.cat(dprev, 1).reshape(batch, S, S)
            if seq.mask is not None:  # past the end the state is kept: J = I
                m = seq.mask[t].reshape(batch, 1, 1)
                new_state = tuple(torch.where(seq.mask[t], a, b) for a, b in zip(new_state, state))
                J = torch.where(m, J, eye)
            Js.append(J)
            outs.append(new_state[0])
            if rec.gates is not None:
                gates.append(rec.gates(saved))
            state = new_state
        out = torch.stack(outs)
        if seq.mask is not None:
            out = torch.where(seq.mask, out, torch.zeros_like(out))
        stacked = {n: torch.stack([g[n] for g in gates]) for n in gates[0]} if gates else {}
        layers.append(LayerJacobians(torch.stack(Js), out, stacked, _valid(seq)))
        inp = out
    return layers


def _min_layers(stack, x: Tensor, lengths: Tensor | None):
    """minGRU / minLSTM: h_t = a_t ⊙ h_{t−1} + b_t, so J_t = diag(a_t)."""
    import torch.nn.functional as F

    from rnnlab.cells.sequence import Sequence

    seq = Sequence.of(x, None, lengths, batch_first=stack.batch_first,
                      input_size=stack.input_size, hidden_size=stack.hidden_size,
                      num_layers=stack.num_layers)
    inp, layers = seq.x, []
    for layer in range(stack.num_layers):
        P = F.linear(inp, getattr(stack, f"weight_ih_l{layer}"),
                     getattr(stack, f"bias_ih_l{layer}", None))
        a, b = stack.equations.coefficients(P)
        if seq.mask is not None:
            a = torch.where(seq.mask, a, torch.ones_like(a))
            b = torch.where(seq.mask, b, torch.zeros_like(b))
        h, outs = torch.zeros_like(a[0]), []
        for t in range(a.shape[0]):
            h = a[t] * h + b[t]
            outs.append(h)
        out = torch.stack(outs)
        if seq.mask is not None:
            out = torch.where(seq.mask, out, torch.zeros_like(out))
        keep = stack.equations.coefficients(P)[0]  # a, unmasked: the gate the step computed
        gates = ({"z": 1 - keep, "keep": keep} if stack.equations.rows == 2
                 else {"f": keep, "i": 1 - keep, "keep": keep})  # minLSTM: f' and i' = 1 − f'
        layers.append(LayerJacobians(torch.diag_embed(a), out, gates, _valid(seq)))
        inp = out
    return layers


def _valid(seq) -> Tensor | None:
    return None if seq.mask is None else seq.mask[..., 0]


def step_jacobians(stack, x: Tensor, lengths: Tensor | None = None) -> list[LayerJacobians]:
    """The step Jacobians of every layer of a scratch stack (``rnnlab.cells`` RNN, GRU, LSTM,
    IndRNN, MinGRU, MinLSTM) on input ``x`` (laid out as the stack's ``batch_first``), from a
    zero initial state, in the stack's current mode (eval: zoneout at its expectation, no
    dropout). No autograd graph is built and no gradient is written."""
    with torch.no_grad():
        if hasattr(stack, "recurrence"):
            return _recurrent_layers(stack, x, lengths)
        if hasattr(stack, "equations"):
            return _min_layers(stack, x, lengths)
    raise TypeError(f"step Jacobians need a scratch cell (rnnlab.cells), got "
                    f"{type(stack).__name__}")


def spectral_norms(J: Tensor) -> Tensor:
    """‖J‖₂ (the largest singular value) of every matrix of a (..., S, S) stack: the square root
    of the top eigenvalue of JᵀJ (symmetric: ~1.6x cheaper than an SVD at S = 64-128, equal to
    it within 1e-14 in float64; power iteration was tried and needed > 50 steps for 2%)."""
    top = torch.linalg.eigvalsh(J.transpose(-1, -2) @ J)[..., -1]
    return top.clamp(min=0).sqrt()


def _safe(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, torch.ones_like(x))


def product_log10_norms(J: Tensor) -> Tensor:
    """log10 ‖J_T ⋯ J_{t+1}‖₂ for t = 1..T (1-based; 0 at t = T), (T, B), from J (T, B, S, S).

    The running product is renormalised at every step (its scale kept as a log), so a product
    that shrinks by hundreds of decades is still resolved; a product that is exactly 0 reads
    -inf."""
    T, B, S, _ = J.shape
    out = J.new_zeros(T, B)
    U = torch.eye(S, dtype=J.dtype, device=J.device).expand(B, S, S)
    log_scale = J.new_zeros(B)
    for t in range(T - 1, 0, -1):  # U = J_T ⋯ J_{t+1}: the product reaching back to s_t
        U = U @ J[t]
        size = spectral_norms(U)
        log_scale = log_scale + torch.log10(_safe(size))
        log_scale = torch.where(size > 0, log_scale, torch.full_like(log_scale, -math.inf))
        U = U / _safe(size).reshape(B, 1, 1)
        out[t - 1] = log_scale
    return out


def lyapunov_exponents(J: Tensor, k: int | None = None, reorthonormalise: int = 1,
                       lengths: Tensor | None = None) -> Tensor:
    """The top-``k`` Lyapunov exponents per sample, (B, k), natural log per step, of the
    product J_T ⋯ J_1 (J: (T, B, S, S)), by the QR method: Q_0 the first k unit vectors,
    Z = J_t Q, every ``reorthonormalise`` steps Z = QR, Σ log |diag R|, divided by the number
    of steps (``lengths[b]`` for a ragged batch, whose J past the end is I and adds nothing).
    A factor that is exactly 0 makes its exponent -inf."""
    T, B, S, _ = J.shape
    k = S if k is None else int(k)
    if not 1 <= k <= S:
        raise ValueError(f"lyapunov k must be in [1, {S}] (the state's size), got {k}")
    if reorthonormalise < 1:
        raise ValueError(f"reorthonormalise must be >= 1, got {reorthonormalise}")
    Q = torch.eye(S, k, dtype=J.dtype, device=J.device).expand(B, S, k)
    total = J.new_zeros(B, k)
    for t in range(T):
        Q = J[t] @ Q
        if (t + 1) % reorthonormalise == 0 or t == T - 1:
            Q, R = torch.linalg.qr(Q)
            total = total + torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs())
    steps = (J.new_full((B, 1), T) if lengths is None
             else lengths.to(J.device, J.dtype).reshape(B, 1).clamp(min=1))
    # QR orders nothing: the exponents, largest first
    return (total / steps).sort(-1, descending=True).values


def jacobian_record(stack, x: Tensor, lengths: Tensor | None = None,
                    k: int | None = None) -> dict[str, dict[str, Tensor]]:
    """Per layer (``layer0``, ...): ``norm`` (T, B) ‖J_t‖₂, ``log10_product`` (T, B) and
    ``lyapunov`` (B, k) (k: all S exponents by default), float64 on the CPU."""
    record = {}
    for layer, lj in enumerate(step_jacobians(stack, x, lengths)):
        J = lj.J.double()
        S = J.shape[-1]
        record[f"layer{layer}"] = {
            "norm": spectral_norms(J).cpu(),
            "log10_product": product_log10_norms(J).cpu(),
            "lyapunov": lyapunov_exponents(J, min(k or S, S)).cpu(),
        }
    return record
