"""The input projection of the classic scratch cells: ``W_ih x`` of all steps in one product.

``gi = W_ih x_t`` of every step is computed before the time loop (recurrence.py), without bias:
both bias vectors are added inside the per-step kernel. :class:`InputProjection` is that product
as an autograd Function with a faster backward on the CPU; :func:`outer_sum` is the
``Σ_{t,b} dᵀ u`` the parameter gradients are made of (here and in each cell's ``param_grads``).
Where a layer's loops run native (backends/native.py), the three products use the native
loops' GEMM where it applies. Only torch is imported here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .backends import native as _native

__all__ = ["InputProjection", "outer_sum"]


def outer_sum(d: Tensor, u: Tensor) -> Tensor:
    """``sum_{t,b} d[t, b, :]ᵀ u[t, b, :]`` as one GEMM: (T, B, G) x (T, B, K) -> (G, K).

    For a thin u (K < 16, e.g. the input x of the adding problem, K = 2) computed as (uᵀ d)ᵀ, a
    transposed view: the same sums, in the orientation the CPU GEMM runs 7x faster there
    (T·B = 3,200, G = 256, K = 2: 1.19 -> 0.15 ms, 1 thread); from K = 16 on the two are alike."""
    d2, u2 = d.reshape(-1, d.shape[-1]), u.reshape(-1, u.shape[-1])
    if u2.shape[1] < 16:
        return u2.t().mm(d2).t()
    return d2.t().mm(u2)


class InputProjection(torch.autograd.Function):
    """``W_ih x`` of all steps at once, (T, B, K) -> (T, B, G), as ``F.linear``, whose backward
    takes the faster GEMM orientation for a thin input (:func:`outer_sum` for W_ih; for x, with
    K < 16, (W_ihᵀ δᵀ)ᵀ: 0.93 -> 0.37 ms at the sizes above). With ``native`` (the layer's loops
    run native) the three products use the native loops' GEMM where it applies
    (native.matmul, native.outer_sum). CPU without autocast only (the caller's choice): under
    autocast the casts are F.linear's."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, native: bool = False) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.native = native
        out = _native.matmul(x, w.t().contiguous()) if native else None
        return torch.nn.functional.linear(x, w) if out is None else out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d: Tensor):
        x, w = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = _native.matmul(d, w) if ctx.native else None
            if dx is None and w.shape[1] < 16:
                d2 = d.reshape(-1, d.shape[-1])
                # contiguous, as F.linear's: the layer below takes it as its output gradient
                dx = w.t().mm(d2.t()).t().contiguous().reshape(x.shape)
            elif dx is None:
                dx = d.matmul(w)
        if ctx.needs_input_grad[1]:
            dw = _native.outer_sum(d, x) if ctx.native else None
            if dw is None:
                dw = outer_sum(d, x)
        return dx, dw, None
