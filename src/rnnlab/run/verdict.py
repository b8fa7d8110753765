"""What a run's numbers say: its headline metrics (:func:`present_metrics`) and where its loss
stands against its task's own baseline (:func:`verdict`: solved, at, below or above baseline).
A run's report line (rnnlab.run.console), the tables (rnnlab.results) and rnnlab-compare say it
the same way. pandas is imported only when a frame is read."""

from __future__ import annotations

import math

# Shown when the runs have them, in this order; the first is the headline.
DEFAULT_METRICS = ("test/loss", "test/acc", "test/mse", "test/nll", "test/f1", "test/mae")
BASELINE_METRIC = "baseline/loss"
VERDICT_METRIC = "test/loss"  # compared with the task's own baseline/loss (same units)
# The verdict of a loss against its memoryless/constant baseline.
SOLVED_BELOW = 0.10  # "solved": below 10% of the baseline
AT_BASELINE_WITHIN = 0.05  # "at baseline": within 5% of it


def verdict(value: float | None, baseline: float | None) -> str | None:
    """Where a loss stands against its baseline; None when either is unknown."""
    if value is None or baseline is None or not baseline > 0:
        return None
    if math.isnan(value) or math.isnan(baseline):
        return None
    ratio = value / baseline
    if ratio < SOLVED_BELOW:
        return "solved"
    if abs(ratio - 1.0) <= AT_BASELINE_WITHIN:
        return "at baseline"
    return "below baseline" if ratio < 1.0 else "above baseline"


def present_metrics(frame) -> list[str]:
    """The DEFAULT_METRICS that a frame of runs (or one run's metrics dict) has values for.

    A metric that is the loss itself in every run (test/mse on the adding problem, whose loss
    is the MSE) is shown once, as the loss.
    """
    def same(a, b) -> bool:
        return bool(((a - b).abs() <= 1e-12 * b.abs().clip(lower=1)).all()) if len(a) else False

    import pandas as pd

    if isinstance(frame, dict):
        frame = pd.DataFrame([frame])
    shown = []
    for m in DEFAULT_METRICS:
        if m not in frame or not frame[m].notna().any():
            continue
        values = pd.to_numeric(frame[m], errors="coerce")
        if shown and m != VERDICT_METRIC and VERDICT_METRIC in shown:
            loss = pd.to_numeric(frame[VERDICT_METRIC], errors="coerce")
            both = values.notna() & loss.notna()
            if both.any() and same(values[both], loss[both]):
                continue
        shown.append(m)
    return shown
