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
* each step compiled or eager: ``compile_cache.py``; or, for a Recurrence that names a
  ``native`` kernel, the whole loop in one C++ function on the CPU (``native.py``), which fills
  the same buffers and saved stacks, so that the parameter gradients are computed here either way.

Around it: ``projection.py`` (the input projection ``W_ih x`` of all steps, and ``outer_sum``),
``gradnorms.py`` (the ∂L/∂h_t record), ``autocast.py`` (a backward runs under its forward's
autocast state).

The ``nn.Module`` plumbing shared by the cells (parameters named like torch.nn, layers, dropout,
``batch_first``, ``hx``, ``lengths``) is :class:`rnnlab.cells.base.RecurrentBase`.

Only torch is imported here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import native as _native
from .autocast import record_autocast, under_forward_autocast
from .compile_cache import StepFunction
from .loop_graph import GraphedLoop, graphs_enabled
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
                _make_forward(self, masked, n_inputs), f"{self.name}.{key}"
            )
        return self._fns[key]

    def backward_fn(
        self, masked: bool, record: bool, n_saved: int, n_inputs: int = 0
    ) -> StepFunction:
        key = ("bwd", masked, record, n_saved, n_inputs)
        if key not in self._fns:
            self._fns[key] = StepFunction(
                _make_backward(self, masked, record, n_saved, n_inputs), f"{self.name}.{key}"
            )
        return self._fns[key]


def _make_forward(rec: Recurrence, masked: bool, n_inputs: int = 0) -> Callable:
    n = len(rec.state_sizes(1))

    def forward_step(*args):
        # args: gi, [mask], *inputs, *state, *params, *new_state_slots   ->   *saved
        # the new state is written into the slots (views of the layer's state/output buffers)
        gi, rest = args[0], args[1:]
        if masked:
            m, rest = rest[0], rest[1:]
        inputs, rest = rest[:n_inputs], rest[n_inputs:]
        state, params, slots = rest[:n], rest[n:-n], rest[-n:]
        new_state, saved = rec.step(gi, state, params, *inputs)
        if masked:  # past the end of a sequence the state is frozen
            new_state = tuple(torch.where(m, a, b) for a, b in zip(new_state, state))
        for slot, value in zip(slots, new_state):
            slot.copy_(value)
        return tuple(saved)

    return forward_step


def _make_backward(
    rec: Recurrence, masked: bool, record: bool, n_saved: int, n_inputs: int = 0
) -> Callable:
    n = len(rec.state_sizes(1))

    def backward_step(*args):
        # args: dy, [mask], *inputs, *dstate, *state_prev, *state_new, *saved, *params, dgi_slot,
        #       [norm_slot]
        # returns: *dstate_prev, *extras   (dL/dgi_t and the norm are written into the slots)
        dy, rest = args[0], args[1:]
        if masked:
            m, rest = rest[0], rest[1:]
        inputs, rest = rest[:n_inputs], rest[n_inputs:]
        if record:
            rest, norm_slot = rest[:-1], rest[-1]
        rest, dgi_slot = rest[:-1], rest[-1]
        dstate, rest = rest[:n], rest[n:]
        state_prev, rest = rest[:n], rest[n:]
        state_new, rest = rest[:n], rest[n:]
        saved, params = rest[:n_saved], rest[n_saved:]
        if masked:
            # total dL/dh_t: the output gradient only counts where the step is valid; the rest is
            # what came back through the recurrence (or from h_n)
            dh = dstate[0] + torch.where(m, dy, torch.zeros_like(dy))
            dtot = (dh, *dstate[1:])
            dvalid = tuple(torch.where(m, d, torch.zeros_like(d)) for d in dtot)
        else:
            dh = dstate[0] + dy
            dtot = dvalid = (dh, *dstate[1:])
        # step_backward is linear in dstate: zero input at a frozen step -> zero contributions
        dprev, dgi, extras = rec.step_backward(
            dvalid, state_prev, state_new, saved, params, *inputs
        )
        if masked:  # frozen steps pass the state gradient through unchanged
            dprev = tuple(torch.where(m, p, d) for p, d in zip(dprev, dtot))
        # the state gradient keeps the dtype it came in with: the loop calls the step compiled
        # for the first step's arguments at every step, so its outputs must be valid inputs to
        # it (under autocast the products with W_hh come out of the matmul in bf16/fp16)
        dprev = tuple(p if p.dtype == d.dtype else p.to(d.dtype) for p, d in zip(dprev, dstate))
        dgi_slot.copy_(dgi)
        if record:
            norm = (dh * dh).sum(1).sqrt()
            if masked:
                norm = torch.where(m[:, 0], norm, torch.zeros_like(norm))
            norm_slot.copy_(norm)
        return (*dprev, *extras)

    return backward_step


