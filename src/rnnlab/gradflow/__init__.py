"""Gradient flow through time: the per-time-step gradient norm as a first-class measurement.

- :class:`GradientFlowMonitor` (monitor.py): the Lightning callback (``callbacks.gradflow``).
- summary.py: batch statistics, the per-layer scalars and the ``gradflow.npz`` reader/writer.
- plots.py: norm-vs-t curves and the (training step x t) heatmap.

Definitions and file layout: docs/gradflow.md.
"""

from .monitor import GradientFlowMonitor, fixed_probe, last_step_loss
from .summary import DH, DX, PREFIX, SUMMARIES, batch_stats, curve_summaries, load_gradflow

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
