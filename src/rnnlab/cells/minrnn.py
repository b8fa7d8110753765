"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
Needed?", arXiv 2410.01201), trained as a parallel scan, with a hand-written backward.

Their gates read only x_t, never h_{t−1}, so each layer is a linear recurrence with
input-dependent coefficients

    h_t = a_t ⊙ h_{t−1} + b_t

and the whole sequence can be computed at once. Notation as in ``gru.py``: σ sigmoid, ⊙
elementwise, one input projection ``P_t = W_ih x_t + b_ih`` for all t in one matmul (rows below),
and g(x) = x + 0.5 for x ≥ 0, σ(x) for x < 0 (positive and continuous; the paper's choice so that
h̃ > 0 and the log-space scan is defined; we use it in every mode, so all modes compute one
function):

    minGRU   rows [k, p]:      z = σ(k)         h̃ = g(p)
             h_t = (1 − z) ⊙ h_{t−1} + z ⊙ h̃      a = 1 − z = σ(−k),   b = z ⊙ h̃

    minLSTM  rows [k_f, k_i, p]:  f = σ(k_f), i = σ(k_i), normalised f' = f / (f + i),
             i' = i / (f + i) = 1 − f'          h̃ = g(p)
             h_t = f' ⊙ h_{t−1} + i' ⊙ h̃          a = f',   b = i' ⊙ h̃
             with d = log(i / f) = softplus(−k_f) − softplus(−k_i):   i' = σ(d),  f' = σ(−d)

(minLSTM has no output gate and no separate cell state: h is the state.)

Backward, given g_t = ∂L/∂h_t from the output at t (and from h_n at t = T−1):

    δh_t = g_t + a_{t+1} ⊙ δh_{t+1}        the total ∂L/∂h_t: a reverse linear recurrence
    δa_t = δh_t ⊙ h_{t−1}      δb_t = δh_t      ∂L/∂h_{−1} = a_0 ⊙ δh_0   (to hx)
    minGRU   δk = (δb ⊙ h̃ − δa) ⊙ z(1 − z)        δp = δb ⊙ z ⊙ g'(p)
    minLSTM  δd = (δb ⊙ h̃ − δa) ⊙ i'(1 − i')      δk_f = −δd ⊙ σ(−k_f)    δk_i = δd ⊙ σ(−k_i)
             δp = δb ⊙ i' ⊙ g'(p)
    g'(p) = 1 for p ≥ 0, σ(p)(1 − σ(p)) for p < 0

The recorded gradient norm is ‖δh_t‖, the same total ∂L/∂h_t the classic cells record.
The input projection (and hence ∂L/∂W_ih, ∂L/∂b_ih, ∂L/∂x) is left to autograd; only the
recurrence above is written by hand.

``mode`` chooses how the recurrence is computed; all give the same numbers (see ``scan.py``):
``"parallel"`` the odd–even scan in linear space (default: O(log T) depth, sequential-loop
precision), ``"log"`` the paper's log-space scan (cumsum + logcumsumexp; loses float32 precision
when gates saturate), ``"sequential"`` the step-by-step loop (the recurrent form, e.g. for
step-by-step inference: call with T = 1 and ``hx``). The backward pass uses the matching scan.
Under autocast the recurrence runs in float32 and returns the projection's dtype.

Only torch is imported here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config.errors import check_choice
from .autocast import record_autocast, under_forward_autocast
from .base import StackBase
from .compile_cache import StepFunction, compile_enabled
from .gradnorms import NormSink
from .scan import (
    linear_scan,
    log_scan,
    reverse_linear_scan,
    reverse_sequential_scan,
    sequential_scan,
)
from .sequence import Sequence

MODES = ("parallel", "log", "sequential")


def g(p: Tensor) -> Tensor:
    return torch.where(p >= 0, p + 0.5, torch.sigmoid(p))


def log_g(p: Tensor) -> Tensor:
    return torch.where(p >= 0, torch.log(F.relu(p) + 0.5), -F.softplus(-p))


def g_prime(p: Tensor) -> Tensor:
    s = torch.sigmoid(p)
    return torch.where(p >= 0, torch.ones_like(p), s * (1 - s))


# ---------------------------------------------------------------------------------- equations
class MinGRUEquations:
    rows = 2  # [k, p]

    @staticmethod
    def coefficients(P: Tensor) -> tuple[Tensor, Tensor]:
        k, p = P.chunk(2, -1)
        return torch.sigmoid(-k), torch.sigmoid(k) * g(p)

    @staticmethod
    def log_coefficients(P: Tensor) -> tuple[Tensor, Tensor]:
        k, p = P.chunk(2, -1)
        return -F.softplus(k), -F.softplus(-k) + log_g(p)

    @staticmethod
    def backward(P: Tensor, da: Tensor, db: Tensor) -> Tensor:
        k, p = P.chunk(2, -1)
        z = torch.sigmoid(k)
        dk = (db * g(p) - da) * z * (1 - z)
        dp = db * z * g_prime(p)
        return torch.cat([dk, dp], -1)


