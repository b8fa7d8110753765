"""The members of a pack as one computation: N models of one cell family and shapes, run over a
member dimension (issue 41, item 4: "the member dimension reaches the cells").

A pack's members each own their parameters (their state dicts, optimizers and checkpoints stay
their solo runs'). Here, once per forward call, each parameter is stacked over the members with
``torch.stack`` (differentiable: autograd routes each member's gradient back to that member's own
tensor), and then

- each layer's input projection is one batched matmul over ``[N, T*B, I]`` (``b_ih`` folded in);
- each time step's recurrent product is one ``torch.bmm`` (``baddbmm``, ``b_hh`` folded in) over
  ``[N, B, H] x [N, H, G]``;
- the gate equations run once on ``[N*B, ·]`` rows, as the cell's step function runs them on
  ``[B, ·]``: the LSTM's are the cell file's own equation functions
  (``lstm.EQUATIONS[variant][0]``), the GRU's use ``gru._split`` for the variant's gates (the
  few lines around the matmul are written out here because the GRU step function holds its
  ``h.mm(W_hh.t())`` inside), the RNN's are ``tanh``/``relu`` of the sum;
- the model's head (and a ``linear`` encoder) is one batched matmul as well.

The backward is autograd's (the cells' hand-written backward is per member): on a GPU this is
one chain of kernels for all members instead of N chains, which is where a pack of small models
gains (scripts/bench_pack.py measures it). Only torch is imported here; models are read by their
attributes (``encoder_kind``, ``encoder``, ``rnn``, ``head``, ``spec.per_step``), not imported.

API
---
``stack_reason(rnns)`` / ``model_stack_reason(models)``: ``None`` when the members can run
stacked, else one line saying why not (the pack then runs them one by one, the per-member path).

``stacked_rnn_forward(rnns, x)``: ``x`` is ``[N, ...]`` (a tensor, or a sequence of N tensors),
each member's input as its module takes it (``batch_first`` or not, 3-D); returns ``(output,
h_n)`` stacked over members: ``output[i], h_n[i]`` are what ``rnns[i](x[i])`` returns (LSTM:
``h_n = (h_n, c_n)``, each ``[N, L, B, H]``).

``stacked_model_forward(models, x_per_member)``: the same for ``SequenceModel`` members
(encoder -> rnn -> head); ``[N, B, T, O]`` (per-step tasks) or ``[N, B, O]`` (last-step), with
``out[i] == models[i](x_per_member[i])`` up to the tolerance below.

Covered: the scratch ``RNN`` (tanh, relu), ``GRU`` (``gru``, ``no_reset``, ``mgu``; reset
``after`` and ``before``), ``LSTM`` (every variant but ``fgr``: torch, np, vanilla and Greff's
other peephole variants, forget biases and any init being just parameter values), and torch.nn's
``RNN``/``GRU``/``LSTM`` (``impl=fused``) with the same parameter names; any number of layers,
``bias`` on or off, ``batch_first`` either way; encoders ``onehot``, ``identity``, ``linear``,
``embedding`` (looked up member by member: ``padding_idx``'s row must get no gradient).

Refused (``MemberStackError``, a ``ValueError``; ``*_stack_reason`` says it beforehand):
members of different cell families, variants, options or parameter shapes, dtypes or devices;
layer norm, zoneout, the LSTM's ``fgr`` (gate recurrence), IndRNN and the min-cells;
dropout between layers while training (each member's own mask stream); a model whose
gradient-flow probe is armed (``watch_gradient_flow``: the monitor's steps need the cells'
dL/dh_t record, which only the per-member path keeps). There is no ``lengths`` (ragged
batches) and no ``hx``: such steps take the per-member path. No ``hidden_grad_norms`` are
recorded here.

Tolerance (tests/test_cells_members.py): float64, outputs and every parameter's gradient agree
with each member run alone to 1e-10 absolute (measured: ≤ 1.5e-14); float32, each tensor to
1e-5 of its largest magnitude, + 1e-7 (measured: ≤ 1.3e-6 relative, ~20 roundoffs): the
results are the same sums in a different order (batched vs single matmul kernels;
``b_ih``/``b_hh`` folded into the products instead of added in the step; autograd's backward
instead of the cells' hand-derived one, whose weight gradient is one matmul over all steps), so
they differ by rounding, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gru import GRU
from .gru import _split as gru_split
from .lstm import EQUATIONS as LSTM_EQUATIONS
from .lstm import LSTM, CellOutput, Gates, LSTMSpec
from .rnn import RNN

__all__ = [
    "MemberStackError",
    "model_stack_reason",
    "stack_reason",
    "stacked_model_forward",
    "stacked_rnn_forward",
]


class MemberStackError(ValueError):
    """The members cannot run as one stacked computation (the message says why, one line)."""


@dataclass(frozen=True)
class _Family:
    """What the stacked equations need to know of a cell, equal across the members."""

    kind: str  # "rnn" | "gru" | "lstm"
    option: str  # rnn: "tanh"/"relu"; gru: variant; lstm: variant
    reset: str = ""  # gru: "after"/"before"

    def __str__(self) -> str:
        return f"{self.kind} {self.option}" + (f" reset={self.reset}" if self.reset else "")


def _family(rnn: nn.Module) -> _Family | str:
    """The cell family of one member's recurrent stack, or why it cannot be stacked."""
    if isinstance(rnn, (RNN, GRU, LSTM)):
        if getattr(rnn, "layer_norm", False):
            return "layer_norm=True is not stacked (its normalisations are per member rows)"
        if getattr(rnn, "zoneout", 0):
            return "zoneout is not stacked (each member draws its own masks)"
        if isinstance(rnn, RNN):
            return _Family("rnn", rnn.nonlinearity)
        if isinstance(rnn, GRU):
            # no_reset runs the "after" code whatever its reset (gru._recurrence)
            reset = "after" if rnn.variant == "no_reset" else rnn.reset
            return _Family("gru", rnn.variant, reset)
        if rnn.spec.gate_recurrence:
            return "LSTM variant=fgr (gate recurrence) is not stacked"
        return _Family("lstm", rnn.variant)
    if isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):  # torch.nn's (impl=fused): same names
        if rnn.bidirectional:
            return "a bidirectional torch.nn layer is not stacked"
        if isinstance(rnn, nn.LSTM):
            if rnn.proj_size:
                return "torch.nn.LSTM with proj_size is not stacked"
            return _Family("lstm", "torch")
        if isinstance(rnn, nn.GRU):
            return _Family("gru", "gru", "after")
        return _Family("rnn", rnn.nonlinearity)
    return f"{type(rnn).__name__} is not stacked (rnn, gru and lstm cells only)"


