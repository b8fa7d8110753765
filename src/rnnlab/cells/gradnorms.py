"""The ∂L/∂h_t record: where a layer's backward leaves its per-step gradient norms.

Each scratch stack that records ‖∂L/∂h_t‖ (the total gradient of the hidden state: what the
output at t sends directly plus what comes back through the recurrence from t+1) hands its
layers one :class:`NormSink` per forward; each layer's backward writes its (T, B) norms into its
slot (recurrence.py, minrnn.py); the module exposes them through :class:`GradNormRecord`.
Only torch is imported here.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GradNormRecord", "NormSink"]


class NormSink:
    """Where a layer's backward writes its (T, B) gradient norms; ``keep``: the rows reported
    (the first ``keep``: a batch padded with zero rows reports only its own)."""

    def __init__(self, num_layers: int, steps: int, batch: int, keep: int | None = None):
        self.slots: list[Tensor | None] = [None] * num_layers
        self.steps = steps
        self.batch = batch
        self.keep = batch if keep is None else keep

    def result(self) -> Tensor | None:
        filled = [s for s in self.slots if s is not None]
        if not filled:
            return None
        out = torch.zeros(
            len(self.slots), self.steps, self.keep, dtype=torch.float32, device=filled[0].device
        )
        for layer, s in enumerate(self.slots):
            if s is not None:
                out[layer, : s.shape[0]] = s[:, : self.keep]
        return out


class GradNormRecord:
    """What a cell module that records ‖∂L/∂h_t‖ exposes: ``hidden_grad_norms``, the
    (num_layers, T, B) float32 norms of the last backward (assembled from its :class:`NormSink`
    on first read), ``None`` after a forward until a backward has run; settable (to ``None``)."""

    _norm_sink: NormSink | None = None
    _norm_cache: Tensor | None = None

    @property
    def hidden_grad_norms(self) -> Tensor | None:
        if self._norm_cache is None and self._norm_sink is not None:
            self._norm_cache = self._norm_sink.result()
        return self._norm_cache

    @hidden_grad_norms.setter
    def hidden_grad_norms(self, value) -> None:
        self._norm_sink, self._norm_cache = None, value
