"""The CUDA-graph backend: a layer's whole time loop as one CUDA graph (the scratch cells on a GPU).

On a GPU the per-step loop is launch-bound: a layer's forward is T steps of (matmul + one fused
kernel) and its backward the same, each launched from Python at some 10–20 µs apiece, while the
kernels themselves take a few µs. A :class:`GraphedLoop` captures one layer's whole forward (or
backward) loop, every launch of every step, into a CUDA graph the first time an input signature
is seen, and afterwards replays it: one launch per loop. Nothing about the equations changes:
the graph replays the very kernels the loop launches, so the hand-written backward and the exact
∂L/∂h_t record are the same computation.

A graph reads and writes fixed addresses. So each call copies its inputs into the graph's own
(static) input tensors, replays, and returns *clones* of the static outputs: two loops in flight
(two layers of one shape, several forwards before a backward) never share storage. The step
functions are compiled in the warm-up run before the capture, never inside it
(``compile_cache.frozen``); a step signature that is not compiled by then (a later batch size
waits until it recurs: ``compile_cache``) is captured as the eager steps it ran. A signature beyond
``MAX_GRAPHS`` per loop (ragged sequence lengths) runs the plain loop; so does everything once a
capture has failed (one warning).

Off unless ``RNNLAB_CUDA_GRAPHS=1``: not yet measured on a GPU (docs/benchmarks.md, "CUDA").
Only CUDA tensors, and never inside another capture. The loops captured are the per-step
backend's (``step.py``), over flat tensor tuples, with the per-step saved tensors stacked over
time so that copying them in and out is one copy each. A failed capture, or a loop beyond
``MAX_GRAPHS`` signatures, runs the plain loop and is recorded as a fallback
(``base.note_fallback``). Only torch is imported here.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..compile_cache import _COMPILE_LOCK, _signature, env_flag, frozen
from .base import Backend, States, note_fallback
from .step import backward_loop, forward_loop, unstack

__all__ = ["CudaGraphBackend", "CudaGraphs", "GraphedLoop", "clear", "graphed_backward",
           "graphed_forward", "graphs_enabled"]

MAX_GRAPHS = 8  # per loop: each graph keeps its static inputs and outputs in device memory


class CudaGraphBackend:
    """Capture with ``torch.cuda.graph`` (after a warm-up run on a side stream, as torch's CUDA
    graph notes advise: lazy cuBLAS/Triton initialisation must not happen during capture)."""

    def supports(self, tensor: Tensor) -> bool:
        return tensor.is_cuda and not torch.cuda.is_current_stream_capturing()

    def capture(self, fn: Callable, static_in: Sequence[Tensor]):
        """``(replay, static_out)``: the outputs' storage is fixed; ``replay()`` refills it."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn(*static_in)  # warm-up: compiles the step graphs for this signature
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: another thread's legal work (a DDP watchdog, a data loader pinning
        # memory) does not break this capture; the compile lock keeps compiles out meanwhile
        with frozen(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = fn(*static_in)
        return graph.replay, tuple(static_out)


def graphs_enabled(tensor: Tensor) -> bool:
    """Whether a loop over ``tensor``'s device runs as a graph: ``RNNLAB_CUDA_GRAPHS`` on and a
    backend that can capture there."""
    return env_flag("RNNLAB_CUDA_GRAPHS", False) and GraphedLoop.backend.supports(tensor)


_LOOPS: weakref.WeakSet = weakref.WeakSet()


def clear() -> None:
    """Drop every captured graph (and the device memory its static tensors hold); the next call
    of each signature captures again."""
    for loop in list(_LOOPS):
        loop._graphs.clear()
        loop._failed = False


class GraphedLoop:
    """``fn`` (tensors in, a tuple of fresh tensors out) run as one captured graph per input
    signature (shapes, strides, dtypes, alignment, autocast state: ``compile_cache._signature``)
    and inference mode (Lightning validates under ``torch.inference_mode``, whose tensors cannot
    be refilled outside it). One call at a time per loop: the static tensors are shared.
    """

    backend = CudaGraphBackend()  # the tests swap in one that replays on the CPU
    _warned = False

    def __init__(self, fn: Callable, name: str):
        self.fn = fn
        self.name = name
        self._graphs: dict[tuple, tuple] = {}
        self._failed = False
        self._failure = ""
        self._lock = threading.Lock()
        _LOOPS.add(self)

    def __call__(self, *args: Tensor) -> tuple[Tensor, ...]:
        key = (torch.is_inference_mode_enabled(), *_signature(args))
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None and not self._failed and len(self._graphs) < MAX_GRAPHS:
                entry = self._capture(key, args)
            if entry is not None:
                static_in, replay, static_out = entry
                for static, arg in zip(static_in, args):
                    static.copy_(arg)
                replay()
                return tuple(out.clone() for out in static_out)
            if self._failed:
                note_fallback("cuda_graph", self._failure)
            else:
                note_fallback("cuda_graph", f"{self.name}: more than {MAX_GRAPHS} input "
                              "signatures; the plain loop ran")
        return tuple(self.fn(*args))  # beyond the limit, or after a failed capture

    def _capture(self, key: tuple, args: Sequence[Tensor]) -> tuple | None:
        static_in = tuple(a.clone() for a in args)
        try:
            with _COMPILE_LOCK:
                replay, static_out = self.backend.capture(self.fn, static_in)
        except Exception as err:  # noqa: BLE001  (an op that cannot be captured, a driver)
            self._failed = True
            text = str(err).strip()
            self._failure = (f"capturing {self.name} failed ({type(err).__name__}: "
                             f"{text.splitlines()[0][:160] if text else ''})")
            if not GraphedLoop._warned:
                GraphedLoop._warned = True
                warnings.warn(f"rnnlab.cells: capturing {self.name} as a CUDA graph failed "
                              f"({type(err).__name__}: {str(err).strip()[:160]}); its loop "
                              "runs step by step (slower).", RuntimeWarning, stacklevel=4)
            return None
        entry = self._graphs[key] = (static_in, replay, static_out)
        return entry


def graphed_forward(rec, compile: bool, masked: bool, n_inputs: int, n: int) -> GraphedLoop:
    """The forward loop of ``rec`` as a GraphedLoop over (gi, [mask], *inputs, *state0,
    *params) -> (*buffers, *stacks); one per combination, kept on the Recurrence."""
    key = ("graph_fwd", compile, masked, n_inputs)
    if key not in rec._fns:
        def loop(gi, *rest):
            mask, rest = (rest[0], rest[1:]) if masked else (None, rest)
            inputs, state0, params = (rest[:n_inputs], rest[n_inputs:n_inputs + n],
                                      rest[n_inputs + n:])
            buffers, saved_steps = forward_loop(rec, compile, gi, mask, inputs, state0, params)
            return (*buffers, *(torch.stack(s) for s in zip(*saved_steps)))

        rec._fns[key] = GraphedLoop(loop, f"{rec.name}.forward")
    return rec._fns[key]


def graphed_backward(rec, compile: bool, record: bool, masked: bool, n_inputs: int, n: int,
                     n_saved: int) -> GraphedLoop:
    """The backward loop as a GraphedLoop over (dout, [mask], *inputs, *dstate, *state0,
    *buffers, *stacks, *params) -> (dgi, [norms], *dstate_0, *extras)."""
    key = ("graph_bwd", compile, record, masked, n_inputs, n_saved)
    if key not in rec._fns:
        def loop(dout, *rest):
            mask, rest = (rest[0], rest[1:]) if masked else (None, rest)
            inputs, rest = rest[:n_inputs], rest[n_inputs:]
            dstate, state0, buffers, rest = rest[:n], rest[n:2 * n], rest[2 * n:3 * n], rest[3 * n:]
            stacked, params = rest[:n_saved], rest[n_saved:]
            states = States(state0, buffers, h_in_output=not masked)
            saved_steps = unstack(stacked, dout.shape[0])
            dgi, norms, dstate0, extras = backward_loop(
                rec, compile, record, dout, mask, inputs, dstate, states, saved_steps, params)
            return (dgi, *((norms,) if record else ()), *dstate0, *extras)

        rec._fns[key] = GraphedLoop(loop, f"{rec.name}.backward")
    return rec._fns[key]


class CudaGraphs(Backend):
    """Each loop one CUDA graph per input signature (``RNNLAB_CUDA_GRAPHS=1``, CUDA tensors); the
    steps inside compiled (``compile``) or eager, as the per-step backend's."""

    name = "cuda_graph"

    def applies(self, rec, compile, x, tensors) -> bool:
        return graphs_enabled(x)

    def label(self, compile: bool) -> str:
        return "cuda_graph/compiled" if compile else "cuda_graph/eager"

    def forward(self, rec, compile, gi, mask, inputs, state0, params):
        n = len(state0)
        out = graphed_forward(rec, compile, mask is not None, len(inputs), n)(
            gi, *((mask,) if mask is not None else ()), *inputs, *state0, *params)
        return list(out[:n]), out[n:], None

    def backward(self, rec, compile, record, dout, mask, inputs, dstate, states, stacks,
                 saved_steps, params):
        n = len(dstate)
        if stacks is None:  # not from this backend's forward: stack what each step saved
            stacks = tuple(torch.stack(s) for s in zip(*saved_steps))  # () if none saved
        out = graphed_backward(rec, compile, record, mask is not None, len(inputs), n,
                               len(stacks))(
            dout, *((mask,) if mask is not None else ()), *inputs, *dstate, *states.initial,
            *states.buffers, *stacks, *params)
        dgi, out = out[0], out[1:]
        norms, out = (out[0], out[1:]) if record else (None, out)
        return dgi, norms, tuple(out[:n]), tuple(out[n:])
