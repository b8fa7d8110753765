"""rnnlab-reproduce: the plan, a real two-section run, skip-completed, resume, the page rebuilt."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from rnnlab.commands.reproduce import main
from rnnlab.config.errors import ReproduceError
from rnnlab.studies.reproduce import Progress, load_plan, sweep_grid

FAST = ["debug=fast", "model.hidden_size=8", "data.seq_len=8"]


def _plan(tmp_path, body: str):
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize(("body", "message"), [
    ("sections: {}\n", "no sections"),
    ("sectons: {a: {experiment: quickstart}}\n", "unknown key sectons"),
    ("sections: {a: {overrides: []}}\n", "sections.a needs an experiment"),
    ("sections: {a: {experiment: quickstart, bye: [x]}}\n", "sections.a.bye is not a setting"),
    ("seeds: 3\nsections: {a: {experiment: quickstart}}\n", "seeds must be a list of integers"),
    ("jobs: 0\nsections: {a: {experiment: quickstart}}\n", "jobs must be an integer >= 1"),
])
def test_bad_plans_are_refused_in_one_line(tmp_path, body, message):
    with pytest.raises(ReproduceError, match=message):
        load_plan(_plan(tmp_path, body))


def test_paths_come_from_the_plan_not_the_working_directory(tmp_path, monkeypatch):
    from conftest import REPO

    from rnnlab.studies.reproduce import PLAN

    monkeypatch.chdir(tmp_path)  # anywhere but the checkout
    assert PLAN == REPO / "docs" / "reproduce.yaml"
    plan = load_plan(PLAN)
    assert (plan.out, plan.figures, plan.page) == (
        REPO / "logs" / "reproduce", REPO / "docs" / "results", REPO / "docs" / "results.md")

    (tmp_path / "plans").mkdir()
    _plan(tmp_path / "plans", "out: runs\nfigures: ../figs\n"
                              "sections: {a: {experiment: quickstart}}\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    plan = load_plan(Path("../plans/plan.yaml"))
    assert (plan.out, plan.figures, plan.page) == (
        tmp_path / "plans" / "runs", tmp_path / "figs", tmp_path / "plans" / "results.md")


def test_the_repos_plan_loads_and_every_section_composes():
    from rnnlab.studies.reproduce import PLAN

    plan = load_plan(PLAN)
    for section in plan.sections:
        assert sweep_grid(section.experiment, [*plan.extra, *section.overrides]), section.name


def test_sweep_grid_follows_hydra_the_command_line_wins():
    grid = sweep_grid("quickstart", [])
    assert grid == [["model=rnn"], ["model=gru"], ["model=lstm"]]
    assert sweep_grid("quickstart", ["model=gru,lstm", "data.seq_len=5"]) == [
        ["model=gru"], ["model=lstm"]]
    assert sweep_grid("quickstart", ["model=gru"]) == [[]]
    assert len(sweep_grid("gru_variants", ["data.seq_len=7,9"])) == 12


def test_progress_counts_jobs_and_estimates_the_rest(tmp_path):
    sweep = tmp_path / "s"
    for job, status in enumerate(["completed", "failed", "running"]):
        (sweep / str(job)).mkdir(parents=True)
        (sweep / str(job) / "results.json").write_text(
            json.dumps({"status": status, "wall_time_s": 10.0}))
    progress = Progress(total=6, jobs=2)
    assert progress.update("a", sweep) == 2
    line = progress.line("a")
    # 4 jobs left at 10 s each, 2 at a time: 20 s.
    assert "a: 2/6 jobs done" in line and "ETA 0m20s" in line


def test_a_two_section_plan_runs_skips_what_is_done_and_resumes_the_rest(tmp_path, capsys):
    plan = _plan(tmp_path, f"""\
        seeds: [0]
        jobs: 2
        out: {tmp_path / 'out'}
        figures: {tmp_path / 'figs'}
        overrides: [logger=csv, {', '.join(FAST)}]
        sections:
          adding: {{experiment: quickstart, overrides: ['model=rnn,gru'], by: [model.cell]}}
          fb: {{experiment: forget_bias_jozefowicz2015, overrides: ['model.forget_bias=0,1']}}
        """)
    page = tmp_path / "results.md"
    page.write_text("# Results\n\nprose\n<!-- reproduce:adding -->\nold\n<!-- /reproduce:adding -->"
                    "\nmore prose\n<!-- reproduce:fb -->\n<!-- /reproduce:fb -->\n")
    argv = ["--plan", str(plan), "--page", str(page)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "adding: 2 of 2 jobs to run" in out and "fb: 2 of 2 jobs to run" in out
    assert "adding: 2/4 jobs done" in out and "fb: 4/4 jobs done" in out
    text = page.read_text()
    assert "old" not in text and text.count("prose") == 2
    assert "| rnn " in text and "| gru " in text and "p vs best cell (Welch, test/loss)" in text
    assert "By model.cell" in text and "rnnlab-reproduce --only fb" in text
    assert (tmp_path / "figs" / "adding" / "table.md").is_file()
    results = sorted((tmp_path / "out").glob("*/*/results.json"))
    assert len(results) == 4
    stamps = {p: p.stat().st_mtime_ns for p in results}

    # A rerun keeps every finished job and starts nothing.
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "adding: 2/2 jobs already finished: kept" in out and "fb: 2/2" in out
    assert {p: p.stat().st_mtime_ns for p in results} == stamps

    # An interrupted job (no results.json yet) is the only one run again.
    lost = tmp_path / "out" / "fb" / "1" / "results.json"
    lost.unlink()
    assert main([*argv, "--only", "fb"]) == 0
    out = capsys.readouterr().out
    assert "fb: 1 of 2 jobs to run" in out and "resume=" in out
    assert lost.is_file() and json.loads(lost.read_text())["status"] == "completed"
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != lost)


def test_a_page_without_the_sections_block_is_refused(tmp_path, capsys):
    plan = _plan(tmp_path, f"out: {tmp_path / 'out'}\n"
                           "sections: {copy: {experiment: quickstart}}\n")
    page = tmp_path / "results.md"
    page.write_text("# nothing\n")
    assert main(["--plan", str(plan), "--page", str(page), "--docs-only"]) == 2
    assert "has no <!-- reproduce:copy -->" in capsys.readouterr().err
    assert page.read_text() == "# nothing\n"
    assert main(["--plan", str(plan), "--only", "nope", "--docs-only"]) == 2
    assert "--only nope: no such section in the plan (sections: copy)" in capsys.readouterr().err
