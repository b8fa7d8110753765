"""Statistics over seeds: the 95% interval of a row's mean and Welch's test between two rows.

One implementation for every table (aggregate, the end-of-sweep summary, rnnlab-report and the
Python API).

* :func:`mean_interval` -- the interval an aggregate table prints for its headline metric, chosen
  by what the metric can be. A quantity that cannot be negative (a loss, an MSE, an NLL) or that
  lies in [0, 1] (accuracy, F1) gets the percentile bootstrap of the mean
  (:func:`rnnlab.results.seedstats.metric_interval`, the one ``rnnlab-compare`` prints): its
  bounds are quantiles of resampled means, so they stay within the seeds' range and never leave
  the quantity's. The Student-t interval does: a loss of 1e-4, 2e-4, 5e-3 over three seeds gets
  [-0.0051, 0.0087]. Any other metric keeps the t interval. The price of the bootstrap, stated
  in seedstats: at 3-5 seeds it is narrower than t's (three values resample to only 10 distinct
  means), so tables print n beside it. Tables name the method in the interval's header and
  footnote (:data:`INTERVAL_NOTES`).
* :func:`t_interval` -- mean ± t_{0.975, n-1} · s/√n (the sample std s, ddof=1).
* :func:`welch` -- Welch's unequal-variance t-test of two rows' seeds (two-sided), with the
  Welch-Satterthwaite degrees of freedom: whether a difference exceeds the seeds' spread.

scipy.stats does the distribution functions; tests/test_stats.py checks both against the
formulas written out by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

CONFIDENCE = 0.95  # of every interval a table shows
SIGNIFICANT = 0.05  # the level at which a table says a difference is significant


def _clean(values: Iterable[float]) -> list[float]:
    out = []
    for v in values:
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isnan(v):
            out.append(v)
    return out


# What a metric can be, by the last part of its name (test/acc -> acc; val/loss_best -> loss).
PROPORTIONS = ("acc", "f1", "precision", "recall", "auc")  # within [0, 1]
NON_NEGATIVE = ("loss", "mse", "nll", "mae", "rmse", "bpc", "ppl", "perplexity")  # >= 0

# The footnote of each interval method, for the tables that print it.
INTERVAL_NOTES = {
    "bootstrap": (f"{CONFIDENCE:.0%} CI (bootstrap): percentile bootstrap of the mean over the "
                  "row's seeds (9999 resamples, fixed seed; the interval rnnlab-compare prints). "
                  "It stays within the seeds' range: never negative for a loss, within [0, 1] "
                  "for an accuracy."),
    "t": (f"{CONFIDENCE:.0%} CI (t): Student-t interval of the mean over the row's seeds, "
          "mean ± t(0.975, n-1) s/sqrt(n)."),
}


def bounded(metric: str | None) -> bool:
    """Whether ``metric`` cannot be negative (:data:`NON_NEGATIVE`) or lies in [0, 1]
    (:data:`PROPORTIONS`), judged by the last part of its name."""
    if not metric:
        return False
    last = str(metric).rsplit("/", 1)[-1]
    return any(last == name or last.startswith(name + "_")
               for name in PROPORTIONS + NON_NEGATIVE)


def mean_interval(values: Iterable[float], metric: str | None = None,
                  confidence: float = CONFIDENCE) -> tuple[float, float, str]:
    """``(low, high, method)``: the interval of the mean of ``values`` an aggregate table prints
    for ``metric`` -- the percentile bootstrap (``method`` "bootstrap") for a metric that cannot
    be negative or lies in [0, 1] (:func:`bounded`), else the Student-t interval ("t"). NaN
    bounds for fewer than 2 values."""
    if bounded(metric) and confidence == CONFIDENCE:
        from rnnlab.results.seedstats import metric_interval

        interval = metric_interval(_clean(values))
        return interval.low, interval.high, "bootstrap"
    return (*t_interval(values, confidence), "t")


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The ``confidence`` interval of the mean of ``values`` (NaN, NaN for fewer than 2)."""
    from scipy import stats

    xs = _clean(values)
    n = len(xs)
    if n < 2:
        return (math.nan, math.nan)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half)


@dataclass(frozen=True)
class Welch:
    """Welch's two-sided t-test of ``mean(a) - mean(b)``; ``p`` is NaN when it cannot be tested
    (fewer than 2 values on a side, or no spread on either side)."""

    diff: float
    t: float
    df: float
    p: float
    n_a: int
    n_b: int

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p) and self.p < SIGNIFICANT


def welch(a: Iterable[float], b: Iterable[float]) -> Welch:
    from scipy import stats

    xa, xb = _clean(a), _clean(b)
    na, nb = len(xa), len(xb)
    if not (na and nb):
        return Welch(math.nan, math.nan, math.nan, math.nan, na, nb)
    ma, mb = sum(xa) / na, sum(xb) / nb
    if na < 2 or nb < 2:
        return Welch(ma - mb, math.nan, math.nan, math.nan, na, nb)
    va = sum((x - ma) ** 2 for x in xa) / (na - 1)
    vb = sum((x - mb) ** 2 for x in xb) / (nb - 1)
    se2 = va / na + vb / nb
    if se2 == 0:  # identical values on both sides: no spread to test against
        return Welch(ma - mb, math.nan, math.nan, math.nan, na, nb)
    result = stats.ttest_ind(xa, xb, equal_var=False)
    df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return Welch(ma - mb, float(result.statistic), df, float(result.pvalue), na, nb)
