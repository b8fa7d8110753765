"""How often gradient clipping fires, measured before Lightning clips (docs/gradflow.md).

Per optimizer step only each gradient's norm is taken (one foreach call, kept on the device, no
host sync); the steps are reduced to "did clipping fire" when a record is due, by the rule
Lightning's clipping applies, so the count is of the steps whose gradients were changed:
nothing is clipped unless the clip value is > 0 (Lightning skips clipping otherwise; rnnlab
refuses such a value); norm clipping changes the gradients when ``clip_grad_norm_``'s
coefficient ``clip / (total norm + 1e-6)`` is below 1, value clipping when any |g| exceeds the
clip value. Torch only.
"""

from __future__ import annotations

import math

import torch

__all__ = ["ClipCounter"]

_NORM_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s epsilon in clip / (norm + eps)


def per_tensor_norms(tensors: list[torch.Tensor], order: float) -> list[torch.Tensor]:
    try:
        return list(torch._foreach_norm(tensors, order))  # one call for all of them
    except (AttributeError, RuntimeError, TypeError):  # no foreach for these tensors
        return [torch.linalg.vector_norm(t, order) for t in tensors]


class ClipCounter:
    """``track`` every step's gradients, ``count`` the steps where clipping fired since the last
    count. ``pending`` (the per-step norms not yet counted) is what a checkpoint keeps."""

    def __init__(self) -> None:
        self.pending: list[list[torch.Tensor]] = []

    @staticmethod
    def order(algorithm: str) -> float:
        return math.inf if str(algorithm) == "value" else 2.0

    def track(self, grads: list[torch.Tensor], algorithm: str) -> None:
        if grads:
            self.pending.append(per_tensor_norms(grads, self.order(algorithm)))

    def count(self, clip_value: float | None, algorithm: str) -> tuple[int, int]:
        """(steps where clipping changed the gradients, steps) since the previous call."""
        pending, self.pending = self.pending, []
        if not pending:
            return 0, 0
        if clip_value is None or not clip_value > 0:  # Lightning clips nothing then
            return 0, len(pending)
        order = self.order(algorithm)
        if len({len(norms) for norms in pending}) == 1:
            per_step = torch.stack([n for norms in pending for n in norms]).view(len(pending), -1)
            totals = torch.linalg.vector_norm(per_step, order, dim=1)
        else:  # some parameter had no gradient at some step
            totals = torch.stack([torch.linalg.vector_norm(torch.stack(n), order)
                                  for n in pending])
        if order == 2.0:  # clip_grad_norm_ scales by clip / (norm + 1e-6) when that is < 1
            fired = totals + _NORM_EPS > clip_value
        else:  # clip_grad_value_ clamps to [-clip, clip]
            fired = totals > clip_value
        return int(fired.sum()), len(pending)
