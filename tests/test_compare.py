"""rnnlab-compare: the plan and its refusals, seed disjointness, the selection rule, a real
two-arm comparison (halving, pick, evaluation, table), skip-completed and resume; stopping at
"solved" (callbacks.solved_stop)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from rnnlab.commands.compare import main
from rnnlab.run.solved import SolvedStop
from rnnlab.studies.compare import EVAL_SEEDS, TUNE_SEEDS, CompareError, load_plan, rank, survivors

TINY = ["logger=csv", "trainer.enable_progress_bar=false", "model.hidden_size=4",
        "data.train_size=64", "data.val_size=32", "data.test_size=32", "data.batch_size=32",
        "data.seq_len=4", "callbacks.gradflow=null"]


def _plan(tmp_path, body: str):
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(body))
    return path


BASE = "experiment: quickstart\narms: {gru: [model=gru]}\nbudget: 10\n"


@pytest.mark.parametrize(("body", "message"), [
    ("arms: {gru: [model=gru]}\nbudget: 10\n", "experiment is required"),
    (BASE + "bugdet: 3\n", "unknown key bugdet"),
    ("experiment: quickstart\narms: {gru: [model=gru]}\nbudget: 0\n", "budget is the step budget"),
    (BASE + "tune_seeds: [5, 6]\n", "tune_seeds: seed 5 is outside 100-199"),
    (BASE + "eval_seeds: [100]\n", "eval_seeds: seed 100 is outside 1000-"),
    (BASE + "eval_seeds: [1000, 1000]\n", "seeds repeat"),
    (BASE + "search: {lstm: {model.forget_bias: [0, 1]}}\n", "search.lstm names no arm"),
    (BASE + "search: {default: {optimizer.lr: [1, 2, 3, 4, 5, 6, 7]}, gru: {seed: [1, 2]}}\n",
     "14 configurations; the protocol allows <= 12"),
    (BASE + "halving: {eta: 1}\n", "halving.eta must be an integer >= 2"),
    (BASE + "search: {default: {optimizer.lr: []}}\n", "must be a non-empty list"),
    (BASE + "name: 'a b'\n", "must be letters, digits"),
    (BASE + "launcher: slurm\n", "launcher must be one of joblib, pack"),
    (BASE + "secondary: [val/acc]\n", "secondary is a list of test metrics"),
    (BASE + "solved: {under: 1}\n", "solved takes below and consecutive"),
])
def test_bad_plans_are_refused_in_one_line(tmp_path, body, message):
    with pytest.raises(CompareError, match=message):
        load_plan(_plan(tmp_path, body))


def test_the_cli_refuses_a_bad_plan_with_exit_2_and_one_line(tmp_path, capsys):
    assert main([str(_plan(tmp_path, BASE + "bugdet: 3\n"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab-compare: error:")


def test_a_plan_runs_its_stages_in_packs_when_asked(tmp_path, capsys):
    plan = _plan(tmp_path, BASE + "search: {default: {optimizer.lr: [0.01, 0.1]}}\n")
    assert main([str(plan), "--dry-run", "--launcher", "pack", "--jobs", "2",
                 "--out", str(tmp_path / "out")]) == 0
    assert "hydra/launcher=pack hydra.launcher.parallel=2" in capsys.readouterr().out
    assert load_plan(_plan(tmp_path, BASE + "launcher: pack\n")).launcher == "pack"


def test_an_unknown_arm_is_refused_in_one_line(tmp_path, capsys):
    assert main([str(_plan(tmp_path, BASE)), "--arm", "lstm", "--dry-run"]) == 2
    assert "--arm lstm: no such arm (arms: gru)" in capsys.readouterr().err


def test_default_seeds_are_disjoint_and_outside_the_presets_range(tmp_path):
    plan = load_plan(_plan(tmp_path, BASE))
    assert plan.tune_seeds == [100, 101] and plan.eval_seeds == list(range(1000, 1010))
    assert not set(plan.tune_seeds) & set(plan.eval_seeds)
    assert min(plan.tune_seeds + plan.eval_seeds) >= 100
    assert not set(TUNE_SEEDS) & set(EVAL_SEEDS)
    # the default search space: Adam's lr on a log grid spanning >= 30x
    lrs = plan.arms[0].space["optimizer.lr"]
    assert max(lrs) / min(lrs) >= 30


def test_arm_spaces_merge_the_default_with_the_arms_own_knobs(tmp_path):
    plan = load_plan(_plan(tmp_path, """\
        experiment: quickstart
        arms: {gru: [model=gru], lstm: [model=lstm]}
        budget: 90
        search: {default: {optimizer.lr: [0.001, 0.01]}, lstm: {model.forget_bias: [null, 1.0]}}
        conditions: {data.seq_len: [10, 20]}
        halving: {eta: 3, rungs: 3}
        """))
    gru, lstm = plan.arms
    assert gru.grid() == [("optimizer.lr=0.001",), ("optimizer.lr=0.01",)]
    assert len(lstm.grid()) == 4 and ("optimizer.lr=0.01", "model.forget_bias=null") in lstm.grid()
    assert plan.conditions == [("data.seq_len=10",), ("data.seq_len=20",)]
    assert [plan.rung_budget(r) for r in range(3)] == [10, 30, 90]


def _view(config, seed, best, solved=False, status="completed", mode="min"):
    return {"config": list(config), "seed": seed, "best": best, "solved_val": solved,
            "status": status, "mode": mode}


def test_selection_solved_fraction_first_then_the_median_and_broken_runs_are_worst():
    a, b, c, d = ("lr=1",), ("lr=2",), ("lr=3",), ("lr=4",)
    views = [
        _view(a, 100, 0.01), _view(a, 101, 0.02),  # lowest median, never solved
        _view(b, 100, 0.05, solved=True), _view(b, 101, 0.50),  # solved 1/2
        _view(c, 100, 0.04, solved=True), _view(c, 101, None, status="diverged"),  # 1/2, inf
        _view(d, 100, 0.03, solved=True), _view(d, 101, 0.04, solved=True),  # 2/2
    ]
    ranked = rank(views, [a, b, c, d])
    assert [tuple(s["config"]) for s in ranked] == [d, b, c, a]
    assert ranked[0]["solved"] == 1.0 and ranked[1]["median"] == pytest.approx(0.275)
    assert math.isinf(ranked[2]["median"])  # median of 0.04 and the diverged run's +inf
    assert survivors(ranked, 3) == [d, b]  # ceil(4 / 3)
    assert survivors(ranked[:1], 3) == [d]


def test_selection_for_accuracy_prefers_the_highest_and_ties_keep_grid_order():
    a, b, c = ("lr=1",), ("lr=2",), ("lr=3",)
    views = [_view(a, 100, 0.6, mode="max"), _view(b, 100, 0.9, mode="max"),
             _view(c, 100, 0.9, mode="max")]
    assert [tuple(s["config"]) for s in rank(views, [a, b, c])] == [b, c, a]


def _trainer(loss, baseline=1.0, step=10):
    return SimpleNamespace(sanity_checking=False, global_step=step, should_stop=False,
                           callback_metrics={"val/loss": loss, "baseline/loss": baseline})


def test_solved_stop_needs_consecutive_validations_and_records_the_streaks_first_step():
    stop = SolvedStop(below=0.1, consecutive=2)
    steps = [(0.5, 100), (0.05, 200), (0.2, 300), (0.09, 400), (0.01, 500)]
    stopped_at = None
    for loss, step in steps:
        trainer = _trainer(loss, step=step)
        stop.on_validation_end(trainer, None)
        if trainer.should_stop:
            stopped_at = step
            break
    assert stopped_at == 500  # 200 was under, 300 broke the streak
    assert stop.record()["step"] == 400 and stop.record()["stopped_early"] is True
    # its streak survives a checkpoint
    again = SolvedStop(below=0.1, consecutive=2)
    again.load_state_dict(stop.state_dict())
    assert again.record() == stop.record()


def test_solved_stop_never_fires_on_a_non_finite_loss_and_refuses_bad_settings():
    stop = SolvedStop(below=0.1, consecutive=1)
    trainer = _trainer(float("nan"))
    stop.on_validation_end(trainer, None)
    assert not trainer.should_stop and stop.record()["step"] is None
    with pytest.raises(ValueError, match="consecutive must be an integer >= 1"):
        SolvedStop(consecutive=0)
    with pytest.raises(ValueError, match=r"below must be a number in \(0, 1\)"):
        SolvedStop(below=1.5)


def test_a_run_that_solves_stops_and_says_when(tmp_path):
    """A real run of the adding problem at T = 3 solves within a few hundred steps: it stops
    after 2 validations in a row under 10% of the baseline and records the step."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = subprocess.call([sys.executable, "-m", "rnnlab.train", "experiment=quickstart",
                            "model=gru", "model.hidden_size=32", "data.seq_len=3",
                            "data.train_size=1024", "data.val_size=128", "data.test_size=128",
                            "data.batch_size=32", "+trainer.val_check_interval=16",
                            "trainer.max_epochs=-1", "trainer.max_steps=2000",
                            "callbacks.solved_stop.consecutive=2", "callbacks.gradflow=null",
                            "logger=csv", "trainer.enable_progress_bar=false",
                            f"hydra.run.dir={run_dir}"], env=env, stdout=subprocess.DEVNULL)
    assert code == 0
    record = json.loads((run_dir / "results.json").read_text())
    solved = record["solved"]
    assert solved["stopped_early"] is True and solved["consecutive"] == 2
    assert 0 < solved["step"] < record["steps"] < 2000
    assert solved["step"] % 16 == 0 and record["steps"] == solved["step"] + 16


