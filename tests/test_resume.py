"""Resume: a run or sweep killed at any moment continues where it stopped and ends with exactly
what an uninterrupted run gives (README "Resume")."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cli
from wandb_offline import find_offline_runs, read_offline_run

from rnnlab.commands.train import resume_argv
from rnnlab.config.errors import ResumeError
from rnnlab.run import resume
from rnnlab.run.rundir import RunDir

# 3 epochs x 8 batches; last.ckpt at every epoch end and, with a 30 ms interval, after nearly
# every batch, so the kill lands mid-epoch.
RUN = ["data=adding", "data.seq_len=10", "data.train_size=256", "data.val_size=64",
       "data.test_size=64", "data.batch_size=32", "model=lstm", "model.hidden_size=16",
       "model.num_layers=2", "model.dropout=0.25", "trainer.max_epochs=3",
       "trainer.enable_progress_bar=false", "callbacks.gradflow.every_n_steps=3",
       "callbacks.gradflow.jacobian_every_n_steps=5",
       "callbacks.mid_epoch_checkpoint.minutes=0.0005"]
TOTAL_STEPS = 24


def _env() -> dict[str, str]:
    # WANDB_SERVICE: a W&B service of this pytest process would be shared by the runs it starts,
    # and would still hold the killed run's id when the resumed one asks for it.
    return {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_SERVICE")}


def _start(args: list[str], cwd: Path, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rnnlab.train", *args], cwd=cwd, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=stderr)


def _step_of(run_dir: Path) -> int:
    path = RunDir(run_dir).last_checkpoint()
    try:
        return resume.checkpoint_step(path) if path else -1
    except Exception:  # noqa: BLE001 - another process is replacing it: look again
        return -1


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:  # it ended between pgrep and here
        return ""


def _kill_when(process: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint to kill at"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _folder_id(path: Path) -> str:
    """The W&B run id an offline folder (or a file in it) was made for: offline-run-<time>-<id>."""
    folder = path if path.name.startswith("offline-run-") else path.parent
    return folder.name.rsplit("-", 1)[1]


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_kill_9_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = cli([*RUN, f"hydra.run.dir={whole}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    process = _start([*RUN, f"hydra.run.dir={killed}"], cwd=tmp_path)
    # mid-epoch, in the second epoch: the loader must replay the epoch's order and skip
    _kill_when(process, lambda: _step_of(killed) >= 10 and _step_of(killed) % 8 != 0)
    assert not (killed / "results.json").exists()

    resumed = cli([f"resume={killed}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    line = next(l for l in resumed.stderr.splitlines() if "resuming" in l)
    step = int(line.split(" at step ")[1].split()[0])
    assert 10 <= step < TOTAL_STEPS and step % 8 != 0

    a, b = RunDir(whole).read_results(), RunDir(killed).read_results()
    assert b["status"] == "completed" and b["steps"] == a["steps"] == TOTAL_STEPS
    assert b["metrics"] == a["metrics"]  # bit for bit: weights, data order, dropout draws
    assert _rows(killed / "csv" / "metrics.csv") == _rows(whole / "csv" / "metrics.csv")
    fa, fb = np.load(whole / "gradflow.npz"), np.load(killed / "gradflow.npz")
    assert fa.files == fb.files
    for key in fa.files:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
    # one W&B run continued in a second offline folder (wandb sync uploads both into it). The
    # killed attempt's file holds what W&B had flushed before the SIGKILL -- possibly nothing
    # but its header (W&B buffers offline records) -- so its id is read from its folder's name
    runs = [read_offline_run(p) for p in find_offline_runs(killed)]
    assert len(runs) == 2 and {_folder_id(p) for p in find_offline_runs(killed)} == {
        runs[1].run_id}
    assert runs[1].exit_code == 0
    assert max(runs[1].series("trainer/global_step")) == TOTAL_STEPS


def test_killed_before_and_after_its_first_checkpoint_a_run_stays_one_wandb_run(tmp_path):
    """Killed before its first checkpoint (it starts over), then after one (it resumes): one W&B
    id in every offline folder, the discarded attempt's folder gone, one best.ckpt, and none of
    the warnings a resume used to print."""
    run = tmp_path / "run"
    args = [*RUN, "callbacks.mid_epoch_checkpoint.minutes=null", "trainer.max_epochs=4",
            f"hydra.run.dir={run}"]
    process = _start(args, cwd=tmp_path)
    _kill_when(process, lambda: list((run / "wandb").glob("offline-run-*/*.wandb")))
    assert RunDir(run).last_checkpoint() is None  # killed before the first epoch ended
    first_id = RunDir(run).wandb_run_id()
    assert first_id

    with (tmp_path / "again.err").open("w") as said:  # starts over, and says so ...
        process = _start([f"resume={run}"], cwd=tmp_path, stderr=said)
        _kill_when(process, lambda: _step_of(run) >= 8)  # ... and is killed after an epoch
    assert (f"rnnlab-train: {run}: its earlier attempt left no checkpoint: starting over from "
            f"step 0 (the same W&B run, {first_id})") in (tmp_path / "again.err").read_text()
    resumed = cli([f"resume={run}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr
    for noise in ("exists and is not empty", "called before the ``update``", "anonymous setting",
                  "could not find the monitored key"):
        assert noise not in resumed.stderr, noise

    runs = [read_offline_run(p) for p in find_offline_runs(run)]
    assert len(runs) == 2 and {_folder_id(p) for p in find_offline_runs(run)} == {first_id}
    assert runs[-1].run_id == first_id  # the finished attempt's records name it too
    assert runs[-1].exit_code == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt",
                                                                     "previous.ckpt"]
    assert RunDir(run).read_results()["steps"] == 32


def test_a_killed_sweep_resumes_only_its_unfinished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "debug=fast", "trainer.limit_train_batches=4", "trainer.max_epochs=2",
            "model=rnn,gru", "hydra.callbacks.sweep_summary.figures=false",
            "callbacks.mid_epoch_checkpoint.minutes=0.0005",
            f"hydra.sweep.dir={sweep}"]
    process = _start(args, cwd=tmp_path)
    _kill_when(process, lambda: (sweep / "0" / "results.json").exists()
               and _step_of(sweep / "1") >= 2)
    assert not (sweep / "1" / "results.json").exists()
    first = RunDir(sweep / "0").read_results()

    resumed = cli([f"resume={sweep}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{sweep / '0'} already completed: kept" in resumed.stderr
    assert f"resuming {sweep / '1'} at step" in resumed.stderr
    assert RunDir(sweep / "0").read_results() == first  # not trained again
    second = RunDir(sweep / "1").read_results()
    assert second["status"] == "completed" and second["steps"] == 8  # 2 epochs x 4 batches
    summary = _rows(sweep / "summary.csv")
    assert len(summary) == 3  # header + rnn + gru, each completed once


def test_resume_refuses_what_it_cannot_continue(tmp_path, run_training):
    with pytest.raises(ResumeError, match="no such directory"):
        resume_argv([f"resume={tmp_path / 'nope'}"])
    with pytest.raises(ResumeError, match="not a run dir or sweep dir"):
        resume_argv([f"resume={tmp_path}"])

    fast = ["debug=fast", "model=gru", "model.hidden_size=8", "callbacks.gradflow.every_n_steps=1"]
    results, run_dir = run_training(fast, name="run")
    assert results["status"] == "completed"
    # a finished run is kept, not trained again
    again, _ = run_training([*fast, "model.hidden_size=12"], name="run")
    assert again == results
    # an unfinished one whose checkpoint belongs to another model is refused in one line
    (run_dir / "results.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        run_training([*fast, "model.hidden_size=12"], name="run")
    assert exit_info.value.code == 2
    assert not (run_dir / "results.json").exists()


def test_a_finished_run_given_a_larger_budget_trains_on_as_if_never_stopped(run_training,
                                                                              capfd):
    fast = ["debug=fast", "model=gru", "model.hidden_size=8", "callbacks.gradflow.every_n_steps=1"]
    whole, _ = run_training([*fast, "trainer.max_epochs=3"], name="whole")
    first, run_dir = run_training(fast, name="run")
    assert first["steps"] == 2
    capfd.readouterr()
    longer, _ = run_training([*fast, "trainer.max_epochs=3"], name="run")
    assert "completed after 2 steps: training on to trainer.max_epochs=3" in capfd.readouterr().err
    assert longer["status"] == "completed" and longer["steps"] == whole["steps"] == 6
    assert longer["metrics"] == whole["metrics"]  # bit for bit, the test split included
    assert _rows(run_dir / "csv" / "metrics.csv") == _rows(run_dir.parent / "whole" / "csv" /
                                                          "metrics.csv")

    # what cannot be honoured is refused in one line, and the result stays as it was
    for budget, reason in (("trainer.max_epochs=2", "already trained 3 epochs"),
                           ("trainer.max_steps=4", "already trained 6 steps"),
                           ("trainer.max_steps=100", "already trained 3 epochs")):
        with pytest.raises(SystemExit) as exit_info:
            run_training([*fast, "trainer.max_epochs=3", budget], name="run")
        assert exit_info.value.code == 2
        assert reason in capfd.readouterr().err
        assert RunDir(run_dir).read_results() == longer
    # another setting on a finished run is kept, and said to be ignored
    kept, _ = run_training([*fast, "trainer.max_epochs=3", "model.hidden_size=12"], name="run")
    assert kept == longer
    assert "ignored (a finished run keeps its settings): model.hidden_size=12 (ran with 8)" in (
        capfd.readouterr().err)


def test_a_run_trained_on_inside_an_epoch_says_why_and_counts_every_attempts_time(
        run_training, capfd, recwarn):
    """issue 39 item 4: a run that max_steps ended inside an epoch, trained on, resumes inside
    that epoch: one line says the loader replays it (Lightning's "dataloader is not resumable"
    warning, which does not apply, is gone), and the report line and wall_time_s count both
    attempts."""
    fast = ["debug=fast", "model=gru", "model.hidden_size=8", "trainer.limit_train_batches=4",
            "trainer.max_epochs=-1", "callbacks.gradflow.every_n_steps=1"]
    first, run_dir = run_training([*fast, "trainer.max_steps=3"], name="run")
    assert "attempt_wall_times_s" not in first  # one attempt: its own time
    capfd.readouterr()
    longer, _ = run_training([*fast, "trainer.max_steps=5"], name="run")
    err = capfd.readouterr().err
    assert ("rnnlab-train: resuming inside epoch 0 after 3 of its 4 batches: the training loader "
            "replays the epoch's shuffled order and skips those") in err
    assert not [w for w in recwarn if "dataloader is not resumable" in str(w.message)]
    assert "not resumable" not in err.replace("non-resumable dataloader does not apply", "")
    attempts = longer["attempt_wall_times_s"]
    assert len(attempts) == 2 and attempts[0] <= first["wall_time_s"]
    assert longer["wall_time_s"] == pytest.approx(sum(attempts), abs=2e-3)
    from rnnlab.run.console import report_line

    line = report_line(longer, run_dir).splitlines()[0]
    assert f"in {longer['wall_time_s']:.0f} s (2 attempts: " in line


def test_resume_error_is_one_line_exit_2(tmp_path):
    done = cli([f"resume={tmp_path / 'missing'}"], cwd=tmp_path)
    assert done.returncode == 2
    expected = (f"rnnlab-train: error: resume={tmp_path / 'missing'}: no such directory (give a "
                "run dir or a sweep dir under logs/)")
    assert done.stderr.strip().splitlines() == [expected]


def test_resume_argv_restores_the_recorded_command_line(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  overrides:\n    hydra: [hydra.mode=RUN, hydra/launcher=basic]\n"
        "    task: [model=lstm, seed=3]\n")
    argv = resume_argv([f"resume={tmp_path}", "trainer.max_epochs=20"])
    assert argv == ["model=lstm", "seed=3", "hydra/launcher=basic",
                    f"hydra.run.dir={tmp_path.resolve()}", "hydra.output_subdir=null",
                    "trainer.max_epochs=20"]
    assert resume_argv(["model=gru"]) == ["model=gru"]
    # a run recorded before monitor became {metric, mode}
    (tmp_path / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  overrides:\n    hydra: []\n    task: [monitor=val/acc, model=gru]\n")
    assert resume_argv([f"resume={tmp_path}"]) == ["monitor.metric=val/acc", "model=gru",
                                                   f"hydra.run.dir={tmp_path.resolve()}",
                                                   "hydra.output_subdir=null"]


def test_csv_truncation_keeps_the_header_and_the_first_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("a,b\n1,2\n3,4\n5,6\n")
    assert resume.csv_rows(path) == 3
    resume.truncate_csv(path, 1)
    assert path.read_text().splitlines() == ["a,b", "1,2"]


def test_a_preempted_submitit_job_checkpoints_requeues_and_resumes(tmp_path):
    """submitit_local stands in for SLURM: its stop warning (SIGUSR2) reaches the job, which
    saves last.ckpt at the batch end; submitit requeues it and the new attempt resumes there."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "debug=fast",
            "data.train_size=256", "trainer.limit_train_batches=8", "trainer.max_epochs=12",
            "model=gru", "hydra.callbacks.sweep_summary.figures=false",
            f"hydra.sweep.dir={sweep}"]
    process = subprocess.Popen([sys.executable, "-m", "rnnlab.train", *args], cwd=tmp_path,
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    # The job's pid is found while it starts, so that the warning goes out as soon as last.ckpt
    # exists; 12 epochs leave the job seconds of training to receive it in, even on 2 loaded cores
    # (with 3 epochs a fast compiled GRU sometimes finished first).
    deadline = time.monotonic() + 300
    mine: list[str] = []
    while not mine or _step_of(sweep / "0") < 3:
        assert process.poll() is None and time.monotonic() < deadline
        if not mine:
            jobs = subprocess.run(["pgrep", "-f", "submitit.core._submit"], capture_output=True,
                                  text=True, check=False).stdout.split()
            mine = [pid for pid in jobs if str(sweep) in _cmdline(pid)]
        time.sleep(0.02)
    assert len(mine) == 1
    os.kill(int(mine[0]), signal.SIGUSR2)
    output, _ = process.communicate(timeout=400)
    assert process.returncode == 0, output[-2000:]

    log = "\n".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.err"))
    saved = next(l for l in log.splitlines() if "handing over to the scheduler" in l)
    step = int(saved.split(" at step ")[1].split(";")[0])
    assert 3 <= step < 96
    assert f"resuming {sweep / '0'} at step {step}" in log
    results = RunDir(sweep / "0").read_results()
    assert results["status"] == "completed" and results["steps"] == 96


def test_run_files_have_the_usual_modes_and_no_leftovers(run_training):
    results, run_dir = run_training(["debug=fast", "model=gru", "model.hidden_size=8",
                                     "callbacks.gradflow.every_n_steps=1"])
    assert results["status"] == "completed"
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.json", "gradflow.npz", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                 "csv/metrics.csv"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert not [p for p in run_dir.rglob("*") if ".partial-" in p.name]
