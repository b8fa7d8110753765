"""Compile-or-eager for the per-step graphs of the scratch cells.

Each step function (forward and backward of one time step, or a pointwise kernel over the whole
sequence) is one small graph compiled with TorchInductor (``make_fx`` +
``torch._inductor.compile``; graphs of *one* step, never the unrolled sequence), cached per input
signature and autocast state. ``compile=False`` on a cell or the environment variable
``RNNLAB_COMPILE=0`` switch compilation off. Only torch is imported here.

The first compile of each cell's graphs in a process is announced in one line (announce.py).
A step function whose compile fails runs eager from then on, with one warning per process;
:func:`eager_fallbacks` says which step functions ran eager since a mark (a run records them in
results.json: eager changes its speed), and ``RNNLAB_COMPILE_ERRORS=full`` puts the compiler's
whole message in the warning.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .announce import announce

__all__ = ["StepFunction", "compile_enabled", "eager_fallbacks", "frozen"]


_FALSY = {"0", "false", "no", "off"}


class _CompileState:
    failed: bool = False  # a compile has failed (and said so once); that step function runs eager
    max_signatures: int = 32  # per step function; beyond that new shapes run eager
    # a step function's first signature compiles at once; a further one (a smaller last batch, a
    # validation batch size) only when it has come back this many times: one-off shapes run
    # eager instead of paying seconds of C++ compilation
    compile_after: int = 3


# Step functions whose compilation failed: name -> the error, one line. And each call of one of
# them (so that a run can say which ran eager in it, not in an earlier job of the process).
_FAILURES: dict[str, str] = {}
_EAGER_CALLS: dict[str, int] = {}
# The cells whose first compile in this process has been announced (announce.py): one line each.
_ANNOUNCED: set[str] = set()


def eager_fallbacks(since: dict[str, int] | None = None) -> dict[str, str]:
    """Step functions that failed to compile and ran eager: name -> error. With ``since`` (an
    earlier ``eager_calls()``), only those called eager after it."""
    since = since or {}
    return {name: _FAILURES[name] for name, calls in _EAGER_CALLS.items()
            if calls > since.get(name, 0)}


def eager_calls() -> dict[str, int]:
    """A mark for :func:`eager_fallbacks`: how often each failed step function has run eager."""
    return dict(_EAGER_CALLS)


# Tracing and inductor are not thread-safe (two threads compiling at once raised "CURRENT_PATCHER
# is None"): one compile at a time per process. Re-entrant: a CUDA graph capture holds it (no
# other thread may compile meanwhile) while its own warm-up compiles (loop_graph.py).
_COMPILE_LOCK = threading.RLock()


# While a CUDA graph is being captured nothing may compile (tracing and the first-call check
# run kernels and synchronise): a step function then serves what it has compiled, or runs eager.
_FROZEN = threading.local()


class frozen:  # lower case: a context manager, like torch.no_grad
    """``with frozen():`` no step function compiles a new signature in this thread."""

    def __enter__(self):
        self._before = getattr(_FROZEN, "on", False)
        _FROZEN.on = True

    def __exit__(self, *exc):
        _FROZEN.on = self._before


def env_flag(name: str, default: bool) -> bool:
    """An on/off environment switch: 0, false, no, off are off; unset or empty, ``default``."""
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value not in _FALSY


def compile_enabled(flag: bool | None = None) -> bool:
    """Resolve the ``compile`` switch: an explicit bool wins, else ``RNNLAB_COMPILE``
    (default on)."""
    return env_flag("RNNLAB_COMPILE", True) if flag is None else bool(flag)


def _signature(args: Sequence[Tensor]) -> tuple:
    """What a compiled step is specialised on: each argument's shape, strides, dtype, device and
    alignment, and the autocast state (a graph traced under bf16 autocast has the casts baked in
    and must not serve a float32 call, nor the reverse)."""
    device = args[0].device.type if args else "cpu"
    autocast = (torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device)
                else None)
    return (autocast, *(
        (tuple(a.shape), a.stride(), a.dtype, a.device, a.data_ptr() % 16 == 0) for a in args))


class StepFunction:
    """A per-step function compiled with TorchInductor once per input signature.

    ``fn`` takes tensors only and returns a tuple of tensors. :meth:`specialize` returns a callable
    for arguments shaped like ``args`` (the compiled graph, or ``fn`` itself when compilation is
    off or unavailable). The compiled callable bypasses TorchDynamo (the function is traced with
    ``make_fx`` and handed to ``torch._inductor.compile``), which saves the guard evaluation on
    every call: 100 time steps make 200 calls per layer per training step, so per-call overhead
    matters as much as the kernels themselves.

    The first signature is compiled at once, later ones once they recur (``compile_after``).
    """

    def __init__(self, fn: Callable, name: str):
        self.fn = fn
        self.name = name
        self._cache: dict[tuple, Callable] = {}
        self._seen: dict[tuple, int] = {}
        self._failed = False

    def specialize(self, args: Sequence[Tensor], compile: bool) -> Callable:
        if not compile:
            return self.fn
        if self._failed:
            _EAGER_CALLS[self.name] = _EAGER_CALLS.get(self.name, 0) + 1
            return self.fn
        key = _signature(args)
        compiled = self._cache.get(key)
        if compiled is not None:
            return compiled
        if len(self._cache) >= _CompileState.max_signatures or getattr(_FROZEN, "on", False):
            return self.fn
        if self._cache:  # not the first shape: wait until it recurs
            if len(self._seen) >= 4 * _CompileState.max_signatures:
                self._seen.clear()  # bounded: shapes that came once or twice long ago start over
            seen = self._seen[key] = self._seen.get(key, 0) + 1
            if seen < _CompileState.compile_after:
                return self.fn
        with _COMPILE_LOCK:
            compiled = self._cache.get(key)  # another thread may have compiled it meanwhile
            if compiled is not None or self._failed:
                return compiled or self.fn
            family = self.name.partition(".")[0]  # the cell: "lstm_vanilla", "gru_gru_before"
            if family not in _ANNOUNCED:
                _ANNOUNCED.add(family)
                announce(f"compiling the per-step graphs of {family} with TorchInductor (first "
                         "use: seconds; RNNLAB_COMPILE=0 runs them eager)")
            try:
                compiled = _inductor_compile(self.fn, args)
            except Exception as err:  # noqa: BLE001  (no C++ compiler, no triton, a compiler bug)
                # this step function runs eager from now on; others still try
                self._failed = True
                text = str(err).strip()
                _FAILURES[self.name] = (f"{type(err).__name__}: "
                                        f"{text.splitlines()[0][:160] if text else ''}")
                _EAGER_CALLS[self.name] = _EAGER_CALLS.get(self.name, 0) + 1
                full = os.environ.get("RNNLAB_COMPILE_ERRORS", "").strip().lower() == "full"
                if full or not _CompileState.failed:
                    _CompileState.failed = True
                    warnings.warn(
                        f"rnnlab.cells: torch compilation of {self.name} failed "
                        f"({text if full else _FAILURES[self.name]}); running it and any other "
                        "step function that fails eagerly (slower)"
                        + ("" if full else "; RNNLAB_COMPILE_ERRORS=full shows the compiler's "
                           "whole message"),
                        RuntimeWarning,
                        stacklevel=4,
                    )
                return self.fn
            self._cache[key] = compiled
        return compiled


# pattern_matcher: see below. size_asserts: the cache key (_signature) already pins every input's
# shape and strides, so the generated code's per-call checks of each input are redundant.
# cpp.vec_isa_ok: take the SIMD level /proc/cpuinfo reports instead of first building and loading a
# probe library per level: 2.5 s of a 7.2 s cold first call (GRU, empty inductor cache, 2 cores).
# Should the compiler not build for it after all, the step's compile fails and it runs eager.
_INDUCTOR_OPTIONS = {"pattern_matcher": False, "size_asserts": False, "cpp.vec_isa_ok": True}


def _inductor_compile(fn: Callable, args: Sequence[Tensor]) -> Callable:
    import torch._inductor
    from torch._guards import TracingContext, tracing
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    with torch.no_grad():
        gm = make_fx(fn)(*args)
        # A tracing context whose fake mode has a ShapeEnv (empty: every shape is static): without
        # one inductor bypasses its FX graph cache ("No shape env") and generates and loads each
        # graph's code anew in every process -- about 1 s per step function of every run.
        fake_mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
        with tracing(TracingContext(fake_mode)):
            # no pattern rewrites: they turn "gi + b + h @ W_hhᵀ" into a separate add kernel plus
            # an addmm that first copies that sum into its output; we want mm + one fused kernel
            compiled = torch._inductor.compile(gm, list(args), options=_INDUCTOR_OPTIONS)
        # run once so that a failure at first call (e.g. a missing compiler) shows up here
        expected = compiled(*args)
        return _direct(compiled, args, expected) or compiled


def _direct(compiled: Callable, args: Sequence[Tensor], expected) -> Callable | None:
    """The generated code itself, without the layers that wrap it (TorchDynamo's disable, AOT's
    runtime wrapper, the graph object's bookkeeping): 7–8 µs less per call, i.e. per time step
    (measured at B=16, H=128: the LSTM's forward step 60 -> 52 µs). Used only if it gives the
    wrapped function's outputs on the compile-time arguments; otherwise None (keep the wrapper)."""
    inner = getattr(compiled, "current_callable", None)
    if not callable(inner):
        return None
    try:
        got = inner(list(args))
    except Exception:  # noqa: BLE001  (another calling convention: keep the wrapper)
        return None
    same = (isinstance(got, (tuple, list)) and len(got) == len(expected)
            and all(isinstance(a, Tensor) and a.shape == b.shape and a.stride() == b.stride()
                    and torch.equal(a, b) for a, b in zip(got, expected)))
    if not same:
        return None

    def call(*a):
        return inner(list(a))

    return call
