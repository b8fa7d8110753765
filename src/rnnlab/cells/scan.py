"""Parallel scans of the diagonal linear recurrence ``h_t = a_t ⊙ h_{t−1} + b_t`` along dim 0.

``linear_scan``: the odd–even (Blelloch-style) recursion in linear space. Two consecutive steps
compose into one, ``(a₂, b₂) ∘ (a₁, b₁) = (a₂a₁, a₂b₁ + b₂)``, so the odd positions are the scan of
T/2 composed pairs, and each even position is one step from the odd one before it. O(T) work,
O(log T) depth, every output a sum of products like the sequential loop's: the rounding error
stays at the sequential loop's level (measured: docs/benchmarks.md), and ``a``, ``b`` may have
any sign.

``log_scan``: Feng et al. (2024)'s log-space form, ``h_t = exp(A_t + logcumsumexp_{s≤t}(log b_s −
A_s))`` with ``A_t = Σ_{s≤t} log a_s``. It needs ``b > 0`` and loses precision in float32 as
|A_t| grows: the result is a difference of two numbers of size |A_t|, so its relative error is
about |A_t| · 6e-8 (a saturated gate, log a ≈ −20 per step, gives 1e-4 after 100 steps). Kept as
the paper's reference.

``sequential_scan``: the plain loop, the reference both are tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """``h_t = a_t h_{t−1} + b_t`` for t = 0..T−1, with h_{−1} = 0 (fold an initial state into
    ``b[0]``). ``a``, ``b``: (T, ...)."""
    steps = a.shape[0]
    if steps <= 2:
        return sequential_scan(a, b)
    half = steps // 2
    a_even, a_odd = a[0:2 * half:2], a[1:2 * half:2]
    b_even, b_odd = b[0:2 * half:2], b[1:2 * half:2]
    h_odd = linear_scan(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even))  # h_1, h_3, ...
    h = torch.empty_like(b)
    h[1:2 * half:2] = h_odd
    h[0] = b[0]
    h[2:2 * half:2] = torch.addcmul(b_even[1:], a_even[1:], h_odd[:-1])  # h_2k = a h_2k−1 + b
    if steps % 2:
        h[-1] = torch.addcmul(b[-1], a[-1], h[-2])
    return h


def reverse_linear_scan(c: Tensor, g: Tensor) -> Tensor:
    """``δ_t = g_t + c_t δ_{t+1}`` for t = T−1..0, with δ_T = 0: the backward of a linear
    recurrence is itself one (``c_t = a_{t+1}``). The same odd–even recursion, pairs (2k, 2k+1)
    composed towards 2k."""
    steps = c.shape[0]
    if steps <= 2:
        return reverse_sequential_scan(c, g)
    half = steps // 2
    c_even, c_odd = c[0:2 * half:2], c[1:2 * half:2]
    g_even, g_odd = g[0:2 * half:2], g[1:2 * half:2]
    pair_g = torch.addcmul(g_even, c_even, g_odd)  # δ_2k = pair_g_k + pair_c_k δ_2k+2
    pair_c = c_even * c_odd
    if steps % 2:  # the unpaired last step: δ_T−1 = g_T−1, folded into the last pair
        pair_g[-1] += pair_c[-1] * g[-1]
    d_even = reverse_linear_scan(pair_c, pair_g)
    d = torch.empty_like(g)
    d[0:2 * half:2] = d_even
    # δ_2k+1 = g_2k+1 + c_2k+1 δ_2k+2
    d[1:2 * half - 2:2] = torch.addcmul(g_odd[:-1], c_odd[:-1], d_even[1:])
    if steps % 2:
        d[-1] = g[-1]
        d[2 * half - 1] = torch.addcmul(g_odd[-1], c_odd[-1], g[-1])
    else:
        d[-1] = g_odd[-1]
    return d


def sequential_scan(a: Tensor, b: Tensor) -> Tensor:
    h = torch.empty_like(b)
    if a.shape[0]:
        h[0] = b[0]
    for t in range(1, a.shape[0]):
        torch.addcmul(b[t], a[t], h[t - 1], out=h[t])
    return h


def reverse_sequential_scan(c: Tensor, g: Tensor) -> Tensor:
    d = torch.empty_like(g)
    steps = g.shape[0]
    if steps:
        d[-1] = g[-1]
    for t in range(steps - 2, -1, -1):
        torch.addcmul(g[t], c[t], d[t + 1], out=d[t])
    return d


def log_scan(log_a: Tensor, log_b: Tensor) -> Tensor:
    """``h_t = exp(A_t + logcumsumexp_{s≤t}(log b_s − A_s))``, ``A_t = cumsum(log a)``: the
    h_{−1} = 0 solution (an initial state adds ``exp(A_t) h_{−1}``)."""
    a_star = torch.cumsum(log_a, 0)
    return torch.exp(a_star + torch.logcumsumexp(log_b - a_star, 0))
