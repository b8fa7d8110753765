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
  (direct gradient from the output at t plus what comes back through the recurrence from t+1);
* compile-or-eager: each step (forward and backward) is one small graph compiled with
  TorchInductor (``make_fx`` + ``torch._inductor.compile``; graphs of *one* step, never the
  unrolled sequence), cached per input signature; without a working compiler it falls back to
  eager with one warning. ``compile=False`` or the environment variable ``RNNLAB_COMPILE=0``
  switch it off;
* :class:`RecurrentBase`, the ``nn.Module`` plumbing shared by ``RNN``/``GRU``/``LSTM``
  (parameters named like torch.nn, layers, dropout, ``batch_first``, ``hx``, ``lengths``).

Only torch is imported here.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Recurrence",
    "RecurrenceFunction",
    "RecurrentBase",
    "StepFunction",
    "check_choice",
    "compile_enabled",
    "outer_sum",
]


# --------------------------------------------------------------------------------------------
# small helpers used by the cell files
# --------------------------------------------------------------------------------------------


def check_choice(name: str, value, allowed: Sequence) -> None:
    """Raise ``ValueError`` with one clear line if ``value`` is not one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}; got {value!r}")


def outer_sum(d: Tensor, u: Tensor) -> Tensor:
    """``sum_{t,b} d[t, b, :]ᵀ u[t, b, :]`` as one GEMM: (T, B, G) x (T, B, K) -> (G, K)."""
    return d.reshape(-1, d.shape[-1]).t().mm(u.reshape(-1, u.shape[-1]))


# --------------------------------------------------------------------------------------------
# compile-or-eager
# --------------------------------------------------------------------------------------------

_FALSY = {"0", "false", "no", "off"}


class _CompileState:
    failed: bool = False  # a compile has failed (and said so once); that step function runs eager
    max_signatures: int = 32  # per step function; beyond that new shapes run eager
    # a step function's first signature compiles at once; a further one (a smaller last batch, a
    # validation batch size) only when it has come back this many times: one-off shapes run
    # eager instead of paying seconds of C++ compilation
    compile_after: int = 3


# Tracing and inductor are not thread-safe (two threads compiling at once raised "CURRENT_PATCHER
# is None"): one compile at a time per process.
_COMPILE_LOCK = threading.Lock()


def compile_enabled(flag: bool | None = None) -> bool:
    """Resolve the ``compile`` switch: an explicit bool wins, else ``RNNLAB_COMPILE`` (default on)."""
    if flag is None:
        flag = os.environ.get("RNNLAB_COMPILE", "1").strip().lower() not in _FALSY
    return bool(flag)


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
        if not compile or self._failed:
            return self.fn
        key = _signature(args)
        compiled = self._cache.get(key)
        if compiled is not None:
            return compiled
        if len(self._cache) >= _CompileState.max_signatures:
            return self.fn
        if self._cache:  # not the first shape: wait until it recurs
            seen = self._seen[key] = self._seen.get(key, 0) + 1
            if seen < _CompileState.compile_after:
                return self.fn
        with _COMPILE_LOCK:
            compiled = self._cache.get(key)  # another thread may have compiled it meanwhile
            if compiled is not None or self._failed:
                return compiled or self.fn
            try:
                compiled = _inductor_compile(self.fn, args)
            except Exception as err:  # noqa: BLE001  (no C++ compiler, no triton, a compiler bug)
                # this step function runs eager from now on; others still try
                self._failed = True
                if not _CompileState.failed:
                    _CompileState.failed = True
                    msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    warnings.warn(
                        f"rnnlab.cells: torch compilation failed ({type(err).__name__}: "
                        f"{msg[:160]}); running the recurrent cells eagerly (slower).",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                return self.fn
            self._cache[key] = compiled
        return compiled


_INDUCTOR_OPTIONS = {"pattern_matcher": False}


def _inductor_compile(fn: Callable, args: Sequence[Tensor]) -> Callable:
    import torch._inductor
    from torch.fx.experimental.proxy_tensor import make_fx

    with torch.no_grad():
        gm = make_fx(fn)(*args)
        # no pattern rewrites: they turn "gi + b + h @ W_hhᵀ" into a separate add kernel plus an
        # addmm that first copies that sum into its output; we want mm + one fused kernel
        compiled = torch._inductor.compile(gm, list(args), options=_INDUCTOR_OPTIONS)
        # run once so that a failure at first call (e.g. a missing compiler) shows up here
        compiled(*args)
    return compiled


# --------------------------------------------------------------------------------------------
# the recurrence description supplied by each cell
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recurrence:
    """The equations of one cell variant (see the module docstring for the signatures).

    ``state_sizes(hidden_size)`` gives the width of each state tensor; the first one is ``h``.
    ``num_user_states`` of them come from / go to the user (``hx``, ``h_n``, ``c_n``); the rest
    (e.g. FGR's previous gate activations) start at zero and are internal.
    """

    name: str
    step: Callable
    step_backward: Callable
    param_grads: Callable
    state_sizes: Callable[[int], tuple[int, ...]]
    num_user_states: int = 1

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


class NormSink:
    """Where a layer's backward writes its (T, B) gradient norms."""

    def __init__(self, num_layers: int, steps: int, batch: int):
        self.slots: list[Tensor | None] = [None] * num_layers
        self.steps = steps
        self.batch = batch

    def result(self) -> Tensor | None:
        filled = [s for s in self.slots if s is not None]
        if not filled:
            return None
        out = torch.zeros(
            len(self.slots), self.steps, self.batch, dtype=torch.float32, device=filled[0].device
        )
        for layer, s in enumerate(self.slots):
            if s is not None:
                out[layer, : s.shape[0]] = s
        return out


class _States:
    """The states of one layer over time: ``at(k, t)`` is component k after step t-1 (t = 0: the
    initial state). Component 0 (h) lives in the output tensor itself when there is no mask;
    everything else in (T+1, B, width) buffers."""

    def __init__(self, initial: Sequence[Tensor], buffers: Sequence[Tensor], h_in_output: bool):
        self.initial = tuple(initial)
        self.buffers = tuple(buffers)
        self.h_in_output = h_in_output
        # per component, the T+1 states as a tuple of views (index 0 = initial)
        self.seq = []
        for k, buf in enumerate(self.buffers):
            if k == 0 and h_in_output:
                self.seq.append((self.initial[0], *buf.unbind(0)))
            else:
                self.seq.append(buf.unbind(0))

    def slots(self, t: int) -> tuple[Tensor, ...]:
        return tuple(s[t + 1] for s in self.seq)

    def at(self, t: int) -> tuple[Tensor, ...]:
        return tuple(s[t] for s in self.seq)


class BackwardContext:
    """What ``Recurrence.param_grads`` gets: stacked per-step quantities of one layer."""

    def __init__(self, dgi, extras, states: _States, saved, params, hidden_size):
        self.dgi = dgi  # (T, B, G): dL/d(W_ih x_t), which is also dL/db_ih summed over (T, B)
        self.extras = extras  # tuple of (T, ...) stacks of step_backward's extras
        self._states = states
        self._saved = saved  # per step, the tuple ``step`` saved
        self.params = params
        self.hidden_size = hidden_size

    def outer_prev(self, d: Tensor, k: int = 0) -> Tensor:
        """``Σ_t d_tᵀ s_{t-1}`` for state component ``k`` (d: (T, B, G) -> (G, width))."""
        st = self._states
        if k == 0 and st.h_in_output:  # s_{-1} = h0, s_0..s_{T-2} = output[:-1]: no copy
            out = d[0].t().mm(st.initial[0])
            if d.shape[0] > 1:
                out = out + outer_sum(d[1:], st.buffers[0][:-1])
            return out
        return outer_sum(d, st.buffers[k][:-1])

    def state_prev(self, k: int = 0) -> Tensor:
        """(T, B, width): state component ``k`` entering each step (s_{t-1})."""
        st = self._states
        if k == 0 and st.h_in_output:
            return torch.cat([st.initial[0].unsqueeze(0), st.buffers[0][:-1]])
        return st.buffers[k][:-1]

    def saved(self, j: int) -> Tensor:
        """(T, B, ...): the ``j``-th tensor saved by ``step`` at every step."""
        return torch.stack([s[j] for s in self._saved])


class RecurrenceFunction(torch.autograd.Function):
    """One layer of a recurrent cell over a whole (time-major) sequence, with hand-written BPTT.

    ``apply(rec, compile, sink, layer, gi, mask, inputs, num_states, *state0, *params)`` returns
    ``(output (T, B, H), *final_states)``. ``mask`` is ``None`` or a (T, B, 1) bool tensor;
    ``inputs`` a tuple of non-differentiable (T, B, ...) tensors whose step-t slices go to
    ``step`` and ``step_backward`` (usually empty).
    """

    @staticmethod
    def forward(ctx, rec, compile, sink, layer, gi, mask, inputs, num_states, *rest):
        inputs = tuple(u.detach() for u in inputs)
        state0 = tuple(s.detach() for s in rest[:num_states])
        params = tuple(p.detach() for p in rest[num_states:])
        gi = gi.detach()
        if not gi.is_contiguous():
            gi = gi.contiguous()
        steps, _batch = gi.shape[0], gi.shape[1]
        masked = mask is not None
        n_inputs = len(inputs)
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
        del step_args

        if masked:
            h = buffers[0][1:]
            output = torch.where(mask, h, torch.zeros_like(h))
        else:
            output = buffers[0]
        finals = tuple(s.clone() for s in states.at(steps)[: rec.num_user_states])

        # everything the backward needs goes through save_for_backward, so autograd frees it after
        # the backward pass (and refuses a second pass unless retain_graph=True); the output is
        # saved as an output, so modifying it in place before backward raises as usual
        n_saved = len(saved_steps[0]) if steps else 0
        ctx.rec, ctx.compile, ctx.sink, ctx.layer = rec, compile, sink, layer
        ctx.layout = (len(params), masked, n_inputs, num_states, steps, n_saved)
        ctx.save_for_backward(
            *params,
            *((mask,) if masked else ()),
            *inputs,
            *state0,
            *(output if k == 0 and not masked else b for k, b in enumerate(buffers)),
            *(s for per_step in saved_steps for s in per_step),
        )
        return (output, *finals)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout, *dfinals):
        rec: Recurrence = ctx.rec
        n_params, masked, n_inputs, n, steps, n_saved = ctx.layout
        flat = ctx.saved_tensors
        params, flat = flat[:n_params], flat[n_params:]
        mask = None
        if masked:
            mask, flat = flat[0], flat[1:]
        inputs, flat = flat[:n_inputs], flat[n_inputs:]
        state0, buffers, flat = flat[:n], flat[n : 2 * n], flat[2 * n :]
        saved_steps = [flat[t * n_saved : (t + 1) * n_saved] for t in range(steps)]
        del flat
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
            call = bwd.specialize((*heads[-1], *dstate, *rests[-1]), ctx.compile)
            for t in range(steps - 1, -1, -1):
                out = call(*heads[t], *dstate, *rests[t])
                dstate = out[:n]
                extras_steps[t] = out[n:]
        del heads, rests

        if record:
            ctx.sink.slots[ctx.layer] = norms.float()

        if steps:
            n_extras = len(extras_steps[0])
            extras = tuple(torch.stack([e[j] for e in extras_steps]) for j in range(n_extras))
            bctx = BackwardContext(dgi, extras, states, saved_steps, params, h0.shape[-1])
            grads = tuple(rec.param_grads(bctx))
        else:
            grads = tuple(torch.zeros_like(p) for p in params)
        return (None, None, None, None, dgi, None, None, None, *dstate, *grads)


