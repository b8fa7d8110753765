"""``StackBase``: what every scratch stack shares (its sizes and flags checked and kept like
torch.nn's, torch.nn's uniform initialisation, dropout between layers, the gradient-norm record,
``extra_repr``); ``RecurrentBase``: on top of it, the classic scratch cells' plumbing (RNN, GRU,
LSTM, IndRNN): parameters named like torch.nn, ``batch_first``, ``hx``, ``lengths``
(``sequence.py``), and one :class:`~rnnlab.cells.recurrence.RecurrenceFunction` per layer, on
the backend ``backends.choose`` picks once per forward call (and records).
minGRU and minLSTM (``minrnn.py``) build on ``StackBase`` alone. Only torch is imported here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config.errors import check_choice
from . import backends
from .compile_cache import compile_enabled
from .gradnorms import GradNormRecord, NormSink
from .init import uniform_init
from .projection import InputProjection
from .recurrence import Recurrence, RecurrenceFunction
from .sequence import Sequence, check_module_args

__all__ = ["RecurrentBase", "StackBase"]


def _pad_batch(x: Tensor, hx, mask, pad: int):
    """``pad`` zero rows more: inputs and initial states 0, and (ragged batches) never valid."""
    x = F.pad(x, (0, 0, 0, pad))
    if hx is not None:
        hx = tuple(F.pad(h, (0, 0, 0, pad)) for h in hx)
    if mask is not None:
        mask = torch.cat([mask, mask.new_zeros(mask.shape[0], pad, 1)], 1)
    return x, hx, mask


class StackBase(GradNormRecord, nn.Module):
    """A multi-layer, unidirectional stack shaped like torch.nn.RNN/GRU/LSTM: the constructor's
    shared arguments (checked, kept under torch.nn's attribute names), the default
    initialisation, dropout between layers and ``extra_repr``. Subclasses register the
    parameters (``gate_size`` rows each) and implement ``forward``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool,
                 batch_first: bool, dropout: float, *, gate_size: int, record_grad_norms: bool,
                 compile: bool | None):
        super().__init__()
        check_module_args(input_size, hidden_size, num_layers, dropout)
        check_choice("compile", compile, (None, True, False))
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

    def reset_parameters(self) -> None:
        """Uniform(-1/√H, 1/√H) for every parameter, like torch.nn."""
        uniform_init(self, self.hidden_size)

    def between_layers(self, out: Tensor, layer: int) -> Tensor:
        """The output of ``layer`` as the next layer's input: dropout while training, between
        layers only (torch.nn's rule)."""
        if layer < self.num_layers - 1 and self.dropout > 0 and self.training:
            return F.dropout(out, self.dropout, True)
        return out

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


class RecurrentBase(StackBase):
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
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         gate_size=gate_size, record_grad_norms=record_grad_norms,
                         compile=compile)
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
        w = getattr(self, f"weight_ih_l{layer}")
        if x.device.type == "cpu" and not torch.is_autocast_enabled("cpu"):
            # the same, with a faster backward on the CPU; and where the layer's loops run
            # native (the forward's rule, on the same input), on their GEMM
            backend, _ = backends.choose(self.recurrence(), compile_enabled(self.compile), x,
                                         (w,))
            return InputProjection.apply(x, w, backend.native_products)
        return F.linear(x, w)

    def step_inputs(self, layer: int, gi: Tensor) -> tuple[Tensor, ...]:
        """Non-differentiable per-step inputs of ``layer``'s recurrence, each (T, B, ...) with
        T = ``gi.shape[0]``; step t of ``Recurrence.step``/``step_backward`` gets their t-th
        slices as trailing arguments. None by default."""
        return ()

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
        H = self.hidden_size
        seq = Sequence.of(input, hx, lengths, batch_first=self.batch_first,
                          input_size=self.input_size, hidden_size=H, num_layers=self.num_layers)
        input, hx, mask, steps = seq.x, seq.hx, seq.mask, seq.steps
        batch = input.shape[1]

        compile = compile_enabled(self.compile)
        # one backend for every layer's loops, forward and backward (backends/: the rule)
        backend, fallbacks = backends.choose(rec, compile, input,
                                             (*(hx or ()), *self.parameters()))
        backends.count(backend.label(compile), self.num_layers)
        for name, reason in fallbacks:
            backends.note_fallback(name, reason, self.num_layers)
        pad = self._batch_padding(batch, compile, backend)
        if pad:
            input, hx, mask = _pad_batch(input, hx, mask, pad)
        record = self.record_grad_norms and torch.is_grad_enabled()
        sink = NormSink(self.num_layers, steps, batch + pad, keep=batch) if record else None
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
                    state0.append(torch.zeros(batch + pad, width, dtype=dtype, device=device))
            out, *fin = RecurrenceFunction.apply(
                rec, backend, compile, sink, layer, gi, mask, self.step_inputs(layer, gi),
                len(widths),
                *state0,
                *self.layer_parameters(layer),
            )
            for k in range(nu):
                finals[k].append(fin[k])
            x = self.between_layers(out, layer)
        if pad:  # the padded rows got zero gradient; drop them from everything returned
            x, finals = x[:, :batch], [[f[:batch] for f in fs] for fs in finals]
        return seq.restore(x, tuple(torch.stack(f) for f in finals))

    # The compiled step graphs are specialised on the batch size, so a smaller batch (an epoch's
    # ragged last batch, the rest of a validation split) would be compiled again (seconds,
    # mid-run) or run eagerly. Padded with zero rows up to the largest batch this module has
    # run, it reuses those graphs; the padded rows get zero gradient and are dropped from every
    # output. Not when rows draw random numbers (dropout between layers, zoneout masks while
    # training: the run's random stream must not depend on compilation), and not beyond
    # PAD_LIMIT x the batch (a batch of 1 for step-by-step inference). Nor where the backend
    # takes any batch as it comes (the native loops).
    PAD_LIMIT = 4
    _largest_batch = 0

    def _batch_padding(self, batch: int, compile: bool, backend: backends.Backend) -> int:
        if not compile or not batch:
            return 0
        if backend.takes_any_batch:  # no compiled shapes to reuse
            return 0
        if self.training and (self.dropout > 0 or getattr(self, "zoneout", 0)):
            return 0
        if batch >= self._largest_batch:
            self._largest_batch = batch
            return 0
        if self._largest_batch > self.PAD_LIMIT * batch:
            return 0
        return self._largest_batch - batch
