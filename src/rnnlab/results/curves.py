"""A run's logged curves (``csv/metrics.csv``): read one metric, and when a run solved its task.

Lightning's CSV logger writes one row per logging call, so a step can hold several rows with a
metric in only one of them: the last value logged at each step is the value of that step.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rnnlab.run.rundir import RunDir

VAL_LOSS = "val/loss"


def read_curve(run_dir: str | Path, metric: str) -> pd.Series | None:
    """``metric`` against the optimizer step (index), or None when the run logged none."""
    path = RunDir(run_dir).metrics_csv
    if not path.exists():
        return None
    log = pd.read_csv(path)
    if metric not in log or "step" not in log:
        return None
    points = log[["step", metric]].dropna()
    return points.groupby("step")[metric].last() if not points.empty else None


def solved_step(run_dir: str | Path, baseline: float, below: float) -> float | None:
    """The first step whose validation loss is below ``below`` x ``baseline`` (the table's
    "solved" threshold); NaN if it never was, None if the run logged no validation curve.
    Steps are Lightning's global step at the validation (0-based: 249 = after 250 updates)."""
    curve = read_curve(run_dir, VAL_LOSS)
    if curve is None or baseline is None or not baseline > 0:
        return None
    hit = curve[curve < below * baseline]
    return float(hit.index[0]) + 1 if not hit.empty else math.nan
