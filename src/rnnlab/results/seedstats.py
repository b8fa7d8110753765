"""Statistics over one arm's seeds and between two arms: what a comparison table prints.

Numbers in, frozen dataclasses out; each result carries ``method``, the test or interval in words
for a table's footnote. Every computation is a call into the field's libraries (scipy,
statsmodels, lifelines); tests/test_seedstats.py checks each against values worked out by hand.

Per row of a table (one arm, its evaluation seeds):

* :func:`solved_interval` -- the solved count k/n with its Clopper-Pearson exact 95% interval.
* :func:`metric_interval` -- the headline metric's mean (or median) with a percentile-bootstrap
  95% interval, fixed seed.
* :func:`steps_to_solve` -- the Kaplan-Meier median of the step each seed solved at, seeds that
  never solved censored at their budget, with its 95% interval.

Between two arms:

* :func:`solved_test` -- Barnard's exact test on the solved counts.
* :func:`metric_test` -- Mann-Whitney U on the headline metric, exact.
* :func:`steps_test` -- the log-rank test on steps-to-solve.

Across a table's comparisons: :func:`holm`, printed beside the raw p.

A ``p`` of NaN means "could not be tested" (an empty arm, no seed solved anywhere), never "no
difference"; :func:`holm` passes it through without counting it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rnnlab.results.stats import CONFIDENCE, SIGNIFICANT

__all__ = [
    "CONFIDENCE", "SIGNIFICANT", "Proportion", "Test", "Interval", "StepsToSolve",
    "solved_interval", "solved_test", "metric_interval", "metric_test", "steps_to_solve",
    "steps_test", "holm", "format_steps",
]

_PCT = f"{CONFIDENCE:.0%}"


@dataclass(frozen=True)
class Proportion:
    """k of n seeds solved, with the interval of the solved fraction."""

    k: int
    n: int
    low: float
    high: float
    method: str

    @property
    def fraction(self) -> float:
        return self.k / self.n if self.n else math.nan


@dataclass(frozen=True)
class Test:
    """A two-sided test between arms a and b; ``p`` is NaN when it could not be tested."""

    p: float
    statistic: float
    method: str
    n_a: int
    n_b: int

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p) and self.p < SIGNIFICANT


@dataclass(frozen=True)
class Interval:
    """A statistic of one arm's seeds with its interval (bounds NaN for fewer than 2 values)."""

    estimate: float
    low: float
    high: float
    n: int
    method: str


@dataclass(frozen=True)
class StepsToSolve:
    """Kaplan-Meier median steps-to-solve and its interval; ``inf`` = not reached within the
    budget (see :func:`format_steps` for how a table prints it). ``solved`` of ``n`` seeds
    solved; the others are censored at their budget. ``curve`` is the Kaplan-Meier curve as
    (step, fraction of seeds not yet solved) pairs from step 0, for a "solved against steps"
    figure."""

    median: float
    low: float
    high: float
    n: int
    solved: int
    method: str
    curve: tuple[tuple[float, float], ...] = ()

    def label(self) -> str:
        """``"700 [300, 900]"``; ``"not reached [700, not reached]"`` where a bound is inf."""
        return (f"{format_steps(self.median)} "
                f"[{format_steps(self.low)}, {format_steps(self.high)}]")


def format_steps(steps: float) -> str:
    """How a table prints a step count from :class:`StepsToSolve`: ``inf`` is "not reached"
    (fewer than half the seeds solved within the budget, or for a bound: the survival curve's
    confidence band never reached one half), NaN is "–" (no seeds)."""
    if math.isnan(steps):
        return "–"
    if math.isinf(steps):
        return "not reached"
    return f"{steps:,.0f}"


def _finite(values) -> np.ndarray:
    """The values as floats, None and NaN dropped (a missing run, not a failed one)."""
    out = [float(v) for v in values if v is not None]
    arr = np.asarray(out, dtype=float)
    return arr[~np.isnan(arr)]


# ---------------------------------------------------------------- solved counts


def solved_interval(k: int, n: int) -> Proportion:
    """Clopper-Pearson: exact (the binomial, not a normal approximation), so its 95% holds at
    n = 3-10 and at k = 0 or n, where the Wald interval collapses to a point. Conservative,
    which is the side a reviewer prefers. NaN bounds for n = 0."""
    from scipy import stats

    method = f"Clopper-Pearson exact {_PCT} interval"
    if n <= 0:
        return Proportion(k, n, math.nan, math.nan, method)
    if not 0 <= k <= n:
        raise ValueError(f"solved count {k} outside 0..{n}")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return Proportion(k, n, float(ci.low), float(ci.high), method)


