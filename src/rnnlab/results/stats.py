"""Statistics over seeds: the 95% interval of a row's mean and Welch's test between two rows.

One implementation for every table (aggregate, the end-of-sweep summary, rnnlab-report and the
Python API). With the 3-5 seeds a CPU sweep affords, the Student-t interval is the honest one:
a bootstrap over three values resamples only 10 distinct means and understates the spread.

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
