"""Generated verdicts (rnnlab.results.verdicts) on made-up tables: a direction only where the
Holm-adjusted p is below 0.05, the numbers and both p's always, "not tested" where nothing can
be; the p's against values worked out by hand."""

from __future__ import annotations

import math

import pytest
from test_results import write_run

from rnnlab.results import aggregate, load_runs
from rnnlab.results.stats import welch
from rnnlab.results.verdicts import (
    NO_DIFFERENCE,
    anchor,
    baseline_verdicts,
    compare_paragraph,
    compare_verdicts,
    paragraph,
    table_verdicts,
)

SOLVED = [0.001, 0.002, 0.003]  # against the adding baseline 1/6: solved (< 1/60)
AT_BASELINE = [0.166, 0.168, 0.165]


def _table(tmp_path, per_row, key="model.cell", metric="test/loss", status=None, **kwargs):
    """An aggregate of made-up runs: ``per_row`` = {row value: per-seed values}."""
    for j, (value, values) in enumerate(per_row.items()):
        for seed, x in enumerate(values):
            state = (status or {}).get(value, "completed")
            metrics = {} if state != "completed" else {metric: x, "baseline/loss": 1 / 6}
            write_run(tmp_path, f"{j}_{seed}", {key: value}, seed=seed, status=state,
                      metrics=metrics, overrides=[f"{key}={value}"])
    return aggregate(load_runs([tmp_path]), **kwargs)


