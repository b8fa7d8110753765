"""The per-task-kind loss (one formula each, for the task and the gradient-flow probe) and the
metrics torchmetrics does not have (shared by the task and the datasets' baselines)."""

from __future__ import annotations

import torch
import torchmetrics
from torch.nn import functional as F


def task_loss(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of a task kind (``rnnlab.data.base.TASK_KINDS``) over rows already selected
    (valid or counted steps, or each sequence's last step): cross-entropy of (N, C) logits for
    classes, MSE for regression, and for multi-label frames the Bernoulli NLL summed over the
    labels and averaged over frames (Boulanger-Lewandowski 2012's frame NLL)."""
    if kind in ("step_classification", "last_classification"):
        return F.cross_entropy(output, target)
    if kind == "last_regression":
        return F.mse_loss(output, target)
    return F.binary_cross_entropy_with_logits(output, target, reduction="none").sum(-1).mean()


class FrameAccuracy(torchmetrics.Metric):
    """Frame-level accuracy of multi-label predictions: TP / (TP + FP + FN), pooled over frames."""

    def __init__(self, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        predicted = probs >= self.threshold
        actual = target >= 0.5
        self.tp += (predicted & actual).sum()
        self.fp += (predicted & ~actual).sum()
        self.fn += (~predicted & actual).sum()

    def compute(self) -> torch.Tensor:
        return self.tp / (self.tp + self.fp + self.fn).clamp(min=1)