def _param_names(rnn: nn.Module, family: _Family) -> list[str]:
    names = []
    for layer in range(rnn.num_layers):
        names += [f"weight_ih_l{layer}", f"weight_hh_l{layer}"]
        if rnn.bias:
            names += [f"bias_ih_l{layer}", f"bias_hh_l{layer}"]
        if family.kind == "lstm" and hasattr(rnn, f"weight_peephole_l{layer}"):
            names.append(f"weight_peephole_l{layer}")
    return names


def stack_reason(rnns: Sequence[nn.Module]) -> str | None:
    """``None`` if ``rnns`` (the members' recurrent stacks) can run as one stacked computation,
    else one line saying why not."""
    if not rnns:
        return "no members"
    first = rnns[0]
    family = _family(first)
    if isinstance(family, str):
        return family
    shapes = {n: p.shape for n, p in first.named_parameters()}
    names = _param_names(first, family)
    if set(names) != set(shapes):
        return f"{type(first).__name__} has parameters the stacked equations do not use"
    dtype, device = first.weight_ih_l0.dtype, first.weight_ih_l0.device
    for i, rnn in enumerate(rnns):
        own = _family(rnn)
        if isinstance(own, str):
            return f"member {i}: {own}"
        if own != family:
            return f"member {i} is {own}, member 0 is {family}: one family per stack"
        for attr in ("input_size", "hidden_size", "num_layers", "bias", "batch_first"):
            if getattr(rnn, attr) != getattr(first, attr):
                return (f"member {i} has {attr}={getattr(rnn, attr)}, member 0 "
                        f"{getattr(first, attr)}")
        if {n: p.shape for n, p in rnn.named_parameters()} != shapes:
            return f"member {i}'s parameter shapes differ from member 0's"
        for p in rnn.parameters():
            if p.dtype != dtype or p.device != device:
                return (f"member {i} has a {p.dtype} parameter on {p.device}; member 0 "
                        f"{dtype} on {device}")
        if rnn.training and rnn.num_layers > 1 and getattr(rnn, "dropout", 0):
            return ("dropout between layers while training is not stacked (each member draws "
                    "its own masks)")
    return None


def _stack(modules: Sequence[nn.Module], name: str) -> Tensor:
    return torch.stack([getattr(m, name) for m in modules])


def _as_stacked(x: Tensor | Sequence[Tensor], n: int) -> Tensor:
    if not isinstance(x, Tensor):
        x = torch.stack(list(x))
    if x.shape[0] != n:
        raise MemberStackError(f"{x.shape[0]} inputs for {n} members")
    return x


