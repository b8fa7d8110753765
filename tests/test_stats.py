"""Intervals and Welch's test (rnnlab.results.stats) against the formulas by hand, and their
columns in every table."""

from __future__ import annotations

import math

import pytest
from test_results import write_run

from rnnlab.results import aggregate, load_runs, render
from rnnlab.results.seedstats import metric_interval
from rnnlab.results.stats import mean_interval, t_interval, welch

# Student-t quantiles t_{0.975, df}, from printed tables (e.g. Abramowitz & Stegun 26.10).
T975 = {1: 12.7062, 2: 4.30265, 4: 2.77645}


def test_t_interval_by_hand():
    xs = [1.0, 2.0, 4.0]  # mean 7/3, s^2 = ((4/3)^2 + (1/3)^2 + (5/3)^2)/2 = 7/3
    half = T975[2] * math.sqrt(7 / 3) / math.sqrt(3)
    lo, hi = t_interval(xs)
    assert (lo, hi) == pytest.approx((7 / 3 - half, 7 / 3 + half), rel=1e-4)
    assert all(math.isnan(v) for v in t_interval([1.0]))
    assert t_interval([1.0, math.nan, 2.0, None]) == pytest.approx(t_interval([1.0, 2.0]))
    lo, hi = t_interval([2.0, 2.0, 2.0])
    assert lo == hi == 2.0


def _bounds(interval):
    return interval.low, interval.high


def test_an_interval_never_leaves_what_the_quantity_can_be(tmp_path):
    """A positive loss whose t interval goes negative, an accuracy whose t interval passes 1:
    the tables print the percentile bootstrap for both, and say so in header and footnote; a
    metric that can be negative keeps the t interval."""
    loss, acc = [1e-4, 2e-4, 5e-3], [0.90, 1.0, 1.0]
    assert t_interval(loss)[0] < 0 and t_interval(acc)[1] > 1  # what the tables printed
    for values, metric, (low, high) in ((loss, "test/loss", (0, math.inf)),
                                        (acc, "test/acc", (0, 1))):
        lo, hi, method = mean_interval(values, metric)
        assert method == "bootstrap" and low <= lo <= hi <= high
        assert (lo, hi) == pytest.approx(_bounds(metric_interval(values)))  # seedstats', reused
    assert mean_interval([-1.0, 0.5, 2.0], "gradflow/layer0/lyapunov") == pytest.approx(
        (*t_interval([-1.0, 0.5, 2.0]), "t"))
    for seed, (lo_, ac) in enumerate(zip(loss, acc)):
        write_run(tmp_path, str(seed), seed=seed,
                  metrics={"test/loss": lo_, "test/acc": ac, "test/delta": seed - 1.0})
    runs = load_runs([tmp_path])
    for metrics in (None, ["test/acc"]):
        table = aggregate(runs, metrics=metrics)
        metric = table.attrs["metrics"][0]
        assert table.loc[0, f"{metric} ci method"] == "bootstrap"
        assert table.loc[0, f"{metric} ci low"] >= 0 and table.loc[0, f"{metric} ci high"] <= 1
        text = render(table, "md")
        assert f"{metric} 95% CI (bootstrap)" in text.splitlines()[0]
        assert "\n95% CI (bootstrap): percentile bootstrap of the mean" in text
        assert r"% 95\% CI (bootstrap): percentile bootstrap" in render(table, "latex")
        assert f"{metric} ci method" in render(table, "csv").splitlines()[0]
    table = aggregate(runs, metrics=["test/delta"])  # not known to be bounded: t, said so
    assert table.loc[0, "test/delta ci method"] == "t"
    assert "test/delta 95% CI (t)" in render(table, "md")


def test_welch_by_hand():
    a, b = [1.0, 2.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0]
    va, vb = 7 / 3, 2.5  # sample variances
    se = math.sqrt(va / 3 + vb / 5)
    t = (7 / 3 - 7.0) / se
    df = (va / 3 + vb / 5) ** 2 / ((va / 3) ** 2 / 2 + (vb / 5) ** 2 / 4)
    result = welch(a, b)
    assert result.diff == pytest.approx(7 / 3 - 7)
    assert result.t == pytest.approx(t) and result.df == pytest.approx(df)
    assert (result.n_a, result.n_b) == (3, 5)
    # Two-sided p from the t distribution with Welch's df (about 4.2): |t| = 4.54 lies between
    # the 0.99 and 0.995 quantiles at 4 dof (3.747, 4.604), so 0.01 < p < 0.02.
    assert 0.01 < result.p < 0.02 and result.significant
    from scipy import stats
    assert result.p == pytest.approx(2 * stats.t.sf(abs(t), df))


def test_welch_untestable_cases_say_so():
    assert math.isnan(welch([1.0], [2.0, 3.0]).p)
    same = welch([1.0, 1.0], [2.0, 2.0])
    assert math.isnan(same.p) and same.diff == -1.0 and not same.significant
    assert welch([1.0, 2.0], [1.0, 2.0]).p == pytest.approx(1.0)


