"""How often gradient clipping fires, measured before Lightning clips (docs/gradflow.md).

Per optimizer step only each gradient's norm is taken (one foreach call, kept on the device, no
host sync); the steps are reduced to "did clipping fire" when a record is due. Norm clipping
fires when the total norm exceeds the clip value (``clip_grad_norm_`` rescales exactly then),
value clipping when any |g| does. Torch only.
"""

from __future__ import annotations

import math

import torch

__all__ = ["ClipCounter"]


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

    def count(self, clip_value: float, algorithm: str) -> tuple[int, int]:
        """(steps where clipping fired, steps) since the previous call."""
        pending, self.pending = self.pending, []
        if not pending:
            return 0, 0
        order = self.order(algorithm)
        if len({len(norms) for norms in pending}) == 1:
            per_step = torch.stack([n for norms in pending for n in norms]).view(len(pending), -1)
            totals = torch.linalg.vector_norm(per_step, order, dim=1)
        else:  # some parameter had no gradient at some step
            totals = torch.stack([torch.linalg.vector_norm(torch.stack(n), order)
                                  for n in pending])
        return int((totals > clip_value).sum()), len(pending)
