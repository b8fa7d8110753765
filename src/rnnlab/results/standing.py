"""Where each cell stands across all the page's tasks: rliable's aggregates (Agarwal et al. 2021,
"Deep RL at the edge of the statistical precipice") on normalised scores.

* :func:`normalise` -- a task's score on one scale: 0 at its baseline, 1 at perfect.
* :func:`standing` -- per arm the interquartile mean (IQM), median, mean and optimality gap
  over runs x tasks, each with a 95% stratified-bootstrap interval.
* :func:`improvement` -- the probability that a run of arm x beats one of arm y on a task,
  averaged over tasks, with its interval.
* :func:`performance_profile` / :func:`profile_figure` -- the fraction of runs scoring above tau,
  for every tau, with bands.

``scores[arm]`` is a (runs x tasks) array of normalised scores, the same tasks (columns) in the
same order for every arm, rows in seed order; NaN marks a run that is not there (a task with
fewer seeds). A failed run is not NaN: it has a score (near or below 0).

**Library use.** The aggregates are ``rliable.metrics`` and the figure is
``rliable.plot_utils``. ``rliable.library`` (its bootstrap) cannot be imported next to pandas 3:
it needs ``arch<8``, whose import fails on pandas 3 (``deprecate_kwarg``), and pandas 3 is this
project's pandas. The stratified bootstrap is therefore ``scipy.stats.bootstrap`` with each
task's runs passed as a separate sample: scipy resamples every sample independently, which is
exactly rliable's ``StratifiedBootstrap`` (runs resampled within each task, tasks fixed,
``task_bootstrap=False``), with the same percentile interval. Nothing is re-implemented.

**Unequal run counts.** rliable's aggregates take a full runs x tasks matrix. Where an arm has
fewer runs on some task, every task of that arm is cut to the arm's smallest count, keeping the
first runs (the lowest seeds, so arms stay paired on seeds). Not NaN-padding (the aggregates
would return NaN), not pooling the unequal columns (a task with 10 seeds would weigh twice one
with 5, while the IQM weighs every task alike), not resampling up to the largest count (that
invents runs and narrows the interval). The cost is fewer runs, so a wider, honest interval;
the ``runs`` column says how many were used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rnnlab.results.stats import CONFIDENCE

__all__ = ["normalise", "standing", "improvement", "performance_profile", "profile_figure"]

_BOOTSTRAP = (f"{CONFIDENCE:.0%} stratified-bootstrap percentile interval (runs resampled "
              "within each task)")


def normalise(score, baseline, perfect):
    """``(score - baseline) / (perfect - baseline)``: 0 at the task's baseline (memoryless loss,
    chance accuracy, seasonal-naive error), 1 at perfect (0 loss, accuracy 1). One formula for
    both directions: for a loss, baseline > perfect and the denominator is negative. Not
    clipped: below 0 is worse than the baseline and a table should show it. Works elementwise
    on arrays."""
    span = np.subtract(perfect, baseline, dtype=float)
    if np.any(span == 0):
        raise ValueError("baseline equals perfect: the task has no scale to normalise on")
    out = np.subtract(score, baseline, dtype=float) / span
    return float(out) if np.ndim(out) == 0 else out


def _matrices(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each arm's (runs x tasks) matrix without NaN: every task cut to the arm's smallest run
    count, keeping the first (lowest-seed) runs; see the module docstring for why."""
    tasks = None
    out = {}
    for arm, raw in scores.items():
        m = np.asarray(raw, dtype=float)
        if m.ndim == 1:
            m = m[:, None]
        if m.ndim != 2:
            raise ValueError(f"{arm}: scores must be runs x tasks, got shape {m.shape}")
        if tasks is None:
            tasks = m.shape[1]
        elif m.shape[1] != tasks:
            raise ValueError(f"{arm}: {m.shape[1]} tasks, the first arm has {tasks}")
        columns = [col[~np.isnan(col)] for col in m.T]
        runs = min(len(c) for c in columns)
        if runs == 0:
            empty = [j for j, c in enumerate(columns) if not len(c)]
            raise ValueError(f"{arm}: no run on task column(s) {empty}")
        out[arm] = np.column_stack([c[:runs] for c in columns])
    if not out:
        raise ValueError("no arms")
    return out