# --------------------------------------------------------------------------------------------
# the module plumbing shared by RNN, GRU and LSTM
# --------------------------------------------------------------------------------------------


class RecurrentBase(nn.Module):
    """Multi-layer, unidirectional recurrent module shaped like torch.nn.RNN/GRU/LSTM.

    Subclasses set ``self.gate_size`` (rows of ``weight_ih``/``weight_hh``) and implement
    :meth:`recurrence` (the :class:`Recurrence` of the chosen variant) and, if they have extra
    recurrent parameters, :meth:`extra_parameter_shapes` (``{name_without_layer: shape}``;
    parameters are registered as ``f"{name}_l{layer}"``). Optional hooks: :meth:`input_projection`
    (what ``gi`` is, e.g. a normalised ``W_ih x``), :meth:`step_inputs` (per-step random masks
    ...), and :meth:`layer_parameters` when an extra parameter is used outside the recurrence
    (by ``input_projection``) and must not be passed to it.

    Gradient-norm recording: with ``record_grad_norms=True`` every backward pass leaves, in
    ``hidden_grad_norms``, a detached float32 tensor ``(num_layers, T, B)`` holding
    ``‖∂L/∂h_t‖₂`` per layer, time step and sample (time-major and in the original batch order
    whatever ``batch_first``; 0 at padded steps). It is ``None`` after each forward until a
    backward has run through that forward's graph.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        *,
        gate_size: int,
        record_grad_norms: bool = True,
        compile: bool | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive int; got {v!r}")
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ValueError(f"num_layers must be an int >= 1; got {num_layers!r}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1]; got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} has no effect with num_layers=1 (it acts between layers)",
                UserWarning,
                stacklevel=3,
            )
        if compile not in (None, True, False):
            raise ValueError(f"compile must be one of None, True, False; got {compile!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = False
        self.gate_size = gate_size
        self.record_grad_norms = bool(record_grad_norms)
        self.compile = compile
        self._norm_sink: NormSink | None = None
        self._norm_cache: Tensor | None = None

        factory = {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size
            self.register_parameter(
                f"weight_ih_l{layer}", nn.Parameter(torch.empty(gate_size, layer_input, **factory))
            )
            self.register_parameter(
                f"weight_hh_l{layer}",
                nn.Parameter(torch.empty(*self.recurrent_weight_shape(), **factory)),
            )
            if self.bias:
                self.register_parameter(
                    f"bias_ih_l{layer}", nn.Parameter(torch.empty(gate_size, **factory))
                )
                self.register_parameter(
                    f"bias_hh_l{layer}", nn.Parameter(torch.empty(gate_size, **factory))
                )
            for name, shape in self.extra_parameter_shapes().items():
                self.register_parameter(
                    f"{name}_l{layer}", nn.Parameter(torch.empty(*shape, **factory))
                )
        self.reset_parameters()

    # ---- hooks for subclasses -----------------------------------------------------------
    def recurrence(self) -> Recurrence:  # pragma: no cover - abstract
        raise NotImplementedError

    def recurrent_weight_shape(self) -> tuple[int, ...]:
        """Shape of ``weight_hh_l{k}``: a (gate_size, H) matrix; IndRNN's is a vector."""
        return (self.gate_size, self.hidden_size)

    def extra_parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def input_projection(self, layer: int, x: Tensor) -> Tensor:
        """``gi`` of all steps at once, (T, B, gate_size): ``W_ih x_t`` (b_ih is added in the step
        kernel). Differentiated by autograd, like anything a subclass adds here."""
        return F.linear(x, getattr(self, f"weight_ih_l{layer}"))

    def step_inputs(self, layer: int, gi: Tensor) -> tuple[Tensor, ...]:
        """Non-differentiable per-step inputs of ``layer``'s recurrence, each (T, B, ...) with
        T = ``gi.shape[0]``; step t of ``Recurrence.step``/``step_backward`` gets their t-th
        slices as trailing arguments. None by default."""
        return ()

    def reset_parameters(self) -> None:
        """Uniform(-1/√H, 1/√H) for every parameter, like torch.nn."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    # ---- gradient-norm record -----------------------------------------------------------
    @property
    def hidden_grad_norms(self) -> Tensor | None:
        if self._norm_cache is None and self._norm_sink is not None:
            self._norm_cache = self._norm_sink.result()
        return self._norm_cache

    @hidden_grad_norms.setter
    def hidden_grad_norms(self, value) -> None:
        self._norm_sink = None
        self._norm_cache = value

    # ---- forward -------------------------------------------------------------------------
    def layer_parameters(self, layer: int) -> tuple[Tensor, ...]:
        """(weight_hh, bias_ih, bias_hh, *extras) of one layer, as ``Recurrence`` expects them
        (zero biases when ``bias=False``)."""
        w_hh = getattr(self, f"weight_hh_l{layer}")
        if self.bias:
            b_ih = getattr(self, f"bias_ih_l{layer}")
            b_hh = getattr(self, f"bias_hh_l{layer}")
        else:
            b_ih = b_hh = torch.zeros(self.gate_size, dtype=w_hh.dtype, device=w_hh.device)
        extras = tuple(getattr(self, f"{n}_l{layer}") for n in self.extra_parameter_shapes())
        return (w_hh, b_ih, b_hh, *extras)

    # a model-level torch.compile must not trace (unroll) the time loop: the step graphs are
    # compiled here, one step at a time
    @torch.compiler.disable
    def _run(self, input: Tensor, hx: tuple[Tensor, ...] | None, lengths):
        rec = self.recurrence()
        nu = rec.num_user_states
        if input.dim() not in (2, 3):
            raise ValueError(f"input must be 2-D (unbatched) or 3-D; got shape {tuple(input.shape)}")
        unbatched = input.dim() == 2
        if unbatched:
            input = input.unsqueeze(1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx)
        elif self.batch_first:
            input = input.transpose(0, 1)
        steps, batch, feat = input.shape
        if feat != self.input_size:
            raise ValueError(f"input.size(-1) must be input_size={self.input_size}; got {feat}")
        H = self.hidden_size
        if hx is not None:
            for h in hx:
                if h.shape != (self.num_layers, batch, H):
                    raise ValueError(
                        "hx must have shape (num_layers, batch, hidden_size)="
                        f"{(self.num_layers, batch, H)}; got {tuple(h.shape)}"
                    )

        # variable lengths -> (T_max, B, 1) validity mask, or None when every sequence is full
        mask = None
        run_steps = steps
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            if lengths.dim() != 1 or lengths.numel() != batch:
                raise ValueError(
                    f"lengths must be a 1-D tensor of batch size {batch}; got shape "
                    f"{tuple(lengths.shape)}"
                )
            lengths_cpu = lengths.detach().to("cpu", torch.int64)
            if batch and (int(lengths_cpu.min()) < 0 or int(lengths_cpu.max()) > steps):
                raise ValueError(f"lengths must lie in [0, {steps}] (the sequence length)")
            run_steps = int(lengths_cpu.max()) if batch else 0
            if batch and int(lengths_cpu.min()) < run_steps:
                t = torch.arange(run_steps).unsqueeze(1)
                mask = (t < lengths_cpu.unsqueeze(0)).unsqueeze(-1).to(input.device)
            input = input[:run_steps]

        compile = compile_enabled(self.compile)
        record = self.record_grad_norms and torch.is_grad_enabled()
        sink = NormSink(self.num_layers, steps, batch) if record else None
        self._norm_sink, self._norm_cache = sink, None

        dtype, device = input.dtype, input.device
        widths = rec.state_sizes(H)
        x = input
        finals = [[] for _ in range(nu)]
        for layer in range(self.num_layers):
            # all steps' input projections in one matmul (b_ih is added in the step kernel)
            gi = self.input_projection(layer, x)
            state0 = []
            for k, width in enumerate(widths):
                if k < nu and hx is not None:
                    state0.append(hx[k][layer].contiguous())
                else:
                    state0.append(torch.zeros(batch, width, dtype=dtype, device=device))
            out, *fin = RecurrenceFunction.apply(
                rec, compile, sink, layer, gi, mask, self.step_inputs(layer, gi), len(widths),
                *state0,
                *self.layer_parameters(layer),
            )
            for k in range(nu):
                finals[k].append(fin[k])
            if layer < self.num_layers - 1 and self.dropout > 0 and self.training:
                out = F.dropout(out, self.dropout, True)
            x = out
        output = x
        if run_steps < steps:
            output = F.pad(output, (0, 0, 0, 0, 0, steps - run_steps))
        finals = tuple(torch.stack(f) for f in finals)
        if unbatched:
            return output.squeeze(1), tuple(f.squeeze(1) for f in finals)
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, finals

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s