# --------------------------------------------------------------------------------------------
# the autograd.Function: one layer, the whole sequence
# --------------------------------------------------------------------------------------------


class _States:
    """The states of one layer over time: ``at(k, t)`` is component k after step t-1 (t = 0: the
    initial state). Component 0 (h) lives in the output tensor itself when there is no mask;
    everything else in (T+1, B, width) buffers."""

    def __init__(self, initial: Sequence[Tensor], buffers: Sequence[Tensor], h_in_output: bool):
        self.initial = tuple(initial)
        self.buffers = tuple(buffers)
        self.h_in_output = h_in_output

    @functools.cached_property
    def seq(self) -> list[tuple[Tensor, ...]]:
        """Per component, the T+1 states as a tuple of views (index 0 = initial); built on first
        use (the step loops'; the native loops and the parameter gradients read the buffers)."""
        seq = []
        for k, buf in enumerate(self.buffers):
            if k == 0 and self.h_in_output:
                seq.append((self.initial[0], *buf.unbind(0)))
            else:
                seq.append(buf.unbind(0))
        return seq

    def slots(self, t: int) -> tuple[Tensor, ...]:
        return tuple(s[t + 1] for s in self.seq)

    def at(self, t: int) -> tuple[Tensor, ...]:
        return tuple(s[t] for s in self.seq)

    def final(self, steps: int) -> tuple[Tensor, ...]:
        """``at(steps)`` without building the per-step views."""
        if not steps:
            return self.initial
        return tuple(buf[steps - 1] if k == 0 and self.h_in_output else buf[steps]
                     for k, buf in enumerate(self.buffers))


