"""Gate statistics over t, and the textbook case analysis of a gated cell (docs/gradflow.md,
"Gates"). Torch only; the gates come from one eager pass of the cell's own step
(:func:`rnnlab.gradflow.jacobian.step_jacobians`, ``Recurrence.gates``).

Per layer, gate and t (valid steps only; 1-based t as everywhere in gradflow):

- ``mean``: the gate's mean over the batch's samples and units;
- ``low`` / ``high``: the fraction of (sample, unit) pairs saturated below ``LOW`` = 0.1 /
  above ``HIGH`` = 0.9.

Per layer, over every valid (t, sample, unit):

- ``tau_hist``: counts of the timescale τ = 1 / (1 − keep) in the bins ``TAU_BINS`` (keep: the
  coefficient of the previous state, GRU z, LSTM f, MGU 1 − f, minGRU 1 − z, minLSTM f'), a unit
  that keeps 99% of its state per step remembering for ~100 steps; ``tau_median``;
- ``cases``: the share of (t, sample, unit) in each case of the textbook analysis of the step
  Jacobian ∂h_t/∂h_{t−1}. Cells with a reset gate (GRU, reset after or before; MGU's r = f):
  ``carry`` (z > 0.9: the factor is ≈ I, the gradient passes), ``reset`` (z < 0.1, r < 0.1: the
  past is cut), ``through_w`` (z < 0.1, r > 0.9: the factor is (1 − n²) W_hn, which shrinks or
  grows with W) and ``mixed`` (the rest). Every other gated cell: ``carry`` (keep > 0.9),
  ``forget`` (keep < 0.1), ``mixed``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["DERIVED", "HIGH", "LOW", "TAU_BINS", "case_shares", "gate_stats", "timescales"]

LOW, HIGH = 0.1, 0.9
# bin edges of τ = 1 / (1 − keep) in steps: [1, 2), [2, 4), ... [2^12, inf)
TAU_BINS = tuple(float(2 ** k) for k in range(13)) + (math.inf,)
DERIVED = ("keep", "reset")  # entries of Recurrence.gates that are not a gate of their own


def _select(values: Tensor, valid: Tensor | None) -> Tensor:
    """(T, B, H) -> the (sample, unit) values of valid steps, flattened."""
    if valid is None:
        return values.reshape(-1)
    return values[valid].reshape(-1)


def gate_stats(gates: dict[str, Tensor], valid: Tensor | None = None) -> dict[str, Tensor]:
    """``{gate: (3, T)}``: per t the mean and the fractions below LOW and above HIGH over the
    valid samples and every unit (NaN at a step with no valid sample); the derived ``keep`` and
    ``reset`` entries left out."""
    out = {}
    for name, g in gates.items():
        if name in DERIVED:
            continue
        g = g.double()
        weight = (torch.ones(g.shape[:2], dtype=g.dtype, device=g.device) if valid is None
                  else valid.to(g.dtype))
        count = weight.sum(1) * g.shape[-1]
        w = weight.unsqueeze(-1)
        rows = [(g * w).sum((1, 2)), ((g < LOW) * w).sum((1, 2)), ((g > HIGH) * w).sum((1, 2))]
        out[name] = torch.stack(rows) / count  # 0/0 = NaN where no sample is valid
    return out


def timescales(keep: Tensor, valid: Tensor | None = None) -> tuple[Tensor, float]:
    """(counts per TAU_BINS bin, median τ) of τ = 1 / (1 − keep) over the valid values."""
    k = _select(keep.double(), valid)
    tau = 1.0 / (1.0 - k).clamp(min=0)  # keep = 1 exactly: τ = inf, the last bin
    edges = torch.tensor(TAU_BINS, dtype=tau.dtype, device=tau.device)
    index = torch.bucketize(tau, edges, right=True) - 1  # edges[i] <= τ < edges[i+1]
    counts = torch.bincount(index.clamp(0, len(TAU_BINS) - 2), minlength=len(TAU_BINS) - 1)
    median = float(tau.median()) if tau.numel() else math.nan
    return counts, median


def case_shares(gates: dict[str, Tensor], valid: Tensor | None = None) -> dict[str, float]:
    """The share of valid (t, sample, unit) in each case (module docstring); {} without gates.
    The GRU family is recognised by its ``reset`` entry (``Recurrence.gates``)."""
    if "keep" not in gates:
        return {}
    keep = _select(gates["keep"].double(), valid)
    if not keep.numel():
        return {}
    carry, low = keep > HIGH, keep < LOW
    if "reset" in gates:
        r = _select(gates["reset"].double(), valid)
        reset, through = low & (r < LOW), low & (r > HIGH)
        masks = {"carry": carry, "reset": reset, "through_w": through,
                 "mixed": ~(carry | reset | through)}
    else:
        masks = {"carry": carry, "forget": low, "mixed": ~(carry | low)}
    return {name: float(mask.sum()) / keep.numel() for name, mask in masks.items()}
