"""What every backend of the recurrence shares: the interface, the states' layout, the record.

A *backend* runs one layer's time loops, forward and backward, for
:class:`~rnnlab.cells.recurrence.RecurrenceFunction`: step by step (``step.py``), as one C++
function on the CPU (``native.py``) or as one CUDA graph (``cuda_graph.py``). All of them compute
the cell's own equations and leave the same things behind: the state buffers (laid out as
:class:`States` says), what each step saved (per step, or stacked over time), and in the
backward ∂L/∂gi, the ∂L/∂h_t norms, ∂L/∂state_0 and the stacked extras; the parameter gradients
are computed by the recurrence from those, whichever backend ran.

The record: every layer call counts its backend (:func:`count`), and a backend that would have
run but could not (a failed build, an unsupported platform, a failed capture) says why
(:func:`note_fallback`); :func:`used` returns both since a :func:`mark` (a run writes them into
results.json as ``backends``). Only torch is imported here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from torch import Tensor

__all__ = ["Backend", "States", "count", "mark", "note_fallback", "used"]


class States:
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


class Backend:
    """One way of running a layer's time loops. Subclasses set ``name`` (the key in the table,
    ``backends.BACKENDS``) and implement the four methods; one instance serves every call."""

    name = ""
    takes_any_batch = False  # no zero rows padded in to reuse a compiled batch size (base.py)
    native_products = False  # the layer's sequence-level products use the native GEMM too

    def applies(self, rec, compile: bool, x: Tensor, tensors: Sequence[Tensor]) -> bool:
        """Whether this backend is asked for and computes this call: ``rec`` (the Recurrence),
        ``x`` the (T, B, ·) input of the stack, ``tensors`` the others of the call (initial
        states, parameters), ``compile`` the step functions' switch."""
        raise NotImplementedError

    def unavailable(self) -> str | None:
        """Why a backend that applies cannot run here (one line: a failed build, an unsupported
        platform), or None: it runs. The rule then falls back to the next one and records it."""
        return None

    def label(self, compile: bool) -> str:
        """The backend's name in the record."""
        return self.name

    def forward(self, rec, compile: bool, gi: Tensor, mask: Tensor | None,
                inputs: tuple[Tensor, ...], state0: tuple[Tensor, ...],
                params: tuple[Tensor, ...]):
        """One layer's forward loop: ``(buffers, stacks, saved_steps)``: the state buffers
        (:class:`States`' layout) and what ``rec.step`` saved, either stacked over time
        (``stacks``, a tuple of (T, ...) tensors; ``saved_steps`` None) or per step
        (``saved_steps``, a list of tuples; ``stacks`` None)."""
        raise NotImplementedError

    def backward(self, rec, compile: bool, record: bool, dout: Tensor, mask: Tensor | None,
                 inputs: tuple[Tensor, ...], dstate: tuple[Tensor, ...], states: States,
                 stacks, saved_steps, params: tuple[Tensor, ...]):
        """The reverse loop over what :meth:`forward` left (``stacks``/``saved_steps`` as it
        returned them): ``(dgi (T, B, G), norms (T, B) or None, dstate_0, extras)``, the extras
        of ``rec.step_backward`` stacked over time."""
        raise NotImplementedError


# ---- the record --------------------------------------------------------------------------

_CALLS: dict[str, int] = {}  # label -> layer calls run by that backend
_FELL_BACK: dict[str, int] = {}  # backend name -> calls that fell back from it
_REASONS: dict[str, str] = {}  # backend name -> why (the latest reason)


def count(label: str, calls: int = 1) -> None:
    """``calls`` layer calls ran on the backend ``label`` (``Backend.label``)."""
    _CALLS[label] = _CALLS.get(label, 0) + calls


def note_fallback(name: str, reason: str, calls: int = 1) -> None:
    """``calls`` layer calls that backend ``name`` applied to ran elsewhere, because of
    ``reason`` (one line)."""
    _FELL_BACK[name] = _FELL_BACK.get(name, 0) + calls
    _REASONS[name] = reason


def mark() -> dict[str, dict[str, int]]:
    """A mark for :func:`used`: the counts so far."""
    return {"calls": dict(_CALLS), "fell_back": dict(_FELL_BACK)}


def used(since: dict | None = None) -> dict:
    """The backends the layer calls ran on since ``since`` (a :func:`mark`; None: since the
    process started): ``{label: calls, ..., "fallbacks": {backend: reason}}``, the fallbacks
    those that happened since then (``{}`` when none did)."""
    since = since or {}
    before, fell = since.get("calls", {}), since.get("fell_back", {})
    out: dict = {label: n - before.get(label, 0) for label, n in sorted(_CALLS.items())
                 if n > before.get(label, 0)}
    out["fallbacks"] = {name: _REASONS[name] for name, n in sorted(_FELL_BACK.items())
                        if n > fell.get(name, 0)}
    return out