def _holm_by_hand(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment written out: sort ascending, multiply the i-th (0-based) by
    m - i, carry the running maximum, cap at 1."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def test_a_difference_significant_after_holm_is_stated_the_other_not(tmp_path):
    per_row = {"rnn": AT_BASELINE, "gru": SOLVED, "lstm": [0.004, 0.0009, 0.02]}
    table = _table(tmp_path, per_row)
    metric = [v for v in table_verdicts(table) if v.kind == "metric"]
    assert [(v.a, v.b) for v in metric] == [("gru", "rnn"), ("gru", "lstm")]
    raw = [welch(per_row["rnn"], SOLVED).p, welch(per_row["lstm"], SOLVED).p]
    assert [v.p for v in metric] == pytest.approx(raw)
    assert [v.p_holm for v in metric] == pytest.approx(_holm_by_hand(raw))
    rnn, lstm = metric
    assert rnn.shown and rnn.favours == "gru"
    assert rnn.text.startswith("test/loss gru 0.002 ± 0.001 vs rnn 0.1663 ± 0.001528 (n = 3, 3) "
                               "(Welch's t p = ")
    assert rnn.text.endswith(": gru has the lower test/loss.")
    assert not lstm.shown and lstm.favours is None
    assert lstm.text.endswith(f": {NO_DIFFERENCE}.") and "lower" not in lstm.text


def test_raw_p_below_005_that_holm_lifts_above_claims_nothing(tmp_path):
    # Each row against the control: diff 0.3, s = 0.1 on both sides, so t = 0.3 / sqrt(2 *
    # 0.01 / 3) = 3.674 on 4 dof: p = 0.0213 each; Holm over three: 0.064 each.
    per_row = {"ctl": [1.0, 1.1, 1.2], "a": [1.3, 1.4, 1.5], "b": [1.3, 1.4, 1.5],
               "c": [1.3, 1.4, 1.5]}
    table = _table(tmp_path, per_row, key="model.variant", compare="model.variant",
                   against="ctl")
    verdicts = [v for v in table_verdicts(table) if v.kind == "metric"]
    assert len(verdicts) == 3
    for v in verdicts:
        assert v.p == pytest.approx(0.0213, abs=5e-4) and v.p < 0.05
        assert v.p_holm == pytest.approx(3 * v.p)
        assert not v.shown
        assert v.text.startswith("test/loss variant=ctl 1.1 ± 0.1 vs variant=")
        assert v.text.endswith(f"{NO_DIFFERENCE} after Holm's correction.")


def test_solved_counts_by_barnard_3_of_3_against_0_of_3(tmp_path):
    table = _table(tmp_path, {"rnn": AT_BASELINE, "gru": SOLVED})
    solved = [v for v in table_verdicts(table) if v.kind == "solved"]
    assert len(solved) == 1
    # Barnard's exact p of the most extreme 2x2 table at n = 3 per arm: only it and its mirror
    # are as extreme, each of probability (pi (1 - pi))^3, largest at pi = 1/2: 2 * 4^-3.
    assert solved[0].p == pytest.approx(2 * 4.0 ** -3) == solved[0].p_holm
    assert solved[0].text == ("gru 3/3 solved vs rnn 0/3 (Barnard's exact p = 0.031, Holm "
                              "0.031): gru solves more often.")


def test_diverged_runs_are_counted_and_an_empty_arm_is_not_tested(tmp_path):
    table = _table(tmp_path, {"rnn": [0, 0, 0], "gru": SOLVED}, status={"rnn": "diverged"})
    by_kind = {v.kind: v for v in table_verdicts(table)}
    assert by_kind["metric"].text.endswith(": not tested (0 completed runs on a side).")
    assert math.isnan(by_kind["metric"].p) and not by_kind["metric"].shown
    diverged = by_kind["diverged"]
    assert diverged.p == pytest.approx(2 * 4.0 ** -3)
    assert diverged.text.startswith("gru 0/3 diverged vs rnn 3/3 (Barnard")
    assert diverged.text.endswith(": rnn diverges more often.") and diverged.favours == "gru"


def test_an_accuracy_verdict_says_higher(tmp_path):
    per_row = {"rnn": [0.50, 0.52, 0.51], "gru": [0.90, 0.91, 0.93]}
    table = _table(tmp_path, per_row, metric="test/acc", metrics=["test/acc"])
    (verdict,) = [v for v in table_verdicts(table) if v.kind == "metric"]
    assert verdict.shown and verdict.favours == "gru"
    assert verdict.text.endswith(": gru has the higher test/acc.")


def test_conditions_prefix_each_verdict(tmp_path):
    for j, (cell, T, values) in enumerate([("rnn", 10, AT_BASELINE), ("gru", 10, SOLVED),
                                           ("rnn", 20, AT_BASELINE), ("gru", 20, SOLVED)]):
        for seed, x in enumerate(values):
            write_run(tmp_path, f"{j}_{seed}", {"model.cell": cell, "data.seq_len": T},
                      seed=seed, metrics={"test/loss": x, "baseline/loss": 1 / 6},
                      overrides=[f"model={cell}", f"data.seq_len={T}"])
    verdicts = table_verdicts(aggregate(load_runs([tmp_path])))
    assert [v.text.split(":")[0] for v in verdicts if v.kind == "metric"] == ["T=10", "T=20"]


# ---------------------------------------------------------------- baselines


def _one_sample_p_df2(t: float) -> float:
    """Two-sided p of Student's t with 2 degrees of freedom, in closed form: its CDF is
    1/2 + t / (2 sqrt(t^2 + 2)), so P(|T| > t) = 1 - t / sqrt(t^2 + 2)."""
    return 1 - t / math.sqrt(t * t + 2)


def test_a_baseline_inside_the_rows_interval_is_no_difference_outside_it_a_direction(tmp_path):
    # gru's seeds 1, 2, 3: mean 2, s = 1, se = 1/sqrt(3); its 95% t interval 2 ± 4.30265/sqrt(3).
    table = _table(tmp_path, {"gru": [1.0, 2.0, 3.0], "rnn": [5.0]}, metric="test/mse",
                   metrics=["test/mse"])
    rows = [{"baseline": "seasonal naive", "test/mse": 3.0},
            {"baseline": "ETS", "test/mse": 10.0}]
    verdicts = baseline_verdicts(table, rows)
    assert [(v.a, v.b) for v in verdicts] == [("seasonal naive", "rnn"), ("ETS", "rnn"),
                                              ("seasonal naive", "gru"), ("ETS", "gru")] or \
        [(v.a, v.b) for v in verdicts] == [("seasonal naive", "gru"), ("ETS", "gru"),
                                           ("seasonal naive", "rnn"), ("ETS", "rnn")]
    by = {(v.a, v.b): v for v in verdicts}
    naive, ets = by[("seasonal naive", "gru")], by[("ETS", "gru")]
    p_naive = _one_sample_p_df2(1 / (1 / math.sqrt(3)))  # t = sqrt(3): 0.2254
    p_ets = _one_sample_p_df2(8 / (1 / math.sqrt(3)))  # t = 8 sqrt(3): 0.0052
    assert naive.p == pytest.approx(p_naive) and ets.p == pytest.approx(p_ets)
    # Holm over the two tested pairs (rnn's single run is not tested, and not counted).
    assert (ets.p_holm, naive.p_holm) == pytest.approx(tuple(_holm_by_hand([p_ets, p_naive])))
    half = 4.302653 / math.sqrt(3)
    assert naive.text.startswith(f"gru: test/mse 2, 95% t interval [{2 - half:.4g}, "
                                 f"{2 + half:.4g}] (n = 3) vs seasonal naive 3: the interval "
                                 "contains it (one-sample t p = 0.23, Holm 0.23)")
    assert not naive.shown and naive.text.endswith(f"{NO_DIFFERENCE}.")
    assert ets.shown and ets.favours == "gru"
    assert "the interval excludes it" in ets.text
    assert ets.text.endswith(": gru has the lower test/mse.")
    untested = by[("ETS", "rnn")]
    assert untested.text.endswith("not tested (fewer than 2 completed runs).")


def test_a_baseline_ahead_of_every_row_after_holm(tmp_path):
    table = _table(tmp_path, {"rnn": [0.60, 0.61, 0.62], "gru": [0.70, 0.71, 0.72]},
                   metric="test/acc", metrics=["test/acc"])
    verdicts = baseline_verdicts(table, [{"baseline": "bag-of-words", "test/acc": 0.80,
                                          "test/f1": 0.8}])
    assert len(verdicts) == 2 and all(v.shown and v.favours == "bag-of-words" for v in verdicts)
    assert all(v.text.endswith(": bag-of-words has the higher test/acc.") for v in verdicts)


# ---------------------------------------------------------------- rnnlab-compare's table


def _record(arms: dict[str, list[tuple[float, float | None]]]) -> dict:
    """A compare.json with one condition: per arm, per evaluation seed (test/loss, the step it
    solved at or None)."""
    out = {}
    for name, seeds in arms.items():
        runs = [{"seed": 1000 + i, "status": "completed", "threshold_task": True, "steps": 1000,
                 "num_params": 100,
                 "metrics": {"test/loss": loss, "baseline/loss": 1.0},
                 "solved": {"step": step} if step is not None else {"stopped": False}}
                for i, (loss, step) in enumerate(seeds)]
        out[name] = {"eval": runs, "pick": {"config": ["optimizer.lr=0.01"], "why": "best"}}
    return {"plan": {"budget": 1000}, "conditions": [{"condition": ["data.seq_len=10"],
                                                      "arms": out}]}


def test_compare_verdicts_from_the_fair_comparisons_rows():
    from rnnlab.studies.compare_table import rows

    gru = [(0.001 * (i + 1), 300 + 20 * i) for i in range(10)]
    rnn = [(0.5 + 0.01 * i, None) for i in range(10)]
    # lstm: one seed unsolved, the others interleaved with gru's.
    lstm = [(0.3, None)] + [(0.001 * i + 0.0005, 310 + 20 * i) for i in range(1, 10)]
    record = _record({"rnn": rnn, "gru": gru, "lstm": lstm})
    verdicts = compare_verdicts(rows(record))
    by = {(v.kind, v.b): v for v in verdicts}
    assert {v.a for v in verdicts} == {"gru"}  # the condition's best arm
    solved = by[("solved", "rnn")]
    # 10/10 against 0/10: Barnard's p = 2 * 4^-10 (the most extreme table and its mirror).
    assert solved.p == pytest.approx(2 * 4.0 ** -10)
    assert solved.text.startswith("data.seq_len=10: gru 10/10 solved vs rnn 0/10 "
                                  "(Barnard's exact p = 1.9e-06, Holm ")
    assert solved.text.endswith(": gru solves more often.") and solved.favours == "gru"
    metric = by[("metric", "rnn")]
    # Every gru seed below every rnn seed: the exact Mann-Whitney p is 2 / C(20, 10).
    assert metric.p == pytest.approx(2 / math.comb(20, 10))
    assert "Mann-Whitney U p = 1.1e-05" in metric.text
    assert metric.text.endswith(": gru has the lower test/loss.")
    assert by[("steps", "rnn")].text.endswith(": gru solves sooner.")
    # 9/10 against 10/10: no difference, in every test.
    for kind in ("solved", "metric", "steps"):
        v = by[(kind, "lstm")]
        assert not v.shown and NO_DIFFERENCE in v.text, v.text
    assert by[("solved", "lstm")].text.startswith("data.seq_len=10: gru 10/10 solved vs lstm 9/10")
    # A compare block's paragraph: its own anchor, beside the reproduce block of the same name.
    lines = compare_paragraph("copy", record)
    assert lines[1].startswith('<a id="verdict-compare-copy"></a>')
    assert sum(line.startswith("- ") for line in lines) == len(verdicts) == 6


# ---------------------------------------------------------------- the paragraph and the page


def test_the_paragraph_is_anchored_and_states_its_rule(tmp_path):
    table = _table(tmp_path, {"rnn": AT_BASELINE, "gru": SOLVED})
    lines = paragraph("copy", [("Each row against the best row", table_verdicts(table))])
    text = "\n".join(lines)
    assert lines[1].startswith(f'<a id="{anchor("copy")}"></a>**Verdict (generated)**')
    assert "Holm-adjusted p < 0.05" in text
    assert ("Each row against the best row (test/loss by Welch's t test; solved counts by "
            "Barnard's exact test):") in text
    assert text.count("\n- ") == 2
    empty = paragraph("x", [("none", [])])
    assert empty[-1].endswith("This table makes no comparison (one row, or no control).")


def test_section_block_ends_with_the_verdict_and_baselines_say_only_what_the_test_does(
        tmp_path, monkeypatch):
    import rnnlab.results.baselines as baselines
    import rnnlab.results.report as report
    from rnnlab.studies.reproduce import Plan, Section, section_block

    out = tmp_path / "out"
    for j, (cell, values) in enumerate({"rnn": AT_BASELINE, "gru": SOLVED}.items()):
        for seed, x in enumerate(values):
            write_run(out / "sec", f"{j}_{seed}", {"model.cell": cell}, seed=seed,
                      metrics={"test/loss": x, "baseline/loss": 1 / 6},
                      overrides=[f"model={cell}"])
    monkeypatch.setattr(report, "write_report", lambda *a, **k: None)  # figures: not tested here
    monkeypatch.setattr(baselines, "baselines_for",
                        lambda data: [{"baseline": "constant", "test/loss": 1 / 6}])
    block = section_block(Plan([], [0, 1, 2], out=out, figures=tmp_path / "figs"),
                          Section("sec", "quickstart"))
    assert "the baseline is better" not in block and "the cell is better" not in block
    assert "Classical baselines on the same test split" in block
    verdict = block[block.index('<a id="verdict-sec"></a>**Verdict (generated)**'):]
    assert "gru has the lower test/loss." in verdict
    assert "Against the classical baselines above" in verdict
    assert ("rnn: test/loss 0.1663, 95% t interval [0.1625, 0.1701] (n = 3) vs constant 0.1667: "
            "the interval contains it") in verdict
    assert verdict.rstrip().endswith(".")  # the block ends with the verdict