def _cells(tmp_path, per_cell, extra=None):
    for job, (cell, losses) in enumerate(per_cell.items()):
        for seed, loss in enumerate(losses):
            write_run(tmp_path, f"{job}_{seed}", {"model.cell": cell, **(extra or {})},
                      seed=seed, metrics={"test/loss": loss, "baseline/loss": 1 / 6},
                      overrides=[f"model={cell}"])
    return load_runs([tmp_path])


def test_every_row_is_tested_against_the_best_row(tmp_path):
    per_cell = {"rnn": [0.166, 0.168, 0.165], "gru": [0.001, 0.003, 0.002],
                "lstm": [0.004, 0.0009, 0.02]}
    table = aggregate(_cells(tmp_path, per_cell))
    assert table["vs"].tolist() == ["gru"] * 3
    p = table["test/loss p"].tolist()
    assert math.isnan(p[1])
    assert p[0] == pytest.approx(welch(per_cell["rnn"], per_cell["gru"]).p)
    assert p[2] == pytest.approx(welch(per_cell["lstm"], per_cell["gru"]).p)
    assert p[0] < 0.05 < p[2]  # rnn differs beyond its seeds' spread, lstm does not
    lo, hi = table.loc[0, "test/loss ci low"], table.loc[0, "test/loss ci high"]
    assert (lo, hi) == pytest.approx(_bounds(metric_interval(per_cell["rnn"])))
    shown = render(table, "md")
    header = shown.splitlines()[0]
    assert ("test/loss 95% CI (bootstrap)" in header
            and "p vs best cell (Welch, test/loss)" in header)
    rows = shown.splitlines()[2:5]
    assert "* (vs gru)" in rows[0] and "| best " in rows[1] and "(vs gru)" in rows[2]
    assert "*" not in rows[2].split("|")[-2]


def test_a_named_control_within_each_setting_of_the_other_keys(tmp_path):
    # variant x T: each variant is tested against vanilla at its own T, never across T.
    losses = {("vanilla", 10): [0.10, 0.11, 0.12], ("nfg", 10): [0.30, 0.31, 0.29],
              ("vanilla", 20): [0.50, 0.52, 0.51], ("nfg", 20): [0.10, 0.70, 0.40]}
    for j, ((variant, T), values) in enumerate(losses.items()):
        for seed, loss in enumerate(values):
            write_run(tmp_path, f"{j}_{seed}", {"model.variant": variant, "data.seq_len": T},
                      seed=seed, metrics={"test/loss": loss},
                      overrides=[f"model.variant={variant}", f"data.seq_len={T}"])
    table = aggregate(load_runs([tmp_path]), compare="model.variant", against="vanilla")
    by = {(r["model.variant"], r["data.seq_len"]): r for _, r in table.iterrows()}
    assert by[("nfg", 10)]["test/loss p"] == pytest.approx(
        welch(losses[("nfg", 10)], losses[("vanilla", 10)]).p)
    assert by[("nfg", 20)]["test/loss p"] == pytest.approx(
        welch(losses[("nfg", 20)], losses[("vanilla", 20)]).p)
    assert math.isnan(by[("vanilla", 20)]["test/loss p"])
    assert "p vs variant=vanilla (Welch, test/loss)" in render(table, "md")
    with pytest.raises(KeyError, match="compare=model.cell: not a setting that differs"):
        aggregate(load_runs([tmp_path]), compare="model.cell")


def test_the_runs_own_compare_setting_is_used(tmp_path):
    per_cell = {"rnn": [0.16, 0.17], "gru": [0.01, 0.02], "lstm": [0.05, 0.07]}
    runs = _cells(tmp_path, per_cell, {"compare.key": "model.cell", "compare.against": "lstm"})
    table = aggregate(runs)
    assert table["vs"].tolist() == ["lstm"] * 3
    assert math.isnan(table.loc[2, "test/loss p"]) and "control" in render(table, "md")


def test_steps_to_solve_from_the_validation_curve_by_hand(tmp_path):
    """Seed 0 crosses 10% of the baseline (0.1) at its 3rd validation, seed 1 at its 2nd,
    seed 2 never; a run without a CSV log is not counted either way."""
    curves = {0: [0.9, 0.5, 0.09, 0.05], 1: [0.8, 0.08, 0.2, 0.01], 2: [1.0, 0.9, 0.5, 0.3]}
    for seed, losses in curves.items():
        run_dir = write_run(tmp_path, f"r{seed}", {"model.cell": "gru"}, seed=seed,
                            metrics={"test/loss": losses[-1], "baseline/loss": 1.0})
        (run_dir / "csv").mkdir()
        rows = ["epoch,step,train/loss,val/loss"]
        for i, loss in enumerate(losses):
            step = 250 * (i + 1) - 1  # Lightning's step of a validation after 250 (i+1) updates
            rows += [f"{i},{step},0.5,", f"{i},{step},,{loss}"]
        (run_dir / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    write_run(tmp_path, "r3", {"model.cell": "gru"}, seed=3,
              metrics={"test/loss": 0.01, "baseline/loss": 1.0})
    table = aggregate(load_runs([tmp_path]))
    assert table.loc[0, "solved_step"] == (750 + 500) / 2
    assert table.loc[0, "solved_step_of"] == (2, 3)
    assert "steps to solve (median, val)" in render(table, "md")
    assert "| 625 (2/3) " in render(table, "md")
