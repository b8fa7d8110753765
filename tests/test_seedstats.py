"""rnnlab.results.seedstats against values worked out by hand on small made-up samples."""

from __future__ import annotations

import math

import pytest

from rnnlab.results.seedstats import (
    format_steps,
    holm,
    metric_interval,
    metric_test,
    solved_interval,
    solved_test,
    steps_test,
    steps_to_solve,
)
from rnnlab.results.stats import t_interval

NAN = math.nan
Z975 = 1.959963984540054  # the normal 0.975 quantile


def binom_tail_ge(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def binom_tail_le(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


# ---------------------------------------------------------------- solved counts


def test_clopper_pearson_3_of_10_by_hand():
    r = solved_interval(3, 10)
    assert (r.k, r.n, r.fraction) == (3, 10, 0.3)
    # Published value (e.g. any table of exact binomial limits): 0.0667 to 0.6525.
    assert (r.low, r.high) == pytest.approx((0.0667, 0.6525), abs=5e-5)
    # The defining equations: P(X >= 3 | low) = 0.025 and P(X <= 3 | high) = 0.025.
    assert binom_tail_ge(3, 10, r.low) == pytest.approx(0.025, abs=1e-9)
    assert binom_tail_le(3, 10, r.high) == pytest.approx(0.025, abs=1e-9)
    assert "Clopper-Pearson" in r.method


def test_clopper_pearson_edges_closed_form():
    # k = 0: low 0, high solves (1 - p)^n = 0.025; k = n mirrors it.
    none = solved_interval(0, 10)
    assert none.low == 0 and none.high == pytest.approx(1 - 0.025 ** (1 / 10))  # 0.3085
    every = solved_interval(5, 5)
    assert every.high == 1 and every.low == pytest.approx(0.025 ** (1 / 5))  # 0.4782
    empty = solved_interval(0, 0)
    assert math.isnan(empty.low) and math.isnan(empty.high) and math.isnan(empty.fraction)
    with pytest.raises(ValueError):
        solved_interval(4, 3)


def test_barnard_3_of_3_against_0_of_3_by_hand():
    # Pooled Wald statistic T = (p_a - p_b) / sqrt(p(1-p)(1/3 + 1/3)), p the pooled fraction:
    # 3/3 vs 0/3 gives 1 / sqrt(1/2 * 1/2 * 2/3) = sqrt(6), the most extreme table there is; only
    # it and its mirror (0/3 vs 3/3) reach |T| >= sqrt(6). Under a common solve rate pi each has
    # probability pi^3 (1 - pi)^3, largest at pi = 1/2: p = sup 2 pi^3 (1-pi)^3 = 2/64.
    r = solved_test(3, 3, 0, 3)
    assert r.p == pytest.approx(2 / 64)
    assert r.statistic == pytest.approx(math.sqrt(6))
    assert r.significant and (r.n_a, r.n_b) == (3, 3)
    # Fisher's test, which conditions on 3 solved in all, cannot get there: the hypergeometric
    # probability of this table is 1/C(6,3) = 1/20, two-sided p = 2/20 = 0.1.
    from scipy import stats
    assert stats.fisher_exact([[3, 0], [0, 3]]).pvalue == pytest.approx(2 / 20)


def test_barnard_2_of_3_against_0_of_3_by_hand():
    # Observed T = (2/3) / sqrt(1/3 * 2/3 * 2/3) = sqrt(3). Tables (x_a, x_b) with |T| >= sqrt(3):
    # (3,0) sqrt(6), (2,0) and (3,1) sqrt(3), and their mirrors; (1,0), (2,1), (3,2) give 1.10,
    # 0.82, 1.10. With q = 1 - pi: P = 2 [pi^3 q^3 + 3 pi^2 q * q^3 + pi^3 * 3 pi q^2]
    # = 2 u^2 (3 - 5u), u = pi q <= 1/4, increasing in u, so the sup is at pi = 1/2: 14/64.
    r = solved_test(2, 3, 0, 3)
    assert r.p == pytest.approx(14 / 64)
    assert r.statistic == pytest.approx(math.sqrt(3)) and not r.significant


def test_solved_test_degenerate_tables():
    assert solved_test(0, 5, 0, 5).p == pytest.approx(1.0)
    assert solved_test(4, 4, 6, 6).p == pytest.approx(1.0)
    assert math.isnan(solved_test(1, 3, 0, 0).p)
    with pytest.raises(ValueError):
        solved_test(4, 3, 0, 3)


# ---------------------------------------------------------------- headline metric


def test_metric_interval_respects_a_positive_loss():
    xs = [1e-4, 2e-4, 5e-3]  # two seeds solved, one failed
    r = metric_interval(xs)
    assert r.estimate == pytest.approx(sum(xs) / 3) and r.n == 3
    # The t interval goes negative here; the bootstrap's bounds are resampled means, inside
    # [min, max]. By hand: each of the 27 ordered resamples is equally likely; all-min and
    # all-max each have probability 1/27 = 3.7% > 2.5%, so the 2.5% and 97.5% quantiles of the
    # resampled means are exactly the smallest and largest value.
    assert t_interval(xs)[0] < 0
    assert (r.low, r.high) == pytest.approx((1e-4, 5e-3), rel=1e-12)
    assert "percentile bootstrap" in r.method


def test_metric_interval_bimodal_by_hand():
    # Four failed seeds (0) and one solved (1): a resampled mean is K/5, K ~ Binomial(5, 1/5).
    # P(K = 0) = 0.8^5 = 0.328 > 0.025, so the low bound is 0; P(K <= 2) = 0.942 < 0.975 <=
    # P(K <= 3) = 0.993, so the high bound is 3/5.
    r = metric_interval([0, 0, 0, 0, 1])
    assert (r.estimate, r.low, r.high) == pytest.approx((0.2, 0.0, 0.6))
    assert binom_tail_le(2, 5, 0.2) < 0.975 <= binom_tail_le(3, 5, 0.2)


def test_metric_interval_median_small_n_and_reproducible():
    assert metric_interval([1.0, 2.0, 3.0, 4.0, 100.0], "median").estimate == 3.0
    one = metric_interval([5.0, NAN, None])
    assert one.estimate == 5.0 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(metric_interval([]).estimate)
    same = metric_interval([2.0, 2.0, 2.0])
    assert (same.low, same.high) == (2.0, 2.0)
    xs = [0.31, 0.25, 0.4, 0.28, 0.5, 0.33]
    assert metric_interval(xs) == metric_interval(xs)  # fixed seed: the page rebuilds the same
    with pytest.raises(ValueError):
        metric_interval(xs, "mode")


def test_mann_whitney_separated_samples_by_hand():
    # No ties: U of a counts pairs with a > b. [1,2,3] vs [4,5,6] gives U = 0; of the C(6,3) = 20
    # equally likely splits only this one and its mirror are as extreme: p = 2/20.
    r = metric_test([1, 2, 3], [4, 5, 6])
    assert (r.statistic, r.p) == pytest.approx((0.0, 0.1))
    assert "exact" in r.method and not r.significant
    # Five against five, fully separated: p = 2 / C(10,5) = 2/252.
    r = metric_test([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 1.0])
    assert r.p == pytest.approx(2 / 252) and r.significant


def test_mann_whitney_ties_by_hand():
    # Accuracy per seed, four of five solved against one of five. Pooled: five 1s, five 0s.
    # If a holds j of the 1s, U_a = j*j (its 1s over b's j 0s) + j(5-j)/2 (1-1 ties)
    # + (5-j)j/2 (0-0 ties) = 5j; observed j = 4, U = 20, mean 12.5. As extreme: j in
    # {0, 1, 4, 5}, probabilities C(5,j)^2 / C(10,5): (1 + 25 + 25 + 1) / 252.
    r = metric_test([1, 1, 1, 1, 0], [0, 0, 0, 0, 1])
    assert r.statistic == pytest.approx(20.0)
    assert r.p == pytest.approx(52 / 252)
    assert "ties" in r.method
    # [0,0,1] vs [1,1,1]: a holding z of the two 0s has U = 7.5, 4.5, 1.5 for z = 0, 1, 2, with
    # 4, 12, 4 of the 20 splits; observed U = 1.5, as extreme z in {0, 2}: p = 8/20.
    r = metric_test([0, 0, 1], [1, 1, 1])
    assert (r.statistic, r.p) == pytest.approx((1.5, 0.4))


def test_mann_whitney_missing_values():
    r = metric_test([1.0, NAN, None, 2.0], [3.0, 4.0])
    assert (r.n_a, r.n_b) == (2, 2)
    assert math.isnan(metric_test([], [1.0, 2.0]).p)


# ---------------------------------------------------------------- steps to solve

# Six seeds: solved at 300, 500, 700, 900; seed 2 had a budget of 600 and seed 4 of 1000 and
# neither solved.
STEPS = [300, 500, None, 700, NAN, 900]
BUDGETS = [1000, 1000, 600, 1000, 1000, 1000]


def test_kaplan_meier_curve_and_median_by_hand():
    r = steps_to_solve(STEPS, BUDGETS)
    assert (r.n, r.solved) == (6, 4)
    # S(t) = product over solve steps <= t of (1 - d/n_at_risk):
    #   300: 6 at risk, 1 solves -> 5/6
    #   500: 5 at risk           -> 5/6 * 4/5 = 2/3
    #   600: seed 2 censored (leaves the risk set, S unchanged)
    #   700: 3 at risk           -> 2/3 * 2/3 = 4/9
    #   900: 2 at risk           -> 4/9 * 1/2 = 2/9
    #  1000: seed 4 censored
    curve = dict(r.curve)
    expected = {0: 1, 300: 5 / 6, 500: 2 / 3, 600: 2 / 3, 700: 4 / 9, 900: 2 / 9, 1000: 2 / 9}
    assert curve == pytest.approx({float(k): v for k, v in expected.items()})
    # Median: the first step with S <= 1/2. Dropping the unsolved seeds instead would give the
    # median of [300, 500, 700, 900] = 600, too early.
    assert r.median == 700


def test_kaplan_meier_median_interval_by_hand():
    # Exponential Greenwood band: c(t) = sum d / (n (n - d)) over solve steps <= t, and
    # S(t) ** exp(±z sqrt(c) / log S) (the band on the log(-log S) scale).
    c, S = 0.0, 1.0
    band = {}
    for t, n in ((300, 6), (500, 5), (700, 3), (900, 2)):
        c += 1 / (n * (n - 1))
        S *= 1 - 1 / n
        w = Z975 * math.sqrt(c) / math.log(S)  # negative
        band[t] = (S ** math.exp(-w), S ** math.exp(w))  # (lower, upper)
    assert band[300][0] == pytest.approx(0.2731, abs=1e-4)  # already below 1/2
    assert band[900][1] == pytest.approx(0.6147, abs=1e-4)  # the upper band never gets there
    low = min(t for t, (lo, _) in band.items() if lo <= 0.5)
    assert low == 300 and all(hi > 0.5 for _, hi in band.values())
    r = steps_to_solve(STEPS, BUDGETS)
    assert (r.low, r.high) == (low, math.inf)
    assert r.label() == "700 [300, not reached]"


def test_steps_to_solve_none_solved_and_errors():
    r = steps_to_solve([None, None, None], 2000)
    assert (r.median, r.solved, r.n) == (math.inf, 0, 3)
    assert format_steps(r.median) == "not reached" and format_steps(NAN) == "–"
    assert format_steps(1250.0) == "1,250"
    # One seed of four solved: fewer than half, median not reached.
    assert steps_to_solve([100, None, None, None], 1000).median == math.inf
    assert steps_to_solve([], 1000).n == 0
    with pytest.raises(ValueError):
        steps_to_solve([1200], 1000)  # solved after its budget
    with pytest.raises(ValueError):
        steps_to_solve([100, 200], [1000])


def test_log_rank_by_hand():
    # a: solved at 100 and 300, one seed unsolved; b: solved at 200, two unsolved; budget 400.
    # At each solve step, with n at risk (n_a of them in a) and d solves:
    #   E_a += d n_a / n,  V += d (n_a/n)(1 - n_a/n)(n - d)/(n - 1)
    #   100: n=6, n_a=3 -> E 0.5, V 0.25
    #   200: n=5, n_a=2 -> E 0.4, V 0.24
    #   300: n=4, n_a=2 -> E 0.5, V 0.25
    # O_a = 2, E_a = 1.4, V = 0.74: chi2 = 0.6^2 / 0.74, and for 1 dof p = erfc(sqrt(chi2/2)).
    chi2 = 0.36 / 0.74
    r = steps_test([100, 300, None], 400, [200, None, None], 400)
    assert r.statistic == pytest.approx(chi2)
    assert r.p == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))
    assert (r.n_a, r.n_b) == (3, 3) and "log-rank" in r.method


def test_log_rank_untestable():
    assert math.isnan(steps_test([None, None], 100, [None], 100).p)
    assert math.isnan(steps_test([], 100, [50], 100).p)


# ---------------------------------------------------------------- Holm


def test_holm_step_down_by_hand():
    # Four tested p's (the NaN is not a comparison). Sorted: 0.005, 0.01, 0.03, 0.04, times
    # m - i + 1 = 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04; then the running maximum: 0.02, 0.03,
    # 0.06, 0.06, put back in the input's order.
    adjusted = holm([0.01, NAN, 0.04, 0.03, 0.005])
    assert adjusted[0] == pytest.approx(0.03) and math.isnan(adjusted[1])
    assert adjusted[2:] == pytest.approx([0.06, 0.06, 0.02])
    # Capped at 1: 0.5 * 2 = 1.0, and 0.6 keeps the running maximum 1.0.
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    assert all(math.isnan(p) for p in holm([NAN, None]))
    assert holm([0.02]) == pytest.approx([0.02])