class MinLSTMEquations:
    rows = 3  # [k_f, k_i, p]

    @staticmethod
    def _d(kf: Tensor, ki: Tensor) -> Tensor:
        return F.softplus(-kf) - F.softplus(-ki)

    @classmethod
    def coefficients(cls, P: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, p = P.chunk(3, -1)
        d = cls._d(kf, ki)
        return torch.sigmoid(-d), torch.sigmoid(d) * g(p)

    @classmethod
    def log_coefficients(cls, P: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, p = P.chunk(3, -1)
        d = cls._d(kf, ki)
        return -F.softplus(d), -F.softplus(-d) + log_g(p)

    @classmethod
    def backward(cls, P: Tensor, da: Tensor, db: Tensor) -> Tensor:
        kf, ki, p = P.chunk(3, -1)
        i = torch.sigmoid(cls._d(kf, ki))
        dd = (db * g(p) - da) * i * (1 - i)
        return torch.cat([-dd * torch.sigmoid(-kf), dd * torch.sigmoid(-ki),
                          db * i * g_prime(p)], -1)


# -------------------------------------------------------------------- one layer, whole sequence
def _working(t: Tensor) -> Tensor:
    """The recurrence runs in at least float32 (half-precision products lose the memory)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _coefficients_fn(eq, masked: bool):
    """(P, h0[, mask]) -> (a, b) with h_{−1} folded into b_0: one fused pointwise kernel."""

    def coefficients(P, h0, *mask):
        a, b = eq.coefficients(P)
        if masked:  # a frozen step: a = 1, b = 0
            a = torch.where(mask[0], a, torch.ones_like(a))
            b = torch.where(mask[0], b, torch.zeros_like(b))
        return a, torch.cat([torch.addcmul(b[0], a[0], h0).unsqueeze(0), b[1:]])

    return coefficients


def _gradients_fn(eq, masked: bool, record: bool):
    """(P, a_0, h0, h, δh[, mask]) -> (∂L/∂P, ∂L/∂h_{−1}[, ‖δh_t‖]): one fused pointwise kernel
    (memory-bound: it gets a_0 alone, not all of a)."""

    def gradients(P, a0, h0, h, delta, *mask):
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
        da, db = delta * h_prev, delta
        if masked:  # a frozen step's a = 1, b = 0 are constants
            da = torch.where(mask[0], da, torch.zeros_like(da))
            db = torch.where(mask[0], db, torch.zeros_like(db))
        out = (eq.backward(P, da, db), a0 * delta[0])
        if record:
            norms = (delta * delta).sum(-1).sqrt()
            if masked:
                norms = torch.where(mask[0][..., 0], norms, torch.zeros_like(norms))
            out += (norms,)
        return out

    return gradients


_STEP_FUNCTIONS: dict[tuple, StepFunction] = {}


def _compiled(kind: str, eq, *flags) -> StepFunction:
    key = (kind, eq, *flags)
    if key not in _STEP_FUNCTIONS:
        make = _coefficients_fn if kind == "coefficients" else _gradients_fn
        _STEP_FUNCTIONS[key] = StepFunction(make(eq, *flags), f"{eq.__name__}.{kind}{flags}")
    return _STEP_FUNCTIONS[key]


class MinRecurrenceFunction(torch.autograd.Function):
    """``apply(equations, mode, compile, sink, layer, P, h0, mask) -> h`` (T, B, H), every step's
    state (frozen past a sequence's end), from the input projection ``P`` (T, B, rows·H).

    The pointwise parts (the coefficients forward, all of ∂L/∂P backward) are one compiled kernel
    each (TorchInductor, as the classic cells' steps), the scans run as torch ops."""

    @staticmethod
    def forward(ctx, eq, mode, compile, sink, layer, P, h0, mask):
        ctx.dtypes = (P.dtype, h0.dtype)
        P, h0 = _working(P.detach()), _working(h0.detach())
        masks = () if mask is None else (mask,)
        if mode == "log":
            log_a, log_b = eq.log_coefficients(P)
            if mask is not None:
                log_a = torch.where(mask, log_a, torch.zeros_like(log_a))
                log_b = torch.where(mask, log_b, torch.full_like(log_b, -math.inf))
            h = log_scan(log_a, log_b) + torch.exp(torch.cumsum(log_a, 0)) * h0
            a = log_a.exp()
        else:
            args = (P, h0, *masks)
            a, b = _compiled("coefficients", eq, mask is not None).specialize(args, compile)(*args)
            h = (linear_scan if mode == "parallel" else sequential_scan)(a, b)
        ctx.eq, ctx.mode, ctx.compile, ctx.sink, ctx.layer = eq, mode, compile, sink, layer
        record_autocast(ctx, P.device.type)
        ctx.save_for_backward(P, a, h0, h, *masks)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    @under_forward_autocast
    def backward(ctx, dh):
        P, a, h0, h, *masks = ctx.saved_tensors
        dh = _working(dh).contiguous()
        # δh_t = dh_t + a_{t+1} δh_{t+1}
        scan = reverse_sequential_scan if ctx.mode == "sequential" else reverse_linear_scan
        delta = torch.empty_like(dh)
        delta[-1] = dh[-1]
        if dh.shape[0] > 1:
            g = dh[:-1].clone()
            g[-1] += a[-1] * dh[-1]
            delta[:-1] = scan(a[1:], g)
        record = ctx.sink is not None
        args = (P, a[0], h0, h, delta, *masks)
        out = _compiled("gradients", ctx.eq, bool(masks), record).specialize(
            args, ctx.compile)(*args)
        if record:
            ctx.sink.slots[ctx.layer] = out[2].float()
        p_dtype, h0_dtype = ctx.dtypes
        return None, None, None, None, None, out[0].to(p_dtype), out[1].to(h0_dtype), None


# --------------------------------------------------------------------------------- the modules
class _MinRNN(StackBase):
    """Multi-layer minGRU/minLSTM shaped like torch.nn.GRU: ``forward(input, hx=None,
    lengths=None) -> (output, h_n)``; parameters per layer ``weight_ih_l{k}`` (rows·H, I or H) and
    ``bias_ih_l{k}`` (rows·H), no recurrent weights; initialised Uniform(−1/√H, 1/√H), the classic
    cells' (torch.nn's). ``hidden_grad_norms`` after a backward: the (num_layers, T, B) float32
    norms ‖∂L/∂h_t‖ (0 at padded steps), as the classic cells."""

    equations: type

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, *, mode: str = "parallel",
                 record_grad_norms: bool = True, compile: bool | None = None, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         gate_size=self.equations.rows * hidden_size,
                         record_grad_norms=record_grad_norms, compile=compile)
        check_choice("mode", mode, MODES)
        self.mode = mode
        factory = {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}",
                                    nn.Parameter(torch.empty(self.gate_size, width, **factory)))
            if self.bias:
                self.register_parameter(f"bias_ih_l{layer}",
                                        nn.Parameter(torch.empty(self.gate_size, **factory)))
        self.reset_parameters()

    def forward(self, input: Tensor, hx: Tensor | None = None, lengths: Tensor | None = None):
        seq = Sequence.of(input, None if hx is None else (hx,), lengths,
                          batch_first=self.batch_first, input_size=self.input_size,
                          hidden_size=self.hidden_size, num_layers=self.num_layers)
        steps, batch = seq.x.shape[0], seq.x.shape[1]
        record = self.record_grad_norms and torch.is_grad_enabled()
        sink = NormSink(self.num_layers, seq.steps, batch) if record else None
        self._norm_sink, self._norm_cache = sink, None
        compile = compile_enabled(self.compile)
        x, finals = seq.x, []
        for layer in range(self.num_layers):
            P = F.linear(x, getattr(self, f"weight_ih_l{layer}"),
                         getattr(self, f"bias_ih_l{layer}", None))
            h0 = (seq.hx[0][layer] if seq.hx is not None
                  else P.new_zeros(batch, self.hidden_size))
            if steps:
                h = MinRecurrenceFunction.apply(self.equations, self.mode, compile, sink, layer,
                                                P, h0, seq.mask).to(P.dtype)
                finals.append(h[-1])
            else:
                h = P.new_zeros(0, batch, self.hidden_size)
                finals.append(h0)
            out = h if seq.mask is None else torch.where(seq.mask, h, torch.zeros_like(h))
            x = self.between_layers(out, layer)
        output, (h_n,) = seq.restore(x, (torch.stack(finals),))
        return output, h_n

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode!r}"


class MinGRU(_MinRNN):
    """minGRU (Feng et al. 2024): z = σ(W_z x + b_z), h̃ = g(W_h x + b_h),
    h_t = (1 − z) ⊙ h_{t−1} + z ⊙ h̃. Rows of ``weight_ih_l{k}``: [z, h̃] (2H). ``mode``:
    "parallel" | "log" | "sequential" (module docstring of ``rnnlab.cells.minrnn``)."""

    equations = MinGRUEquations
    gate_names = ("z", "h")  # the bias rows, for rnnlab.cells.init
    chrono_gates = (None, "z")  # z writes: init=chrono gives it −b, so 1 − z = σ(b) keeps


class MinLSTM(_MinRNN):
    """minLSTM (Feng et al. 2024): f = σ(W_f x + b_f), i = σ(W_i x + b_i), h̃ = g(W_h x + b_h),
    h_t = f/(f+i) ⊙ h_{t−1} + i/(f+i) ⊙ h̃. Rows of ``weight_ih_l{k}``: [f, i, h̃] (3H)."""

    equations = MinLSTMEquations
    gate_names = ("f", "i", "h")
    chrono_gates = ("f", "i")  # b and −b: f' = σ(b) exactly (rnnlab.cells.init)
