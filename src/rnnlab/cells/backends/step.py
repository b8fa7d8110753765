"""The per-step backend: a layer's time loops as one call per time step and direction.

Each step is the Recurrence's ``step`` (forward) or ``step_backward`` (backward) wrapped by
:func:`make_forward` / :func:`make_backward` (the mask, the state slots, the total ∂L/∂h_t and its
norm) and compiled with TorchInductor or run eager (``compile_cache.StepFunction``, cached on the
Recurrence: ``Recurrence.forward_fn``/``backward_fn``). Every argument of every step is known
before the loop (the states live in preallocated buffers), so the loop itself is only the calls.
This backend runs every cell, on every device and dtype, under autocast too: the others fall
back to it. Only torch is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .base import Backend, States

__all__ = ["Step", "backward_loop", "forward_loop", "make_backward", "make_forward", "unstack"]


def make_forward(rec, masked: bool, n_inputs: int = 0) -> Callable:
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


def make_backward(
    rec, masked: bool, record: bool, n_saved: int, n_inputs: int = 0
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


def forward_loop(rec, compile: bool, gi: Tensor, mask: Tensor | None,
                  inputs: tuple[Tensor, ...], state0: tuple[Tensor, ...],
                  params: tuple[Tensor, ...]) -> tuple[list[Tensor], list[tuple]]:
    """One layer's time loop: the state buffers (component 0 is the output itself when there is
    no mask: :class:`States`) and, per step, the tuple ``step`` saved."""
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
    states = States(state0, buffers, h_in_output=not masked)
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


def backward_loop(rec, compile: bool, record: bool, dout: Tensor,
                   mask: Tensor | None, inputs: tuple[Tensor, ...], dstate: tuple[Tensor, ...],
                   states: States, saved_steps: Sequence[tuple], params: tuple[Tensor, ...]):
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


def unstack(stacked: Sequence[Tensor], steps: int) -> list[tuple]:
    """Per step, the tuple of saved tensors (views of the (T, ...) stacks)."""
    return list(zip(*(s.unbind(0) for s in stacked))) if stacked else [()] * steps


class Step(Backend):
    """The loops step by step, each step compiled (``compile``) or eager."""

    name = "step"

    def applies(self, rec, compile, x, tensors) -> bool:
        return True

    def label(self, compile: bool) -> str:
        return "step/compiled" if compile else "step/eager"

    def forward(self, rec, compile, gi, mask, inputs, state0, params):
        buffers, saved_steps = forward_loop(rec, compile, gi, mask, inputs, state0, params)
        return buffers, None, saved_steps

    def backward(self, rec, compile, record, dout, mask, inputs, dstate, states, stacks,
                 saved_steps, params):
        if saved_steps is None:
            saved_steps = unstack(stacks, dout.shape[0])
        return backward_loop(rec, compile, record, dout, mask, inputs, dstate, states,
                             saved_steps, params)