def _bootstrap(samples: Sequence[np.ndarray], statistic, reps: int, seed: int):
    """Percentile interval of ``statistic(*samples)``, every sample resampled on its own
    (scipy.stats.bootstrap); NaN where a sample has a single run (nothing to resample)."""
    from scipy import stats

    estimate = np.atleast_1d(np.asarray(statistic(*samples), dtype=float))
    if min(len(s) for s in samples) < 2:
        nan = np.full_like(estimate, np.nan)
        return estimate, nan, nan.copy()
    result = stats.bootstrap(tuple(samples), statistic, n_resamples=reps,
                             confidence_level=CONFIDENCE, method="percentile",
                             vectorized=False, rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return estimate, np.atleast_1d(ci.low), np.atleast_1d(ci.high)


_AGGREGATES = ("iqm", "median", "mean", "optimality_gap")


def _aggregates(*columns: np.ndarray) -> np.ndarray:
    from rliable import metrics

    m = np.column_stack(columns)
    return np.array([metrics.aggregate_iqm(m), metrics.aggregate_median(m),
                     metrics.aggregate_mean(m), metrics.aggregate_optimality_gap(m)])


def standing(scores: dict[str, np.ndarray], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per arm: ``arm, runs, tasks``, then for each of ``iqm`` (rliable's interquartile
    mean: the mean of the middle 50% of all runs x tasks scores, robust to a few outlying runs
    yet using half the data, where the median uses one or two), ``median`` (of the per-task
    means), ``mean`` and ``optimality_gap`` (the mean shortfall below 1, scores above 1 counted
    as 1; lower is better) its value and ``_low``/``_high`` bounds, and ``method``. One
    bootstrap of ``reps`` resamples, fixed ``seed``, gives all four intervals."""
    method = (f"IQM, median/mean of task means, optimality gap (rliable.metrics), {_BOOTSTRAP}, "
              f"{reps} resamples")
    rows = []
    for arm, m in _matrices(scores).items():
        estimate, low, high = _bootstrap(list(m.T), _aggregates, reps, seed)
        row = {"arm": arm, "runs": m.shape[0], "tasks": m.shape[1]}
        for name, e, lo, hi in zip(_AGGREGATES, estimate, low, high):
            row |= {name: float(e), f"{name}_low": float(lo), f"{name}_high": float(hi)}
        rows.append(row | {"method": method})
    frame = pd.DataFrame(rows)
    frame.attrs["method"] = method
    return frame


def improvement(scores: dict[str, np.ndarray], pairs: list[tuple[str, str]], reps: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """Per pair (x, y): ``probability`` that a run of x scores above a run of y on the same
    task (ties half; Mann-Whitney's U / (n_x n_y)), averaged over tasks
    (rliable.metrics.probability_of_improvement), with its 95% interval from resampling the
    runs of x and of y independently within each task. 0.5 is no difference; an interval
    excluding 0.5 is the across-task claim "x improves on y". Arms may differ in run count.
    The slow one: rliable runs a Mann-Whitney U per task per resample (about 1 ms each, so some
    15 s per pair at 8 tasks and 2000 resamples)."""
    from rliable import metrics

    mats = _matrices(scores)
    method = (f"probability of improvement (rliable.metrics), {_BOOTSTRAP} independently per "
              f"arm, {reps} resamples")
    rows = []
    for x, y in pairs:
        mx, my = mats[x], mats[y]
        tasks = mx.shape[1]

        def statistic(*columns, tasks=tasks):
            return metrics.probability_of_improvement(np.column_stack(columns[:tasks]),
                                                      np.column_stack(columns[tasks:]))

        estimate, low, high = _bootstrap([*mx.T, *my.T], statistic, reps, seed)
        rows.append({"x": x, "y": y, "probability": float(estimate[0]), "low": float(low[0]),
                     "high": float(high[0]), "runs_x": mx.shape[0], "runs_y": my.shape[0],
                     "method": method})
    frame = pd.DataFrame(rows, columns=["x", "y", "probability", "low", "high", "runs_x",
                                        "runs_y", "method"])
    frame.attrs["method"] = method
    return frame


def _taus(mats: dict[str, np.ndarray]) -> np.ndarray:
    """0 (the baseline) to 1 (perfect), widened to take in scores outside it."""
    lo = min(0.0, *(float(m.min()) for m in mats.values()))
    hi = max(1.0, *(float(m.max()) for m in mats.values()))
    return np.linspace(lo, hi, 101)


def performance_profile(scores: dict[str, np.ndarray], taus: Sequence[float] | None = None,
                        reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """rliable's run-score distribution: for each tau, the fraction of an arm's runs (over all
    tasks) scoring above tau, with its stratified-bootstrap band. Long format: ``arm, tau,
    fraction, low, high``. A profile above another everywhere is a win at every threshold, not
    only on average. ``taus`` default: 101 points from 0 to 1, widened to the scores' range."""
    mats = _matrices(scores)
    taus = _taus(mats) if taus is None else np.asarray(taus, dtype=float)

    def statistic(*columns):
        return (np.column_stack(columns)[..., None] > taus).mean(axis=(0, 1))

    frames = []
    for arm, m in mats.items():
        estimate, low, high = _bootstrap(list(m.T), statistic, reps, seed)
        frames.append(pd.DataFrame({"arm": arm, "tau": taus, "fraction": estimate,
                                    "low": low, "high": high}))
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs["method"] = f"fraction of runs with score > tau, {_BOOTSTRAP}, {reps} resamples"
    return frame


def profile_figure(scores: dict[str, np.ndarray], path: str | Path, reps: int = 2000,
                   seed: int = 0) -> Path:
    """The performance profiles of every arm in one figure (rliable.plot_utils), written to
    ``path`` (its suffix picks the format). Drawn on an Agg canvas of its own, so it needs no
    display and leaves pyplot's state alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from rliable import plot_utils

    profile = performance_profile(scores, reps=reps, seed=seed)
    taus = profile["tau"].unique()
    profiles, bands = {}, {}
    for arm, rows in profile.groupby("arm", sort=False):
        profiles[arm] = rows["fraction"].to_numpy()
        if not rows["low"].isna().all():
            bands[arm] = (rows["low"].to_numpy(), rows["high"].to_numpy())
    fig = Figure(figsize=(6, 4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plot_utils.plot_performance_profiles(
        profiles, taus, performance_profile_cis=bands, ax=ax,
        xlabel=r"normalised score $\tau$ (0 = task baseline, 1 = perfect)",
        ylabel=r"fraction of runs with score $> \tau$", labelsize="medium",
        ticklabelsize="medium")
    ax.axvline(0.0, color="0.6", lw=0.8, ls="--")
    ax.legend(loc="lower left", frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