class BackwardContext:
    """What ``Recurrence.param_grads`` gets: stacked per-step quantities of one layer."""

    def __init__(self, dgi, extras, states: _States, saved, hidden_size, stacks=None,
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


def _forward_loop(rec: Recurrence, compile: bool, gi: Tensor, mask: Tensor | None,
                  inputs: tuple[Tensor, ...], state0: tuple[Tensor, ...],
                  params: tuple[Tensor, ...]) -> tuple[list[Tensor], list[tuple]]:
    """One layer's time loop: the state buffers (component 0 is the output itself when there is
    no mask: :class:`_States`) and, per step, the tuple ``step`` saved."""
    steps, masked, n_inputs = gi.shape[0], mask is not None, len(inputs)
    fwd = rec.forward_fn(masked, n_inputs)
    buffers = []
    for k, s0 in enumerate(state0):
        if k == 0 and not masked:
            buffers.append(s0.new_empty(steps, *s0.shape))  # this is the output
        else:
            buf = s0.new_empty(steps + 1, *s0.shape)
            buf[0].copy_(s0)
            buffers.append(buf)
    states = _States(state0, buffers, h_in_output=not masked)
    # every argument of every step is known up front (states live in the buffers), so the
    # loop itself is only the calls
    heads = zip(gi.unbind(0), mask.unbind(0)) if masked else ((g,) for g in gi.unbind(0))
    if n_inputs:
        per_step = zip(*(u.unbind(0) for u in inputs))
        heads = ((*head, *step_in) for head, step_in in zip(heads, per_step))
    step_args = [
        (*head, *states.at(t), *params, *states.slots(t)) for t, head in enumerate(heads)
    ]
    saved_steps = []
    if steps:
        call = fwd.specialize(step_args[0], compile)
        for args in step_args:
            saved_steps.append(call(*args))
    return buffers, saved_steps


def _backward_loop(rec: Recurrence, compile: bool, record: bool, dout: Tensor,
                   mask: Tensor | None, inputs: tuple[Tensor, ...], dstate: tuple[Tensor, ...],
                   states: _States, saved_steps: Sequence[tuple], params: tuple[Tensor, ...]):
    """The reverse time loop: ``(dgi (T, B, G), norms (T, B) or None, dstate_0, extras)``, the
    extras of ``step_backward`` stacked over time."""
    steps, masked, n_inputs, n = dout.shape[0], mask is not None, len(inputs), len(dstate)
    h0 = states.initial[0]
    n_saved = len(saved_steps[0]) if steps else 0
    dgi = params[0].new_empty(steps, h0.shape[0], params[0].shape[0])
    norms = h0.new_empty(steps, h0.shape[0]) if record else None
    bwd = rec.backward_fn(masked, record, n_saved, n_inputs)
    douts, dgis = dout.unbind(0), dgi.unbind(0)
    masks = mask.unbind(0) if masked else None
    inputs_t = list(zip(*(u.unbind(0) for u in inputs))) if n_inputs else None
    norm_slots = norms.unbind(0) if record else None
    # per step: (dy_t, [mask_t], *inputs_t) + dstate (from the previous iteration) + the rest
    heads, rests = [], []
    for t in range(steps):
        heads.append((douts[t], masks[t]) if masked else (douts[t],))
        if n_inputs:
            heads[-1] = (*heads[-1], *inputs_t[t])
        tail = (dgis[t], norm_slots[t]) if record else (dgis[t],)
        rests.append((*states.at(t), *states.at(t + 1), *saved_steps[t], *params, *tail))
    extras_steps = [()] * steps
    if steps:
        call = bwd.specialize((*heads[-1], *dstate, *rests[-1]), compile)
        for t in range(steps - 1, -1, -1):
            out = call(*heads[t], *dstate, *rests[t])
            dstate = out[:n]
            extras_steps[t] = out[n:]
    n_extras = len(extras_steps[0]) if steps else 0
    extras = tuple(torch.stack([e[j] for e in extras_steps]) for j in range(n_extras))
    return dgi, norms, tuple(dstate), extras


# The loops as CUDA graphs (loop_graph.py): the same two functions over flat tensor tuples, the
# per-step saved tensors stacked over time so that copying them in and out is one copy each.
def _unstack(stacked: Sequence[Tensor], steps: int) -> list[tuple]:
    """Per step, the tuple of saved tensors (views of the (T, ...) stacks)."""
    return list(zip(*(s.unbind(0) for s in stacked))) if stacked else [()] * steps


def _graphed_forward(rec: Recurrence, compile: bool, masked: bool, n_inputs: int,
                     n: int) -> GraphedLoop:
    key = ("graph_fwd", compile, masked, n_inputs)
    if key not in rec._fns:
        def loop(gi, *rest):
            mask, rest = (rest[0], rest[1:]) if masked else (None, rest)
            inputs, state0, params = (rest[:n_inputs], rest[n_inputs:n_inputs + n],
                                      rest[n_inputs + n:])
            buffers, saved_steps = _forward_loop(rec, compile, gi, mask, inputs, state0, params)
            return (*buffers, *(torch.stack(s) for s in zip(*saved_steps)))

        rec._fns[key] = GraphedLoop(loop, f"{rec.name}.forward")
    return rec._fns[key]


def _graphed_backward(rec: Recurrence, compile: bool, record: bool, masked: bool,
                      n_inputs: int, n: int, n_saved: int) -> GraphedLoop:
    key = ("graph_bwd", compile, record, masked, n_inputs, n_saved)
    if key not in rec._fns:
        def loop(dout, *rest):
            mask, rest = (rest[0], rest[1:]) if masked else (None, rest)
            inputs, rest = rest[:n_inputs], rest[n_inputs:]
            dstate, state0, buffers, rest = rest[:n], rest[n:2 * n], rest[2 * n:3 * n], rest[3 * n:]
            stacked, params = rest[:n_saved], rest[n_saved:]
            states = _States(state0, buffers, h_in_output=not masked)
            saved_steps = _unstack(stacked, dout.shape[0])
            dgi, norms, dstate0, extras = _backward_loop(
                rec, compile, record, dout, mask, inputs, dstate, states, saved_steps, params)
            return (dgi, *((norms,) if record else ()), *dstate0, *extras)

        rec._fns[key] = GraphedLoop(loop, f"{rec.name}.backward")
    return rec._fns[key]


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

    ``apply(rec, compile, sink, layer, gi, mask, inputs, num_states, *state0, *params)`` returns
    ``(output (T, B, H), *final_states)``. ``mask`` is ``None`` or a (T, B, 1) bool tensor;
    ``inputs`` a tuple of non-differentiable (T, B, ...) tensors whose step-t slices go to
    ``step`` and ``step_backward`` (usually empty). On a GPU with ``RNNLAB_CUDA_GRAPHS=1`` each
    loop runs as one CUDA graph (loop_graph.py); on the CPU, where ``rec.native`` names a kernel
    and it applies (native.py), both loops run as one C++ function each.
    """

    @staticmethod
    def forward(ctx, rec, compile, sink, layer, gi, mask, inputs, num_states, *rest):
        inputs = tuple(u.detach() for u in inputs)
        state0 = tuple(s.detach() for s in rest[:num_states])
        params = tuple(p.detach() for p in rest[num_states:])
        gi = gi.detach()
        if not gi.is_contiguous():
            gi = gi.contiguous()
        steps = gi.shape[0]
        masked = mask is not None
        n_inputs = len(inputs)
        stacks = None  # the graph's (or native loop's) saved tensors, stacked over time
        graphed = steps and graphs_enabled(gi)
        native = (_native.native_kernel(rec.native, compile, gi, state0, params, n_inputs)
                  if steps and not graphed else None)
        saved_steps = None  # per step, what ``step`` saved (not where stacks hold it)
        if native is not None:
            buffers, stacks = native.forward(gi, mask, state0, params)
        elif graphed:
            out = _graphed_forward(rec, compile, masked, n_inputs, num_states)(
                gi, *((mask,) if masked else ()), *inputs, *state0, *params)
            buffers, stacks = list(out[:num_states]), out[num_states:]
        else:
            buffers, saved_steps = _forward_loop(rec, compile, gi, mask, inputs, state0, params)
        states = _States(state0, buffers, h_in_output=not masked)

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
        ctx.native = native
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
        layout: _SavedLayout = ctx.layout
        masked, n_inputs, n = layout.masked, layout.n_inputs, layout.num_states
        steps, n_saved = layout.steps, layout.n_saved
        params, mask, inputs, state0, buffers, stacks, saved_steps = layout.unpack(
            ctx.saved_tensors)
        states = _States(state0, buffers, h_in_output=not masked)
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

        if ctx.native is not None:
            dgi, norms, dstate, extras = ctx.native.backward(
                dout, mask, dstate, state0, buffers, stacks, params, record)
        elif steps and graphs_enabled(dout):
            if stacks is None:  # the forward ran step by step
                stacks = tuple(torch.stack(s) for s in zip(*saved_steps))  # () if none saved
            out = _graphed_backward(rec, ctx.compile, record, masked, n_inputs, n, n_saved)(
                dout, *((mask,) if masked else ()), *inputs, *dstate, *state0, *buffers,
                *stacks, *params)
            dgi, out = out[0], out[1:]
            norms, out = (out[0], out[1:]) if record else (None, out)
            dstate, extras = out[:n], out[n:]
        else:
            if saved_steps is None:
                saved_steps = _unstack(stacks, steps)
            dgi, norms, dstate, extras = _backward_loop(
                rec, ctx.compile, record, dout, mask, inputs, dstate, states, saved_steps, params)

        if record:
            ctx.sink.slots[ctx.layer] = norms.float()

        if steps:
            bctx = BackwardContext(dgi, extras, states, saved_steps, h0.shape[-1], stacks,
                                   native=ctx.native is not None)
            grads = tuple(rec.param_grads(bctx))
        else:
            grads = tuple(torch.zeros_like(p) for p in params)
        return (None, None, None, None, dgi, None, None, None, *dstate, *grads)
