"""Real Hydra multiruns through the CLI: one run dir, results.json and W&B run per job."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, cli
from wandb_offline import find_offline_runs, read_finished_run


def _job_dirs(root):
    return sorted(p.parent for p in root.rglob("results.json"))


def test_every_job_of_a_sweep_compiles_not_only_the_first(tmp_path):
    """Jobs of one sweep process share inductor's precompiled headers: they must outlive the
    first job's temp folder (they did not, and every later job's GRU/LSTM ran eager)."""
    result = cli(["-m", "model=rnn,gru", "debug=fast", "model.hidden_size=8",
                  "experiment_name=compiles", "hydra.callbacks.sweep_summary.figures=false"],
                 # a cold compile cache: the step graphs are compiled with g++, not loaded
                 cwd=tmp_path, env={"RNNLAB_COMPILE": "1",
                                    "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _job_dirs(tmp_path / "logs" / "multiruns" / "compiles")
    assert len(jobs) == 2
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        assert results["compile_fallbacks"] == {}, job
    assert "ran eager" not in result.stdout + result.stderr
    # each cell's first compile in the process says so beforehand, once (issue 39)
    said = result.stdout + result.stderr
    for cell in ("rnn_tanh", "gru_gru_after"):
        assert said.count(f"compiling the per-step graphs of {cell} with TorchInductor") == 1


def test_multirun_basic_launcher_one_wandb_run_per_job(tmp_path):
    # the native loops on, built afresh: their build is announced (issue 39: every slow phase)
    result = cli(["-m", "model=rnn,lstm", "debug=fast", "model.hidden_size=8",
                  "experiment_name=sweepcheck"], cwd=tmp_path,
                 env={"RNNLAB_NATIVE": "1", "RNNLAB_NATIVE_CACHE": str(tmp_path / "native")})
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _job_dirs(tmp_path / "logs" / "multiruns" / "sweepcheck")
    assert len(jobs) == 2
    run_ids = set()
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        assert results["status"] == "completed"
        offline = find_offline_runs(job)
        assert len(offline) == 1, f"{job} should hold its own W&B run"
        run = read_finished_run(job)
        assert run.group == "sweepcheck"
        assert results["config"]["model"]["cell"] in run.tags
        assert "test/loss" in run.keys
        run_ids.add(run.run_id)
    assert len(run_ids) == 2
    # The sweep summary: printed and saved beside the jobs.
    sweep_dir = jobs[0].parent
    assert "rnn" in result.stdout and "lstm" in result.stdout and "test/loss" in result.stdout
    # A progress line after each job: jobs done of the grid's total, elapsed, ETA until the last.
    progress = [ln for ln in result.stdout.splitlines() if ln.startswith("[sweep] ")]
    assert [ln.split(",")[0] for ln in progress] == ["[sweep] 1/2 jobs done",
                                                     "[sweep] 2/2 jobs done"]
    assert "ETA" in progress[0] and "ETA" not in progress[1] and "elapsed" in progress[1]
    # ... and no per-job noise: Lightning's accelerator lines, model summary, checkpoint lines.
    for noise in ("GPU available", "Total params", "Loaded model weights", "Trainer.fit` stopped"):
        assert noise not in result.stdout + result.stderr, noise
    # Each phase that can take more than a second is announced before it starts (the lines, not
    # the times): the native build (the first job's; the second loads it), each job's test
    # split, the sweep's report; data this small is made without a word.
    said = result.stdout + result.stderr
    assert said.count("building the native time loops (first use") == 1
    assert said.count("on the test split ...") == 2
    assert said.count("rnnlab-train: writing the sweep's report (table and figures) into") == 1
    assert said.index("writing the sweep's report") < said.index("report:  ")
    assert "making the " not in said
    summary = (sweep_dir / "summary.csv").read_text().splitlines()
    assert len(summary) == 3 and summary[0].startswith("model.cell,n,diverged,failed,")
    assert (sweep_dir / "summary.md").read_text().startswith("| cell ")
    # The paper-style aggregate reads the same run directories back.
    table = subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"), str(sweep_dir),
                            "--format", "csv"], capture_output=True, text=True, check=True).stdout
    lines = table.strip().splitlines()
    assert lines[0].startswith("model.cell,n,diverged,failed,params,")
    assert sorted(line.split(",")[0] for line in lines[1:]) == ["lstm", "rnn"]


def test_multirun_dirs_are_unique_to_the_microsecond(tmp_path):
    result = cli(["-m", "seed=0,1", "debug=fast", "model.hidden_size=8", "logger=none",
                  "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _job_dirs(tmp_path / "logs" / "multiruns")
    assert len(jobs) == 2
    seeds = sorted(json.loads((job / "results.json").read_text())["seed"] for job in jobs)
    assert seeds == [0, 1]
    # Sweep folder names carry microseconds: YYYY-mm-dd_HH-MM-SS-ffffff.
    assert len(jobs[0].parent.name.rsplit("-", 1)[-1]) == 6


@pytest.mark.slow
def test_ddp_cpu_inside_a_multirun(tmp_path):
    # ddp_spawn: Lightning's plain ddp would relaunch sys.argv, i.e. the whole sweep.
    result = cli(["-m", "trainer=ddp_cpu", "model=gru,lstm", "debug=fast",
                  "model.hidden_size=8", "experiment_name=ddpcheck"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _job_dirs(tmp_path / "logs" / "multiruns" / "ddpcheck")
    assert len(jobs) == 2, "each job runs once, the sweep is not relaunched"
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        assert results["status"] == "completed"
        assert results["steps"] == 2
        assert "test/loss" in results["metrics"]
        assert len(find_offline_runs(job)) == 1


def test_a_sweep_survives_a_refused_job_and_reports_it(tmp_path):
    # lstm has no variant "mgu": that job is refused, the gru job still runs, the summary is
    # written with the failed job counted, and the sweep exits non-zero.
    result = cli(["-m", "model=lstm,gru", "model.variant=mgu", "debug=fast",
                  "model.hidden_size=8", "logger=none", "experiment_name=survive",
                  "hydra.callbacks.sweep_summary.figures=false"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    sweep_dir = next((tmp_path / "logs" / "multiruns" / "survive").iterdir())
    statuses = {json.loads((job / "results.json").read_text())["config"]["model"]["cell"]:
                json.loads((job / "results.json").read_text())["status"]
                for job in _job_dirs(sweep_dir)}
    assert statuses == {"lstm": "failed", "gru": "completed"}
    summary = (sweep_dir / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("model.cell,n,diverged,failed,")
    assert [line.split(",")[:4] for line in summary[1:]] == [["lstm", "0", "0", "1"],
                                                               ["gru", "1", "0", "0"]]
    assert "rnnlab-train: 1 of 2 jobs failed" in result.stderr
    assert "Traceback" not in result.stderr