def test_a_two_arm_comparison_runs_picks_evaluates_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    plan = _plan(tmp_path, f"""\
        name: tiny
        experiment: quickstart
        overrides: [{', '.join(TINY)}]
        arms: {{rnn: [model=rnn], gru: [model=gru]}}
        budget: 4
        search: {{default: {{optimizer.lr: [0.001, 0.03]}}}}
        tune_seeds: [100]
        eval_seeds: [1000, 1001]
        halving: {{eta: 2, rungs: 2}}
        param_budget: auto
        jobs: 1
        out: {out}
        """)
    assert main([str(plan)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "tiny" / "compare.json").read_text())
    budget = record["plan"]["param_budget"]
    assert isinstance(budget, int)
    (entry,) = record["conditions"]
    for name in ("rnn", "gru"):
        arm = entry["arms"][name]
        r0, r1 = arm["tuning"]
        assert r0["budget"] == 2 and r1["budget"] == 4
        assert len(r0["runs"]) == 2 and len(r1["runs"]) == 1  # halving kept 1 of 2
        assert {tuple(v["config"]) for v in r0["runs"]} == {("optimizer.lr=0.001",),
                                                            ("optimizer.lr=0.03",)}
        # tuning never saw a test split, and ran on tuning seeds only
        for view in r0["runs"] + r1["runs"]:
            assert view["seed"] == 100
            assert not any(k.startswith("test/") for k in view["metrics"])
            assert view["steps"] == (2 if view in r0["runs"] else 4)
        assert arm["pick"]["config"] == r1["runs"][0]["config"]
        assert "solved" in arm["pick"]["why"]
        assert sorted(v["seed"] for v in arm["eval"]) == [1000, 1001]
        for view in arm["eval"]:
            assert view["config"] == arm["pick"]["config"]
            assert "test/loss" in view["metrics"] and view["num_params"] <= budget
            # never solved at this size: the whole budget, and it says so
            assert view["steps"] == 4 and view["solved"]["step"] is None
            assert view["solved"]["stopped_early"] is False
    # the table: both arms, per-seed verdicts, tests and the rule stated
    summary = (out / "tiny" / "summary.md").read_text()
    for text in ("| rnn", "| gru", "0/2", "Selection: per arm and condition",
                 "Holm-adjusted", "censored at the budget", "## Tuning"):
        assert text in summary, text
    assert "Selection:" in printed and printed.count("jobs to run") == 6

    # A rerun keeps everything: nothing to run.
    assert main([str(plan)]) == 0
    assert "jobs to run" not in capsys.readouterr().out
    # A job lost (its results.json gone): only that job runs again, the record is whole again.
    lost = out / "tiny" / "all" / "gru" / "eval" / "1" / "results.json"
    lost.unlink()
    # --collect runs nothing: the record and table of what has finished (1 of gru's 2 seeds)
    assert main([str(plan), "--collect"]) == 0
    printed = capsys.readouterr().out
    assert "jobs to run" not in printed and "gru / evaluation: 1 of 2 jobs finished" in printed
    partial = json.loads((out / "tiny" / "compare.json").read_text())
    assert len(partial["conditions"][0]["arms"]["gru"]["eval"]) == 1
    assert main([str(plan)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("jobs to run") == 1 and "gru / evaluation: 1 of 2 jobs" in printed
    assert lost.is_file()
    again = json.loads((out / "tiny" / "compare.json").read_text())
    assert again["conditions"][0]["arms"]["gru"]["pick"] == entry["arms"]["gru"]["pick"]
    assert main([str(plan), "--table"]) == 0

    # The page: the comparison's block and the opening standing, generated from the record.
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# R\n<!-- compare:standing -->\n<!-- /compare:standing -->\nprose\n"
                    "<!-- compare:tiny -->\nold\n<!-- /compare:tiny -->\nmore prose\n")
    assert main([str(plan), "--table", "--docs", "--page", str(page)]) == 0
    text = page.read_text()
    assert "prose\n" in text and "more prose" in text and "\nold\n" not in text
    assert '<a id="verdict-compare-tiny"></a>**Verdict (generated)**' in text
    assert "| rnn " in text and "Picked configurations" in text and "Tasks (1): tiny" in text
    assert (page.parent / "results" / "tiny" / "against_steps.png").stat().st_size > 0
    assert (page.parent / "results" / "standing_profile.png").stat().st_size > 0


def _eval_view(arm: str, seed: int, nll: float, acc: float, wall: float, pack=None) -> dict:
    return {"run_dir": f"/x/{arm}/eval/{seed - 1000}", "config": ["optimizer.lr=0.003"],
            "seed": seed, "status": "completed", "threshold_task": False, "steps": 30,
            "solved": None, "num_params": 100, "wall_time_s": wall, "pack": pack,
            "metrics": {"test/nll": nll, "test/acc": acc, "baseline/acc": 0.224,
                        "baseline/loss": 11.8}}


def test_a_task_without_threshold_has_no_solved_columns_and_shows_its_secondary_metric(tmp_path):
    from rnnlab.studies.compare_table import footnotes, table_frame

    plan = load_plan(_plan(tmp_path, BASE + "solved: null\nsecondary: [test/acc]\n"
                           "headline: test/nll\n"))
    assert plan.solved_below is None and plan.solved_consecutive is None
    assert plan.secondary == ["test/acc"]
    # the record as rnnlab-compare writes it: lstm's accuracy interval lies below the baseline,
    # gru's straddles it
    record = {"plan": plan.to_dict(), "rule": "r", "conditions": [{"condition": [], "arms": {
        "gru": {"pick": {"config": ["optimizer.lr=0.003"], "why": "w"},
                "eval": [_eval_view("gru", 1000 + i, 9.0 + i / 100, 0.20 + i / 20, 60.0)
                         for i in range(3)]},
        "lstm": {"pick": {"config": ["optimizer.lr=0.003"], "why": "w"},
                 "eval": [_eval_view("lstm", 1000 + i, 9.1 + i / 100, 0.18 + i / 100, 60.0)
                          for i in range(3)]}}}]}
    frame, data = table_frame(record)
    assert "solved [95% CI]" not in frame and "steps to solve [95% CI]" not in frame
    assert list(frame["test/acc [95% CI]"]) == ["0.25 [0.2, 0.3]", "0.19 [0.18, 0.2]"]
    notes = " ".join(footnotes(record, data))
    assert "test/acc (secondary, not tested)" in notes and "baseline/acc" in notes
    assert "0.224; the whole interval of lstm lies below it" in notes
    assert "solved:" not in notes


def test_cpu_hours_count_each_pack_once(tmp_path):
    from rnnlab.studies.compare_page import cpu_hours

    a, b = {"id": "a", "members": 2, "index": 0}, {"id": "b", "members": 1, "index": 0}
    views = [_eval_view("gru", 1000, 9, 0.2, 3600.0, a), _eval_view("gru", 1001, 9, 0.2, 3000.0, a),
             _eval_view("gru", 1002, 9, 0.2, 1800.0, b)]
    assert cpu_hours(views, {"launcher": "pack", "jobs": 1}) == 1.5
    # solo runs: each its own
    solo = [dict(v, pack=None) for v in views]
    assert cpu_hours(solo, {"launcher": "joblib"}) == (3600 + 3000 + 1800) / 3600
    # packed runs recorded before results.json named the pack: the launcher's packs of the
    # stage (10 jobs, one at a time, packs of at most 8: two packs of 5)
    old = [_eval_view("gru", 1000 + i, 9, 0.2, 100.0 if i < 5 else 200.0) for i in range(10)]
    assert cpu_hours(old, {"launcher": "pack", "jobs": 1}) == 300 / 3600


def test_a_pick_at_the_end_of_a_numeric_axis_is_flagged(tmp_path):
    plan = load_plan(_plan(tmp_path, BASE + "search: {default: {optimizer.lr: [0.001, 0.01, 0.1], "
                                            "model.forget_bias: [null, 1.0]}}\n"))
    (arm,) = plan.arms
    assert arm.edges(["optimizer.lr=0.1", "model.forget_bias=1.0"]) == [
        "optimizer.lr=0.1 (the largest tried)"]  # a 2-value or non-numeric axis has no inside
    assert arm.edges(["optimizer.lr=0.001"]) == ["optimizer.lr=0.001 (the smallest tried)"]
    assert arm.edges(["optimizer.lr=0.01"]) == []