def _project(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x [N, M, I] @ weight[n].T (+ bias[n])`` for every member n: ``[N, M, O]``."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _run_time_major(rnns: Sequence[nn.Module], family: _Family, x: Tensor):
    """``x [N, T, B, I]`` (time-major per member) -> output ``[N, T, B, H]`` of the top layer and
    the final states, a tuple of ``[N, L, B, H]`` (h, and the LSTM's c)."""
    first = rnns[0]
    n, steps, batch = x.shape[0], x.shape[1], x.shape[2]
    H, layers, bias = first.hidden_size, first.num_layers, first.bias
    rows = n * batch
    finals_h, finals_c = [], []
    for layer in range(layers):
        w_ih = _stack(rnns, f"weight_ih_l{layer}")
        w_hh = _stack(rnns, f"weight_hh_l{layer}")
        b_ih = _stack(rnns, f"bias_ih_l{layer}") if bias else None
        b_hh = _stack(rnns, f"bias_hh_l{layer}") if bias else None
        G = w_ih.shape[1]
        before = family.kind == "gru" and family.reset == "before"
        if before and bias:  # the "before" step adds both biases to gi (gru_before_step)
            b_ih, b_hh = b_ih + b_hh, None
        # all steps' input projections in one batched matmul, laid out [T, N*B, G] so that
        # step t's slice is contiguous rows, as the cell's gi_t is
        gi = _project(x.reshape(n, steps * batch, x.shape[-1]), w_ih, b_ih)
        gi = gi.view(n, steps, batch, G).transpose(0, 1).reshape(steps, rows, G)
        w_hh_t = w_hh.transpose(1, 2)  # [N, H, G]
        b_hh = None if b_hh is None else b_hh.unsqueeze(1)  # [N, 1, G]

        def recurrent(h: Tensor, w: Tensor = w_hh_t, b: Tensor | None = b_hh) -> Tensor:
            """``W_hh h + b_hh`` of every member: one bmm, ``[N*B, H] -> [N*B, G']``."""
            h3 = h.view(n, batch, -1)
            out = torch.bmm(h3, w) if b is None else torch.baddbmm(b, h3, w)
            return out.view(rows, -1)

        h = x.new_zeros(rows, H)
        outs = []
        if family.kind == "rnn":
            act = torch.relu if family.option == "relu" else torch.tanh
            for t in range(steps):
                h = act(gi[t] + recurrent(h))
                outs.append(h)
        elif family.kind == "gru" and not before:
            k = G - H  # rows of the sigmoid gates
            for t in range(steps):
                gh = recurrent(h)
                g = torch.sigmoid(gi[t, :, :k] + gh[:, :k])
                r, z = gru_split(g, family.option)
                gh_n = gh[:, k:]
                n_ = torch.tanh(gi[t, :, k:] + (gh_n if r is None else r * gh_n))
                h = n_ + z * (h - n_)
                outs.append(h)
        elif family.kind == "gru":  # reset before: n = tanh(W_in x + W_hn (r ⊙ h) + b)
            k = G - H
            w_g, w_n = w_hh_t[:, :, :k], w_hh_t[:, :, k:]
            for t in range(steps):
                g = torch.sigmoid(gi[t, :, :k] + recurrent(h, w_g, None))
                r, z = gru_split(g, family.option)
                u = r * h
                n_ = torch.tanh(gi[t, :, k:] + recurrent(u, w_n, None))
                h = n_ + z * (h - n_)
                outs.append(h)
        else:
            spec = LSTMSpec.of(family.option)
            forward = LSTM_EQUATIONS[family.option][0]
            peep = None
            if spec.peepholes:  # each member's rows repeated over its batch rows, once per call
                p = _stack(rnns, f"weight_peephole_l{layer}")  # [N, P, H]
                p = p.unsqueeze(2).expand(n, p.shape[1], batch, H).transpose(0, 1)
                p = p.reshape(-1, rows, H)  # [P, N*B, H]
                peep = Gates(**dict(zip(spec.peepholes, p.unbind(0))))
            out = CellOutput(())  # m = c' (no layer norm)
            c = x.new_zeros(rows, H)
            blocks = len(spec.gates)
            for t in range(steps):
                a = gi[t] + recurrent(h)
                a = Gates(**dict(zip(spec.gates, a.chunk(blocks, 1))))
                c, h, _ = forward(a, c, peep, out)
                outs.append(h)
            finals_c.append(c.view(n, batch, H))
        finals_h.append(h.view(n, batch, H))
        x = torch.stack(outs).view(steps, n, batch, H).transpose(0, 1)  # [N, T, B, H]
    finals = (torch.stack(finals_h, 1),)
    if family.kind == "lstm":
        finals = (*finals, torch.stack(finals_c, 1))
    return x, finals


def stacked_rnn_forward(rnns: Sequence[nn.Module], x: Tensor | Sequence[Tensor]):
    """The members' recurrent stacks on their inputs as one computation (module docstring).

    ``x``: ``[N, B, T, I]`` (``batch_first``) or ``[N, T, B, I]``, or N such tensors.
    Returns ``(output [N, B, T, H] or [N, T, B, H], h_n [N, L, B, H])``; LSTM: ``h_n`` is
    ``(h_n, c_n)``. Raises :class:`MemberStackError` where :func:`stack_reason` gives a reason.
    """
    reason = stack_reason(rnns)
    if reason is not None:
        raise MemberStackError(reason)
    x = _as_stacked(x, len(rnns))
    if x.dim() != 4:
        raise MemberStackError(f"x must be [N, B, T, I] or [N, T, B, I]; got {tuple(x.shape)}")
    batch_first = rnns[0].batch_first
    family = _family(rnns[0])
    out, finals = _run_time_major(rnns, family, x.transpose(1, 2) if batch_first else x)
    out = out.transpose(1, 2) if batch_first else out
    return out, (finals if family.kind == "lstm" else finals[0])


def model_stack_reason(models: Sequence[nn.Module]) -> str | None:
    """``None`` if ``models`` (``SequenceModel`` members) can run through
    :func:`stacked_model_forward`, else one line saying why not."""
    if not models:
        return "no members"
    first = models[0]
    for i, model in enumerate(models):
        if getattr(model, "_flow_watch", False):
            return (f"member {i}'s gradient-flow probe is armed (its dL/dh_t record needs the "
                    "per-member path)")
        if model.encoder_kind != first.encoder_kind:
            return f"member {i} has encoder {model.encoder_kind}, member 0 {first.encoder_kind}"
        if model.spec.per_step != first.spec.per_step:
            return (f"member {i} has a {model.spec.task_kind} task, member 0 a "
                    f"{first.spec.task_kind} task")
        if model.head.weight.shape != first.head.weight.shape or (
                (model.head.bias is None) != (first.head.bias is None)):
            return f"member {i}'s head differs in shape from member 0's"
        if model.encoder_kind == "onehot" and model.spec.vocab_size != first.spec.vocab_size:
            return f"member {i} has vocab_size {model.spec.vocab_size}, member 0 " \
                   f"{first.spec.vocab_size}"
        if model.encoder is not None and (
                {n: p.shape for n, p in model.encoder.named_parameters()}
                != {n: p.shape for n, p in first.encoder.named_parameters()}):
            return f"member {i}'s encoder differs in shape from member 0's"
    return stack_reason([m.rnn for m in models])


def _encode(models: Sequence[nn.Module], x: Tensor) -> Tensor:
    """The members' encoders on ``x [N, B, T, ...]``: ``[N, B, T, I]``."""
    first = models[0]
    kind = first.encoder_kind
    if kind == "onehot":
        return F.one_hot(x, first.spec.vocab_size).to(first.head.weight.dtype)
    if kind == "identity" or first.encoder is None:
        return x
    if kind == "linear":
        n, batch, steps = x.shape[:3]
        w = torch.stack([m.encoder.weight for m in models])
        b = None if first.encoder.bias is None else torch.stack([m.encoder.bias for m in models])
        out = _project(x.reshape(n, batch * steps, x.shape[-1]), w, b)
        return out.view(n, batch, steps, -1)
    # embedding: member by member (once per call, not per step), so that padding_idx's row gets
    # no gradient exactly as nn.Embedding's rule says
    return torch.stack([m.encoder(xi) for m, xi in zip(models, x.unbind(0))])


def stacked_model_forward(models: Sequence[nn.Module], x_per_member: Tensor | Sequence[Tensor]
                          ) -> Tensor:
    """Every member's ``SequenceModel.forward`` (no ``lengths``) as one computation: returns
    ``[N, B, T, O]`` (per-step tasks) or ``[N, B, O]`` (last-step tasks), ``out[i]`` being
    ``models[i](x_per_member[i])`` up to rounding (module docstring: the tolerance). Raises
    :class:`MemberStackError` where :func:`model_stack_reason` gives a reason."""
    reason = model_stack_reason(models)
    if reason is not None:
        raise MemberStackError(reason)
    x = _as_stacked(x_per_member, len(models))
    inputs = _encode(models, x)  # [N, B, T, I]
    rnns = [m.rnn for m in models]
    family = _family(rnns[0])
    # models build their stacks batch_first; the equations run time-major
    x_tm = inputs.transpose(1, 2) if rnns[0].batch_first else inputs
    out, _ = _run_time_major(rnns, family, x_tm)  # [N, T, B, H]
    n, steps, batch, H = out.shape
    w = torch.stack([m.head.weight for m in models])
    b = None if models[0].head.bias is None else torch.stack([m.head.bias for m in models])
    if models[0].spec.per_step:
        y = _project(out.reshape(n, steps * batch, H), w, b).view(n, steps, batch, -1)
        return y.transpose(1, 2)  # [N, B, T, O]
    return _project(out[:, -1], w, b)  # [N, B, O]
