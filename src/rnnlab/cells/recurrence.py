"""Hand-written backpropagation through time, shared by every scratch cell.

A cell file (``rnn.py``, ``gru.py``, ``lstm.py``) supplies the *equations* as a :class:`Recurrence`:

* ``step(gi, state, params, *inputs) -> (new_state, saved)``: one time step. ``gi`` is the input
  projection ``W_ih x_t`` of this step (precomputed for all steps in one matmul, without bias:
  both bias vectors are added inside the fused per-step kernel, where it is free), ``state`` a
  tuple (``(h,)``, ``(h, c)``, ...), ``params`` = ``(W_hh, b_ih, b_hh, *extras)``.
  ``saved`` is whatever the backward step needs (gate activations ...). ``inputs``: this step's
  slices of the module's non-differentiable per-step inputs (:meth:`RecurrentBase.step_inputs`,
  e.g. zoneout masks); none for most cells, which then never see the argument.
* ``step_backward(dstate, state_prev, state_new, saved, params, *inputs) -> (dstate_prev, dgi,
  extras)``: the hand-derived derivative of one step. ``dstate[0]`` is the *total* ∂L/∂h_t. It
  returns ∂L/∂state_{t-1} (including the products with ``W_hh``), ∂L/∂gi_t and per-step
  ``extras`` that ``param_grads`` needs (they are stacked over time).
* ``param_grads(ctx) -> grads``: gradients of ``params`` from the stacked per-step quantities,
  done after the loop with one large matmul each instead of one small one per step.

This module owns everything around the equations:

* :class:`RecurrenceFunction`, the ``torch.autograd.Function`` that runs the time loop forward
  and backward for one layer;
* variable lengths: ``mask[t, b] = t < lengths[b]``; a step past the end keeps the state
  (``state_t = state_{t-1}``), its output is 0, and in the backward pass the gradient of the
  state passes through such steps unchanged, exactly as torch.nn on a packed sequence;
* recording, per layer, time step and sample, the L2 norm of the total ∂L/∂h_t
  (direct gradient from the output at t plus what comes back through the recurrence from t+1)
  into the layer's slot of a ``gradnorms.NormSink``;
* the parameter gradients, from what the loops left (:class:`BackwardContext`), whichever
  backend ran them: step by step, each step compiled or eager; the whole loop as one C++
  function on the CPU; or as one CUDA graph (``backends/``, one module each, behind one
  interface; the stack's forward picks one per call with ``backends.choose``).

Around it: ``projection.py`` (the input projection ``W_ih x`` of all steps, and ``outer_sum``),
``gradnorms.py`` (the ∂L/∂h_t record), ``autocast.py`` (a backward runs under its forward's
autocast state).

The ``nn.Module`` plumbing shared by the cells (parameters named like torch.nn, layers, dropout,
``batch_first``, ``hx``, ``lengths``) is :class:`rnnlab.cells.base.RecurrentBase`.

Only torch is imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .autocast import record_autocast, under_forward_autocast
from .backends import Backend, States
from .backends import native as _native
from .backends.step import make_backward, make_forward
from .compile_cache import StepFunction
from .projection import outer_sum

__all__ = ["Recurrence", "RecurrenceFunction"]


# --------------------------------------------------------------------------------------------
# the recurrence description supplied by each cell
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recurrence:
    """The equations of one cell variant (see the module docstring for the signatures).

    ``state_sizes(hidden_size)`` gives the width of each state tensor; the first one is ``h``.
    ``num_user_states`` of them come from / go to the user (``hx``, ``h_n``, ``c_n``); the rest
    (e.g. FGR's previous gate activations) start at zero and are internal.

    ``gates(saved) -> {name: (B, H)}``: the step's sigmoid gates by their papers' names, read
    from what ``step`` saved (None for cells without gates), plus ``"keep"``, the coefficient
    of the previous state in the state update (GRU z, LSTM f, MGU 1 − f), from which the gate
    statistics derive each unit's timescale 1 / (1 − keep), and for the GRU family
    ``"reset"``, what multiplies h_{t−1} inside the candidate (r; 1 without a reset gate), which
    the textbook case analysis reads (rnnlab.gradflow.gates).
    """

    name: str
    step: Callable
    step_backward: Callable
    param_grads: Callable
    state_sizes: Callable[[int], tuple[int, ...]]
    num_user_states: int = 1
    gates: Callable | None = None
    # the name of a whole-loop C++ kernel computing exactly these equations (native.py), if any
    native: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "_fns", {})

    # the per-step graphs, built once per (masked, record, number of per-step inputs) combination
    def forward_fn(self, masked: bool, n_inputs: int = 0) -> StepFunction:
        key = ("fwd", masked, n_inputs)
        if key not in self._fns:
            self._fns[key] = StepFunction(
                make_forward(self, masked, n_inputs), f"{self.name}.{key}"
            )
        return self._fns[key]

    def backward_fn(
        self, masked: bool, record: bool, n_saved: int, n_inputs: int = 0
    ) -> StepFunction:
        key = ("bwd", masked, record, n_saved, n_inputs)
        if key not in self._fns:
            self._fns[key] = StepFunction(
                make_backward(self, masked, record, n_saved, n_inputs), f"{self.name}.{key}"
            )
        return self._fns[key]


# --------------------------------------------------------------------------------------------
# the autograd.Function: one layer, the whole sequence
# --------------------------------------------------------------------------------------------


class BackwardContext:
    """What ``Recurrence.param_grads`` gets: stacked per-step quantities of one layer."""

    def __init__(self, dgi, extras, states: States, saved, hidden_size, stacks=None,
                 native: bool = False):
        self.dgi = dgi  # (T, B, G): dL/d(W_ih x_t), which is also dL/db_ih summed over (T, B)
        self.extras = extras  # tuple of (T, ...) stacks of step_backward's extras
        self._states = states
        self._saved = saved  # per step, the tuple ``step`` saved (None where stacks are given)
        self._stacks = stacks  # or the saved tensors stacked over time
        self.hidden_size = hidden_size
        self._native = native  # the loops ran native: so do these products, where they can

    def _outer(self, d: Tensor, u: Tensor, out: Tensor | None = None) -> Tensor:
        got = _native.outer_sum(d, u, out) if self._native else None
        if got is not None:
            return got
        return outer_sum(d, u) if out is None else out + outer_sum(d, u)

    def outer_prev(self, d: Tensor, k: int = 0) -> Tensor:
        """``Σ_t d_tᵀ s_{t-1}`` for state component ``k`` (d: (T, B, G) -> (G, width))."""
        st = self._states
        if k == 0 and st.h_in_output:  # s_{-1} = h0, s_0..s_{T-2} = output[:-1]: no copy
            if self._native and d.shape[0] > 1:
                return self._outer(d[0], st.initial[0], self._outer(d[1:], st.buffers[0][:-1]))
            out = d[0].t().mm(st.initial[0])
            if d.shape[0] > 1:
                out = out + outer_sum(d[1:], st.buffers[0][:-1])
            return out
        return self._outer(d, st.buffers[k][:-1])

    def state_prev(self, k: int = 0) -> Tensor:
        """(T, B, width): state component ``k`` entering each step (s_{t-1})."""
        st = self._states
        if k == 0 and st.h_in_output:
            return torch.cat([st.initial[0].unsqueeze(0), st.buffers[0][:-1]])
        return st.buffers[k][:-1]

    def saved(self, j: int) -> Tensor:
        """(T, B, ...): the ``j``-th tensor saved by ``step`` at every step."""
        if self._stacks is not None:
            return self._stacks[j]
        return torch.stack([s[j] for s in self._saved])


@dataclass(frozen=True)
class _SavedLayout:
    """How RecurrenceFunction.forward lays its tensors out in ``save_for_backward``, in order:
    the ``n_params`` parameters, the mask (if ``masked``), the ``n_inputs`` step inputs, the
    ``num_states`` initial states, the ``num_states`` state buffers, then what each step saved:
    ``n_saved`` tensors per step for ``steps`` steps, stacked over time (``stacked``, the graphed
    forward's) or step after step."""

    n_params: int
    masked: bool
    n_inputs: int
    num_states: int
    steps: int
    n_saved: int
    stacked: bool

    def unpack(self, flat: tuple[Tensor, ...]):
        """(params, mask, inputs, state0, buffers, stacks, saved_steps) from ``flat``; mask and
        stacks are None where absent; saved_steps the per-step tuples, None where stacked
        (``_unstack(stacks)`` gives them)."""
        n = self.num_states
        params, flat = flat[: self.n_params], flat[self.n_params :]
        mask = None
        if self.masked:
            mask, flat = flat[0], flat[1:]
        inputs, flat = flat[: self.n_inputs], flat[self.n_inputs :]
        state0, buffers, flat = flat[:n], flat[n : 2 * n], flat[2 * n :]
        if self.stacked:
            return params, mask, inputs, state0, buffers, flat, None
        k = self.n_saved
        return (params, mask, inputs, state0, buffers, None,
                [flat[t * k : (t + 1) * k] for t in range(self.steps)])


class RecurrenceFunction(torch.autograd.Function):
    """One layer of a recurrent cell over a whole (time-major) sequence, with hand-written BPTT.

    ``apply(rec, backend, compile, sink, layer, gi, mask, inputs, num_states, *state0, *params)``
    returns ``(output (T, B, H), *final_states)``. ``backend`` runs both loops (the caller's
    ``backends.choose``: per-step, native or CUDA graph); ``mask`` is ``None`` or a (T, B, 1)
    bool tensor; ``inputs`` a tuple of non-differentiable (T, B, ...) tensors whose step-t slices
    go to ``step`` and ``step_backward`` (usually empty).
    """

    @staticmethod
    def forward(ctx, rec, backend: Backend, compile, sink, layer, gi, mask, inputs, num_states,
                *rest):
        inputs = tuple(u.detach() for u in inputs)
        state0 = tuple(s.detach() for s in rest[:num_states])
        params = tuple(p.detach() for p in rest[num_states:])
        gi = gi.detach()
        if not gi.is_contiguous():
            gi = gi.contiguous()
        steps = gi.shape[0]
        masked = mask is not None
        n_inputs = len(inputs)
        # stacks: the saved tensors stacked over time (graph, native loop); else saved_steps:
        # per step, what ``step`` saved
        buffers, stacks, saved_steps = backend.forward(rec, compile, gi, mask, inputs, state0,
                                                       params)
        states = States(state0, buffers, h_in_output=not masked)

        if masked:
            h = buffers[0][1:]
            output = torch.where(mask, h, torch.zeros_like(h))
        else:
            output = buffers[0]
        finals = tuple(s.clone() for s in states.final(steps)[: rec.num_user_states])

        # everything the backward needs goes through save_for_backward, so autograd frees it after
        # the backward pass (and refuses a second pass unless retain_graph=True); the output is
        # saved as an output, so modifying it in place before backward raises as usual
        n_saved = len(stacks) if stacks is not None else len(saved_steps[0]) if steps else 0
        ctx.rec, ctx.compile, ctx.sink, ctx.layer = rec, compile, sink, layer
        ctx.backend = backend  # the backward runs where the forward ran
        record_autocast(ctx, gi.device.type)
        ctx.layout = _SavedLayout(len(params), masked, n_inputs, num_states, steps, n_saved,
                                  stacks is not None)
        ctx.save_for_backward(
            *params,
            *((mask,) if masked else ()),
            *inputs,
            *state0,
            *(output if k == 0 and not masked else b for k, b in enumerate(buffers)),
            *(stacks if stacks is not None else (s for per_step in saved_steps for s in per_step)),
        )
        return (output, *finals)

    @staticmethod
    @torch.autograd.function.once_differentiable
    @under_forward_autocast
    def backward(ctx, dout, *dfinals):
        rec: Recurrence = ctx.rec
        backend: Backend = ctx.backend
        layout: _SavedLayout = ctx.layout
        n, steps = layout.num_states, layout.steps
        params, mask, inputs, state0, buffers, stacks, saved_steps = layout.unpack(
            ctx.saved_tensors)
        states = States(state0, buffers, h_in_output=not layout.masked)
        record = ctx.sink is not None
        h0 = state0[0]

        # dL/d(final state): user-visible ones from autograd, internal ones zero
        dstate = []
        for k in range(n):
            g = dfinals[k] if k < len(dfinals) else None
            dstate.append(torch.zeros_like(state0[k]) if g is None else g.contiguous())
        dstate = tuple(dstate)
        if dout is None:
            dout = h0.new_zeros(steps, *h0.shape)

        dgi, norms, dstate, extras = backend.backward(
            rec, ctx.compile, record, dout, mask, inputs, dstate, states, stacks, saved_steps,
            params)

        if record:
            ctx.sink.slots[ctx.layer] = norms.float()

        if steps:
            bctx = BackwardContext(dgi, extras, states, saved_steps, h0.shape[-1], stacks,
                                   native=backend.native_products)
            grads = tuple(rec.param_grads(bctx))
        else:
            grads = tuple(torch.zeros_like(p) for p in params)
        return (None, None, None, None, None, dgi, None, None, None, *dstate, *grads)
