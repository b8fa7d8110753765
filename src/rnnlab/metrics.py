"""Metrics torchmetrics does not have, shared by the task and the datasets' baselines."""

from __future__ import annotations

import torch
import torchmetrics


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
