"""rnnlab.results.standing (the across-task standing) against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnlab.results.standing import (
    improvement,
    normalise,
    performance_profile,
    profile_figure,
    standing,
)

REPS = 200  # small: the tests check the numbers, not the bootstrap's resolution
NAN = math.nan


def test_normalise_both_directions():
    # Copy task: memoryless loss 0.2 is 0, loss 0 is 1; loss 0.05 closes 3/4 of the gap.
    assert normalise(0.05, baseline=0.2, perfect=0.0) == pytest.approx(0.75)
    # Accuracy with chance 0.1: 0.55 is half way from chance to 1.
    assert normalise(0.55, baseline=0.1, perfect=1.0) == pytest.approx(0.5)
    # Forecast error against seasonal naive (error 3.0): worse than the baseline stays negative.
    assert normalise(3.6, baseline=3.0, perfect=0.0) == pytest.approx(-0.2)
    assert normalise(0.2, 0.2, 0.0) == 0.0 and normalise(0.0, 0.2, 0.0) == 1.0
    assert normalise(np.array([0.2, 0.1]), 0.2, 0.0) == pytest.approx([0.0, 0.5])
    with pytest.raises(ValueError):
        normalise(0.5, 0.3, 0.3)


# 4 runs x 2 tasks. All eight sorted: -0.2, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 2.0; the IQM drops the
# lowest and highest quarter (two each) and averages 0.2, 0.4, 0.6, 0.8 = 0.5 -- the 2.0 outlier
# does not move it. Task means 2.7/4 = 0.675 and 2.1/4 = 0.525: mean and median of those 0.6.
# Optimality gap: 1 - mean(min(x, 1)) = 1 - (0.1+0.2+0.4+1.0+0.9+0.8+0.6-0.2)/8 = 1 - 0.475.
A = np.array([[0.1, 0.9], [0.2, 0.8], [0.4, 0.6], [2.0, -0.2]])


def test_standing_aggregates_by_hand():
    table = standing({"lstm": A}, reps=REPS)
    row = table.iloc[0]
    assert (row["arm"], row["runs"], row["tasks"]) == ("lstm", 4, 2)
    assert row["iqm"] == pytest.approx(0.5)
    assert row["mean"] == pytest.approx(0.6) and row["median"] == pytest.approx(0.6)
    assert row["optimality_gap"] == pytest.approx(0.525)
    for name in ("iqm", "median", "mean", "optimality_gap"):
        assert row[f"{name}_low"] <= row[name] <= row[f"{name}_high"], name
    # A resampled IQM is a mean of resampled scores: inside the data's range.
    assert -0.2 <= row["iqm_low"] and row["iqm_high"] <= 2.0
    assert "stratified" in row["method"] and table.attrs["method"] == row["method"]


def test_bootstrap_is_stratified_by_task():
    # Task 1 scores near 0, task 2 near 1. Resampling runs within each task keeps one of each
    # in every resample, so the mean moves only by the within-task spread: between
    # (0 + 1)/2 = 0.5 and (0.03 + 1.03)/2 = 0.53. Pooling all cells would reach 0 and 1.
    m = np.column_stack([[0.0, 0.01, 0.02, 0.03], [1.0, 1.01, 1.02, 1.03]])
    row = standing({"gru": m}, reps=REPS).iloc[0]
    assert 0.5 <= row["mean_low"] <= row["mean"] <= row["mean_high"] <= 0.53


def test_unequal_runs_cut_to_the_smallest_count():
    # Task 2 has three seeds where task 1 has four: the fourth run of task 1 is dropped
    # (lowest seeds kept), leaving [[0.1,0.9],[0.2,0.8],[0.4,0.6]]: sorted 0.1 0.2 0.4 0.6 0.8
    # 0.9, trim int(0.25*6) = 1 each side: IQM (0.2+0.4+0.6+0.8)/4 = 0.5; mean 3.0/6.
    m = A.copy()
    m[3, 1] = NAN
    row = standing({"rnn": m}, reps=REPS).iloc[0]
    assert row["runs"] == 3
    assert row["iqm"] == pytest.approx(0.5) and row["mean"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no run"):
        standing({"rnn": np.array([[0.1, NAN], [0.2, NAN]])}, reps=REPS)
    with pytest.raises(ValueError, match="tasks"):
        standing({"rnn": A, "gru": A[:, :1]}, reps=REPS)


def test_standing_reproducible_and_one_row_per_arm():
    scores = {"rnn": A, "gru": A + 0.1}
    first, second = standing(scores, reps=REPS), standing(scores, reps=REPS, seed=0)
    assert first.equals(second)
    assert list(first["arm"]) == ["rnn", "gru"]
    assert first.loc[1, "iqm"] == pytest.approx(0.6)
    one_run = standing({"rnn": A[:1]}, reps=REPS).iloc[0]  # nothing to resample: NaN bounds
    assert math.isnan(one_run["iqm_low"]) and one_run["iqm"] == pytest.approx(np.mean(A[0]))


def test_probability_of_improvement_by_hand():
    # Task 1: x = [1,2,3], y = [0,1.5,2.5]; of the 9 pairs x wins 1>0, 2>0, 2>1.5, 3>all three:
    # 6/9. Task 2: x = [1,1,1], y = [1,0,0]: six wins, three ties at half: 7.5/9.
    # Averaged over tasks: (6 + 7.5) / 18 = 0.75.
    x = np.column_stack([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    y = np.column_stack([[0.0, 1.5, 2.5], [1.0, 0.0, 0.0]])
    table = improvement({"gru": x, "rnn": y}, [("gru", "rnn"), ("rnn", "gru")], reps=REPS)
    forward, backward = table.iloc[0], table.iloc[1]
    assert (forward["x"], forward["y"]) == ("gru", "rnn")
    assert forward["probability"] == pytest.approx(0.75)
    assert backward["probability"] == pytest.approx(0.25)  # P(y > x) = 1 - P(x > y) here
    assert 0 <= forward["low"] <= 0.75 <= forward["high"] <= 1
    assert "probability of improvement" in forward["method"]


def test_performance_profile_by_hand(tmp_path):
    # Four scores 0.1, 0.5, 0.9, 0.3: above 0 all four, above 0.2 three, above 0.4 two, above
    # 0.95 none.
    m = np.array([[0.1, 0.5], [0.9, 0.3]])
    profile = performance_profile({"lstm": m}, taus=[0.0, 0.2, 0.4, 0.95], reps=REPS)
    assert profile["fraction"].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.0])
    assert (profile["low"] <= profile["fraction"]).all()
    assert (profile["fraction"] <= profile["high"]).all()
    path = profile_figure({"lstm": m, "gru": m * 0.5}, tmp_path / "figs" / "profile.png",
                          reps=20)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_standing_ranks_cells_over_comparisons_of_cells_only(tmp_path):
    """A comparison whose arms are not cells (an LSTM's forget biases) stands in its own
    section, not in the cells' standing across tasks."""
    import json

    from rnnlab.studies.compare_page import standing_block

    def record(name, arms, losses):
        runs = {arm: {"eval": [{"seed": 1000 + s, "status": "completed",
                                "metrics": {"test/loss": loss * (1 + s / 100),
                                            "baseline/loss": 1.0}} for s in range(5)]}
                for arm, loss in zip(arms, losses)}
        (tmp_path / name).mkdir()
        (tmp_path / name / "compare.json").write_text(json.dumps(
            {"plan": {"name": name}, "conditions": [{"condition": ["data.seq_len=10"],
                                                     "arms": runs}]}))

    record("copy", ["gru", "lstm"], [0.1, 0.5])
    record("adding", ["gru", "lstm"], [0.2, 0.3])
    record("forget_bias", ["bias0", "bias1"], [0.2, 0.1])
    text = standing_block(tmp_path, tmp_path / "figures", page=tmp_path / "page.md")
    assert "Tasks (2)" in text and "forget_bias" not in text
    assert "| gru | 5 × 2 |" in text and "| lstm | 5 × 2 |" in text and "bias0" not in text