def solved_test(k_a: int, n_a: int, k_b: int, n_b: int) -> Test:
    """Barnard's exact test (two-sided, pooled Wald statistic, scipy.stats.barnard_exact) of
    k_a/n_a against k_b/n_b.

    Why Barnard and not Fisher: a comparison fixes the seeds per arm, not the total number of
    seeds that solve, yet Fisher's test conditions on both margins; that makes it needlessly
    conservative at few seeds (3 of 3 against 0 of 3 gives Fisher p = 0.1, so 3 vs 3 can never
    be significant; Barnard gives 1/32 = 0.031). Unconditional exact tests are what Lydersen et
    al. (2009, Stat. Med. 28:1159) recommend for 2x2 tables, and both are exact: neither
    exceeds its nominal level. ``statistic`` is the Wald statistic (NaN when both arms have the
    same all-or-nothing outcome, p = 1 then)."""
    from scipy import stats

    method = "Barnard's exact test, two-sided"
    if n_a <= 0 or n_b <= 0:
        return Test(math.nan, math.nan, method, n_a, n_b)
    for k, n in ((k_a, n_a), (k_b, n_b)):
        if not 0 <= k <= n:
            raise ValueError(f"solved count {k} outside 0..{n}")
    table = [[k_a, k_b], [n_a - k_a, n_b - k_b]]  # columns are the arms
    result = stats.barnard_exact(table, alternative="two-sided")
    return Test(float(result.pvalue), float(result.statistic), method, n_a, n_b)


# ---------------------------------------------------------------- headline metric


def metric_interval(values: Sequence[float], statistic: str = "mean", *, reps: int = 9999,
                    seed: int = 0) -> Interval:
    """``statistic`` ("mean" or "median") of ``values`` (None/NaN dropped) with a 95%
    percentile-bootstrap interval (scipy.stats.bootstrap, ``reps`` resamples, fixed ``seed`` so
    the page rebuilds identically).

    Why the percentile bootstrap: its bounds are quantiles of resampled means, so they stay
    inside the data's range -- a positive loss never gets a negative bound, which the t interval
    does as soon as one seed fails (1e-4, 2e-4, 5e-3). BCa is not used: at 5-10 seeds its bias
    correction and acceleration are estimated from the same few values (the jackknife skewness
    of five points), which on a bimodal solved/failed sample swings the adjusted percentiles to
    the extremes; its advantage is asymptotic. The price, stated: at n = 5 a bootstrap interval
    is somewhat narrower than t's (it uses the plug-in spread and normal-like quantiles), so
    tables print n beside it. Estimate only, NaN bounds, for fewer than 2 values."""
    from scipy import stats

    funcs = {"mean": np.mean, "median": np.median}
    if statistic not in funcs:
        raise ValueError(f"statistic must be one of {sorted(funcs)}, not {statistic!r}")
    func = funcs[statistic]
    xs = _finite(values)
    n = len(xs)
    method = f"{statistic} with {_PCT} percentile bootstrap interval ({reps} resamples)"
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, method)
    estimate = float(func(xs))
    if n < 2:
        return Interval(estimate, math.nan, math.nan, n, method)
    if np.all(xs == xs[0]):  # no spread: every resample is the same
        return Interval(estimate, estimate, estimate, n, method)
    result = stats.bootstrap((xs,), func, n_resamples=reps, confidence_level=CONFIDENCE,
                             method="percentile", vectorized=True,
                             rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high), n, method)


# Exact permutation p up to this many splits of the pooled seeds (7 vs 7: 3,432); beyond, this
# many seeded random splits (p within about ±0.005 at p = 0.05).
_PERMUTATIONS = 9999


def metric_test(a: Sequence[float], b: Sequence[float]) -> Test:
    """Mann-Whitney U, two-sided, on the two arms' seeds (None/NaN dropped).

    Why: at 5-10 seeds a headline metric is often bimodal (seeds that solved near 0 loss, seeds
    that failed near the baseline), where Welch's t leans on a normal mean it does not have and
    one failed seed sets both the difference and the variance. U uses ranks only, so it is the
    same for loss or log-loss, and U/(n_a n_b) is the probability that a seed of a scores above
    a seed of b (ties half) -- the quantity rliable's probability of improvement reports across
    tasks. Its p is exact: the exact null distribution of U when no values tie; with ties
    (several seeds at accuracy 1.0), the exact permutation distribution of U over every split
    of the pooled seeds (seeded random splits past 9,999 of them), so ties are handled exactly
    rather than by a normal approximation. ``statistic`` is U of ``a``."""
    from scipy import stats

    xa, xb = _finite(a), _finite(b)
    na, nb = len(xa), len(xb)
    pooled = np.concatenate([xa, xb])
    if not (na and nb):
        return Test(math.nan, math.nan, "Mann-Whitney U, two-sided", na, nb)
    if len(np.unique(pooled)) == len(pooled):
        method = "Mann-Whitney U, two-sided, exact"
        result = stats.mannwhitneyu(xa, xb, alternative="two-sided", method="exact")
    else:
        splits = math.comb(na + nb, na)
        how = "exact" if splits <= _PERMUTATIONS else f"{_PERMUTATIONS} seeded"
        method = f"Mann-Whitney U, two-sided, {how} permutation p (ties)"
        perm = stats.PermutationMethod(n_resamples=_PERMUTATIONS, rng=np.random.default_rng(0))
        result = stats.mannwhitneyu(xa, xb, alternative="two-sided", method=perm)
    return Test(min(1.0, float(result.pvalue)), float(result.statistic), method, na, nb)


