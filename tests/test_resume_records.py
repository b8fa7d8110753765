"""resume= with settings of its own: a refused or kept resume writes nothing into the run's
.hydra/, an accepted one records what it changed, and a killed run refused once still resumes
(README "Resume")."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import cli

from rnnlab.run.rundir import RunDir

FAST = ["debug=fast", "model=gru", "model.hidden_size=8", "callbacks.gradflow.every_n_steps=1"]


def _hydra_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / ".hydra").iterdir())}


def test_a_refused_or_kept_resume_writes_nothing_and_an_accepted_one_records_its_changes(
        tmp_path):
    run = tmp_path / "run"
    done = cli([*FAST, f"hydra.run.dir={run}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    first, recorded = RunDir(run).read_results(), _hydra_files(run)

    # a finished run keeps its settings, and its .hydra/ says so still
    kept = cli([f"resume={run}", "model.hidden_size=12"], cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert "ignored (a finished run keeps its settings): model.hidden_size=12" in kept.stderr
    assert _hydra_files(run) == recorded and RunDir(run).read_results() == first

    # an unfinished run (killed after its checkpoint) given another model is refused, writes
    # nothing, and a plain resume= afterwards continues it
    (run / "results.json").unlink()
    refused = cli([f"resume={run}", "model.hidden_size=32"], cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr[-2000:]
    said = [line for line in refused.stderr.splitlines() if line.startswith("rnnlab-train:")]
    assert len(said) == 1 and "checkpoint of another model" in said[0], refused.stderr
    assert _hydra_files(run) == recorded and not (run / "results.json").exists()

    # an accepted resume that changes a setting (trains on to a larger budget) records it
    resumed = cli([f"resume={run}", "trainer.max_epochs=2"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    results = RunDir(run).read_results()
    assert results["status"] == "completed" and results["config"]["trainer"]["max_epochs"] == 2
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 2
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert overrides == [*FAST, "trainer.max_epochs=2"]
    hydra = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra["overrides"]["task"] == overrides and hydra["output_subdir"] == ".hydra"
    assert "hydra.output_subdir=null" not in hydra["overrides"]["hydra"]
    history = yaml.safe_load((run / ".hydra" / "resumes.yaml").read_text())
    assert [(r["changed"], r["before"]) for r in history] == [(["trainer.max_epochs=2"], [None])]


def test_a_resumed_sweep_keeps_its_jobs_records_and_refuses_other_settings(tmp_path):
    """resume=<sweep dir>: Hydra no longer rewrites the jobs' .hydra/ (a kept job's record stays
    as it ran); a setting other than a larger budget is refused before anything is written; a
    larger budget is recorded in each job that trains on, and a job started for the first time
    gets its .hydra/ as Hydra writes it."""
    import shutil

    sweep = tmp_path / "sweep"
    done = cli(["-m", *FAST, "seed=0,1", "logger=csv", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.rmtree(sweep / "1")  # a job the sweep never started
    before = {p: p.read_bytes() for p in sorted(sweep.rglob("*")) if p.is_file()}

    refused = cli([f"resume={sweep}", "model.hidden_size=12"], cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"rnnlab-train: error: resume={sweep}: a sweep resumes with its own settings "
        "(multirun.yaml); model.hidden_size=12 would change them half-way (only "
        "trainer.max_epochs/trainer.max_steps and hydra.* settings can be given; start a new "
        "sweep dir for other settings)"]
    assert {p: p.read_bytes() for p in sorted(sweep.rglob("*")) if p.is_file()} == before

    resumed = cli([f"resume={sweep}", "trainer.max_epochs=2"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for job in ("0", "1"):
        run = sweep / job
        results = RunDir(run).read_results()
        assert results["status"] == "completed" and results["steps"] == 4
        config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
        assert config["trainer"]["max_epochs"] == 2 == results["config"]["trainer"]["max_epochs"]
        assert config["seed"] == int(job)
        hydra = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert hydra["output_subdir"] == ".hydra"
        assert "trainer.max_epochs=2" in yaml.safe_load((run / ".hydra" / "overrides.yaml")
                                                         .read_text())
    history = yaml.safe_load((sweep / "0" / ".hydra" / "resumes.yaml").read_text())
    assert [r["changed"] for r in history] == [["trainer.max_epochs=2"]]
    assert not (sweep / "1" / ".hydra" / "resumes.yaml").exists()  # it ran once, as recorded

    # resumed again, plainly: every job kept, its .hydra/ byte for byte
    records = {p: p.read_bytes() for p in sorted(sweep.glob("*/.hydra/*"))}
    again = cli([f"resume={sweep}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already completed: kept") == 2
    assert {p: p.read_bytes() for p in sorted(sweep.glob("*/.hydra/*"))} == records
