"""The backends of the recurrence: the ways of running one layer's time loops, behind one
interface (:class:`~rnnlab.cells.backends.base.Backend`), in one table, picked by one rule.

===============  ===========================================================================
``cuda_graph``   each loop one CUDA graph (``RNNLAB_CUDA_GRAPHS=1``, CUDA tensors):
                 ``cuda_graph.py``
``native``       each loop one C++ function on the CPU (the LSTM ``torch``/``np``, GRU
                 ``gru``/reset ``after``, tanh/ReLU RNN and IndRNN equations, no layer norm or
                 zoneout, float32/float64, no autocast; ``RNNLAB_NATIVE=0`` turns it off):
                 ``native.py``
``step``         one call per step and direction, each step compiled with TorchInductor or eager
                 (``compile``, ``RNNLAB_COMPILE``): ``step.py``; runs everything
===============  ===========================================================================

:func:`choose` is the rule: the first backend of :data:`ORDER` that applies to the call and is
available here. A stack's forward (``base.RecurrentBase``) chooses once for all its layers and
their forward and backward loops, and records the choice (:func:`count`) and every backend that
applied but could not run, with the reason (:func:`note_fallback`); :func:`used` reads the record
(results.json's ``backends``). Only torch is imported here.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from .base import Backend, States, count, mark, note_fallback, used
from .cuda_graph import CudaGraphs
from .native import Native
from .step import Step

__all__ = ["BACKENDS", "ORDER", "Backend", "States", "choose", "count", "mark", "note_fallback",
           "used"]

BACKENDS: dict[str, Backend] = {b.name: b for b in (CudaGraphs(), Native(), Step())}
ORDER = ("cuda_graph", "native", "step")  # the preference; "step" runs whatever the others don't


def choose(rec, compile: bool, x: Tensor, tensors: Sequence[Tensor] = ()
           ) -> tuple[Backend, tuple[tuple[str, str], ...]]:
    """``(backend, fallbacks)`` for a call of ``rec`` on ``x`` (the (T, B, ·) input; ``tensors``
    the call's other tensors: initial states, parameters): the first backend of :data:`ORDER`
    that applies and is available; ``fallbacks`` the ``(name, reason)`` of each one before it
    that applied but is unavailable. An empty sequence runs step by step. Nothing is recorded
    here (:func:`count`, :func:`note_fallback`)."""
    fallbacks = []
    if x.shape[0]:
        for name in ORDER:
            backend = BACKENDS[name]
            if not backend.applies(rec, compile, x, tensors):
                continue
            reason = backend.unavailable()
            if reason is None:
                return backend, tuple(fallbacks)
            fallbacks.append((name, reason))
    return BACKENDS["step"], tuple(fallbacks)