# ---------------------------------------------------------------- steps to solve


def _censored(steps: Sequence[float | None], budget: float | Sequence[float]):
    """(durations, solved flags): a seed that never solved (None/NaN) is censored at its
    budget -- it ran that long without solving -- instead of being dropped."""
    steps = list(steps)
    budgets = ([float(budget)] * len(steps) if np.ndim(budget) == 0
               else [float(b) for b in budget])  # type: ignore[union-attr]
    if len(budgets) != len(steps):
        raise ValueError(f"{len(steps)} seeds but {len(budgets)} budgets")
    durations, events = [], []
    for s, b in zip(steps, budgets):
        never = s is None or math.isnan(float(s))
        if not never and float(s) > b:
            raise ValueError(f"solved at step {s}, after its budget {b}")
        durations.append(b if never else float(s))
        events.append(not never)
    return np.asarray(durations, dtype=float), np.asarray(events, dtype=bool)


def steps_to_solve(steps: Sequence[float | None],
                   budget: float | Sequence[float]) -> StepsToSolve:
    """The Kaplan-Meier median of the step each seed solved at (lifelines KaplanMeierFitter).

    ``steps[i]`` is the step seed i solved at, None/NaN if it never did within ``budget`` (one
    number, or one per seed); those seeds are censored at their budget, not dropped -- dropping
    them reports the median of the lucky seeds. The median is the first step where the
    survival curve (the fraction still unsolved) falls to one half or below; ``inf`` when it
    never does, i.e. fewer than half the seeds solved. The 95% interval is where lifelines'
    pointwise band (exponential Greenwood, log(-log) scale) crosses one half (Brookmeyer-Crowley
    style); an upper bound is often ``inf``: print with :func:`format_steps`."""
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    method = (f"Kaplan-Meier median, unsolved seeds censored at the budget; {_PCT} interval "
              "from the exponential Greenwood band")
    durations, events = _censored(steps, budget)
    n, solved = len(durations), int(events.sum())
    if n == 0:
        return StepsToSolve(math.nan, math.nan, math.nan, 0, 0, method)
    km = KaplanMeierFitter(alpha=1 - CONFIDENCE).fit(durations, events)
    band = median_survival_times(km.confidence_interval_)
    low, high = (float(v) for v in np.asarray(band, dtype=float).ravel())
    sf = km.survival_function_.iloc[:, 0]
    curve = tuple((float(t), float(f)) for t, f in zip(sf.index, sf.to_numpy()))
    return StepsToSolve(float(km.median_survival_time_), low, high, n, solved, method, curve)


def steps_test(steps_a: Sequence[float | None], budget_a: float | Sequence[float],
               steps_b: Sequence[float | None], budget_b: float | Sequence[float]) -> Test:
    """The log-rank test (lifelines.statistics.logrank_test) of two arms' steps-to-solve, the
    unsolved seeds censored at their budgets: it compares the whole curves of "fraction still
    unsolved", so an arm that solves every seed late and one that solves half the seeds early
    are told apart by more than their medians. ``statistic`` is the chi-square (1 dof) of
    (observed - expected)^2 / variance. NaN p when no seed solved in either arm."""
    from lifelines.statistics import logrank_test

    method = "log-rank test, unsolved seeds censored at the budget"
    da, ea = _censored(steps_a, budget_a)
    db, eb = _censored(steps_b, budget_b)
    if not (len(da) and len(db)) or not (ea.any() or eb.any()):
        return Test(math.nan, math.nan, method, len(da), len(db))
    with warnings.catch_warnings():
        # lifelines 0.30 calls pandas positionally, which pandas 3 deprecates (still correct)
        warnings.simplefilter("ignore", DeprecationWarning)
        result = logrank_test(da, db, event_observed_A=ea, event_observed_B=eb)
    return Test(float(result.p_value), float(result.test_statistic), method, len(da), len(db))


# ---------------------------------------------------------------- many comparisons


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (statsmodels multipletests, method="holm") of a table's
    comparisons: controls the chance of any false "significant" among them, uniformly more
    powerful than Bonferroni, and needs no assumption about how the tests depend on each other
    (they share arms). NaN (not tested) stays NaN and does not count as a comparison."""
    from statsmodels.stats.multitest import multipletests

    ps = np.asarray([math.nan if p is None else float(p) for p in pvalues], dtype=float)
    out = np.full(len(ps), math.nan)
    tested = ~np.isnan(ps)
    if tested.any():
        out[tested] = multipletests(ps[tested], alpha=SIGNIFICANT, method="holm")[1]
    return [float(p) for p in out]
