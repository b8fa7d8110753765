"""Gradient flow through time: the per-time-step gradient norm as a first-class measurement.

- :class:`GradientFlowMonitor` (monitor.py): the Lightning callback (``callbacks.gradflow``).
- clipping.py: how often gradient clipping fires (counted before Lightning clips).
- probe.py: the fixed probe (the last-step loss on a held-out batch, training state untouched).
- stats.py: batch statistics, the per-layer scalars and the ``gradflow.npz`` reader/writer.
- plots.py: norm-vs-t curves and the (training step x t) heatmap as matplotlib figures (their
  W&B custom charts are in rnnlab.wandb: charts.py, gradflow.py).

Definitions and file layout: docs/gradflow.md. The callback's names are imported on first use, so
that reading ``gradflow.npz`` or the chart specs (rnnlab-dashboard) does not import Lightning.
"""

from typing import Any

from .stats import DH, DX, PREFIX, SUMMARIES, batch_stats, curve_summaries, load_gradflow

_MONITOR = ("GradientFlowMonitor",)
_PROBE = ("fixed_probe", "last_step_loss")

__all__ = [
    "DH",
    "DX",
    "PREFIX",
    "SUMMARIES",
    "GradientFlowMonitor",
    "batch_stats",
    "curve_summaries",
    "fixed_probe",
    "last_step_loss",
    "load_gradflow",
]


def __getattr__(name: str) -> Any:
    if name in _MONITOR:
        from . import monitor

        return getattr(monitor, name)
    if name in _PROBE:
        from . import probe

        return getattr(probe, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
