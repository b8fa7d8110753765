"""The training app end to end: fast runs per data x cell, results.json, W&B read back, learning."""

from __future__ import annotations

import json

import pytest
from wandb_offline import find_offline_runs, read_finished_run

from rnnlab.run.rundir import STATUSES

SYNTHETIC = ["copy", "adding"]
CELLS = ["rnn", "gru", "lstm"]
RESULT_FIELDS = {"status", "metrics", "num_params", "hidden_size", "wall_time_s", "steps", "seed",
                 "config", "versions", "git_commit", "compile_fallbacks"}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("data", SYNTHETIC)
def test_fast_dev_run(data, cell, run_training):
    results, run_dir = run_training([f"data={data}", f"model={cell}", "debug=fast",
                                     "model.hidden_size=16"])
    assert results["status"] == "completed"
    assert results["steps"] == 2
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert RESULT_FIELDS <= set(on_disk)
    assert on_disk["status"] in STATUSES
    for key in ("train/loss", "val/loss", "test/loss", "val/loss_best", "baseline/loss"):
        assert key in on_disk["metrics"], key
    assert on_disk["config"]["model"]["cell"] == cell
    assert on_disk["hidden_size"] == 16
    assert on_disk["num_params"] > 0
    assert (run_dir / "checkpoints" / "best.ckpt").exists()
    assert (run_dir / "csv" / "metrics.csv").exists()


def test_results_json_is_complete(run_training):
    results, run_dir = run_training(["data=copy", "model=gru", "debug=fast", "seed=7"])
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert RESULT_FIELDS <= set(on_disk)
    assert on_disk["seed"] == 7 and on_disk["config"]["seed"] == 7
    assert {"torch", "lightning", "hydra-core", "wandb"} <= set(on_disk["versions"])
    assert on_disk["wall_time_s"] > 0
    # Metrics are flat: name -> number, with best-of-validation beside the final values.
    assert all(isinstance(v, float) for v in on_disk["metrics"].values())
    assert on_disk["metrics"]["baseline/loss"] == pytest.approx(10 * 2.0794415 / 30, rel=1e-6)
    # No temp file left behind by the atomic write.
    assert not list(run_dir.glob(".results.json.*"))


def test_wandb_offline_run_holds_the_metrics(run_training):
    results, run_dir = run_training(["data=adding", "model=lstm", "debug=fast",
                                     "experiment_name=wandbcheck"])
    runs = find_offline_runs(run_dir)
    assert len(runs) == 1, "exactly one W&B run per job, inside the run dir"
    run = read_finished_run(run_dir)
    assert run.group == "wandbcheck"
    assert {"lstm", "adding"} <= set(run.tags)
    assert run.exit_code == 0
    assert run.config["model"]["cell"] == "lstm"
    assert run.config["num_params"] == results["num_params"]
    assert {"train/loss", "val/loss", "test/loss", "val/mse", "baseline/loss"} <= run.keys
    assert run.series("train/loss")[-1] == pytest.approx(results["metrics"]["train/loss"])
    assert run.summary["test/loss"] == pytest.approx(results["metrics"]["test/loss"])


def test_same_seed_same_numbers(run_training):
    first, _ = run_training(["data=adding", "model=gru", "debug=fast", "logger=none"], "a")
    second, _ = run_training(["data=adding", "model=gru", "debug=fast", "logger=none"], "b")
    assert first["metrics"]["test/loss"] == second["metrics"]["test/loss"]


def test_param_budget_solves_hidden_size(run_training):
    results, _ = run_training(["data=adding", "model=lstm", "model.param_budget=5000",
                               "debug=fast", "logger=none"])
    hidden = results["hidden_size"]
    assert results["num_params"] <= 5000
    # One unit more would break the budget: 4 gates x (I + H + 2) per unit plus the head.
    assert results["num_params"] + 4 * (2 + 2 * hidden + 3) + 8 * hidden + 1 > 5000


@pytest.mark.slow
def test_gru_learns_the_adding_problem(run_training):
    results, _ = run_training([
        "data=adding", "data.seq_len=20", "data.train_size=4096", "data.val_size=256",
        "data.test_size=256", "model=gru", "model.hidden_size=32", "optimizer.lr=0.01",
        "trainer.max_epochs=4", "trainer.enable_progress_bar=false", "logger=csv",
        "callbacks=none"])
    baseline = results["metrics"]["baseline/loss"]
    assert results["metrics"]["test/mse"] < 0.1 * baseline


@pytest.mark.slow
def test_gru_learns_the_copy_task(run_training):
    results, _ = run_training([
        "data=copy", "data.seq_len=5", "data.train_size=8192", "data.val_size=256",
        "data.test_size=256", "model=gru", "model.impl=fused", "model.hidden_size=128",
        "optimizer.lr=0.003", "trainer.max_epochs=10", "trainer.enable_progress_bar=false",
        "logger=csv", "callbacks=none"])
    baseline = results["metrics"]["baseline/loss"]
    assert results["metrics"]["test/loss"] < 0.7 * baseline
    assert results["metrics"]["test/acc"] > 0.4  # chance on the recalled symbols is 1/8


def test_divergence_is_recorded_not_raised(run_training):
    # SGD with an absurd step: the loss overflows float32 on the second step.
    _results, run_dir = run_training(["data=adding", "optimizer=sgd", "optimizer.lr=1e30",
                                     "debug=fast", "logger=csv"])
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["status"] == "diverged"
    assert "train/loss became" in on_disk["error"]
    assert on_disk["steps"] == 1


def test_an_exploded_but_finite_run_is_diverged(run_training, capsys):
    # Adam at lr 1e6 on adding: the loss stays finite but grows by orders of magnitude.
    results, run_dir = run_training(["data=adding", "model=gru", "debug=fast",
                                     "optimizer.lr=1e6", "logger=csv"])
    assert results["status"] == "diverged"
    assert "divergence_factor=1000" in results["error"]
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["steps"] == 1


@pytest.mark.parametrize(("override", "message"), [
    ("optimizer.lr=-1", "optimizer.lr must be > 0, got -1"),
    ("optimizer.lr=0", "optimizer.lr must be > 0, got 0"),
    ("seed=abc", "seed must be an integer, got 'abc'"),
    ("trainer.max_steps=0", "trainer.max_steps=0"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("divergence_factor=0.5", "divergence_factor must be a number > 1 or null"),
])
def test_settings_that_cannot_train_are_refused_in_one_line(override, message, run_training,
                                                            capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_training([override, "debug=fast", "logger=csv"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"rnnlab-train: error: {message}" or message in err[-1]
    assert not list(tmp_path.rglob("results.json")) and not list(tmp_path.rglob("*.ckpt"))


def test_wandb_summary_keeps_the_best_validation_values(run_training):
    from wandb_offline import read_finished_run

    results, run_dir = run_training(["data=copy", "model=gru", "debug=fast",
                                     "trainer.max_epochs=2"])
    run = read_finished_run(run_dir)
    loss = run.summary["val/loss"]
    assert set(loss) >= {"min", "last"}, loss
    assert loss["min"] == pytest.approx(results["metrics"]["val/loss_best"], rel=1e-6)
    assert run.summary["val/acc"]["max"] == pytest.approx(results["metrics"]["val/acc_best"],
                                                          rel=1e-6)


def test_early_stopping_and_best_follow_the_monitor(run_training):
    """callbacks.early_stopping.patience stops a run by monitor.metric in monitor.mode, and the
    monitored metric's best value is taken in that mode. monitor.mode=max on val/loss makes a
    learning run "stop improving" at once, so the stop is read back against a hand count."""
    import pandas as pd

    results, run_dir = run_training(["data=adding", "model=gru", "debug=fast",
                                     "trainer.max_epochs=8", "monitor.mode=max",
                                     "callbacks.early_stopping.patience=2"])
    assert results["status"] == "completed"
    frame = pd.read_csv(run_dir / "csv" / "metrics.csv")
    val = frame.dropna(subset=["val/loss"]).groupby("epoch")["val/loss"].last().tolist()
    # Lightning's rule: stop once `patience` validations in a row did not beat the best so far
    best, wait, expected = val[0], 0, len(val)
    for epoch, value in enumerate(val[1:], start=1):
        best, wait = (value, 0) if value > best else (best, wait + 1)
        if wait >= 2:
            expected = epoch + 1
            break
    assert len(val) == expected < 8, val
    assert results["steps"] == 2 * len(val)
    assert results["metrics"]["val/loss_best"] == pytest.approx(max(val), rel=1e-6)


def test_early_stopping_is_off_by_default(tmp_path):
    from conftest import compose_config
    from lightning.pytorch.callbacks import EarlyStopping

    from rnnlab.run.build import make_callbacks

    def early_stopping(overrides):
        callbacks = make_callbacks(compose_config(overrides, tmp_path), has_logger=True)
        return [c for c in callbacks if isinstance(c, EarlyStopping)]

    assert early_stopping([]) == []
    (found,) = early_stopping(["callbacks.early_stopping.patience=3", "monitor.metric=val/acc"])
    assert (found.patience, found.monitor, found.mode, found.check_finite) == (3, "val/acc", "max",
                                                                              False)


def test_early_stopping_counts_on_across_a_resume(run_training):
    """last.ckpt holds EarlyStopping's count: a run resumed from it goes on counting (a fresh
    count would train two epochs more). monitor.mode=max on a falling val/loss: no epoch after
    the first improves, so patience 2 stops after epoch 3 however the run was split."""
    from itertools import pairwise

    import pandas as pd

    common = ["data=adding", "model=gru", "debug=fast", "monitor.mode=max",
              "callbacks.early_stopping.patience=2"]
    first, run_dir = run_training([*common, "trainer.max_epochs=2"], name="run")
    assert first["status"] == "completed" and first["steps"] == 4
    (run_dir / "results.json").unlink()  # an unfinished run: the next start resumes it
    results, _ = run_training([*common, "trainer.max_epochs=8"], name="run")
    frame = pd.read_csv(run_dir / "csv" / "metrics.csv")
    val = frame.dropna(subset=["val/loss"]).groupby("epoch")["val/loss"].last().tolist()
    assert all(b < a for a, b in pairwise(val)), val  # the premise: val/loss falls
    assert len(val) == 3 and results["steps"] == 6, (val, results["steps"])


def test_a_compile_failure_is_recorded_in_results_and_the_report(run_training, monkeypatch):
    from rnnlab.cells import compile_cache
    from rnnlab.cells.rnn import RNN
    from rnnlab.run.console import report_line

    def broken(fn, args):
        raise RuntimeError("CppCompileError: forced")

    monkeypatch.setenv("RNNLAB_COMPILE", "1")
    monkeypatch.setattr(compile_cache, "_inductor_compile", broken)
    monkeypatch.setattr(compile_cache._CompileState, "compile_after", 1)
    shared = RNN(2, 8).recurrence()._fns  # shared by every RNN in this worker: fresh ones here
    before = dict(shared)
    shared.clear()
    try:
        results, run_dir = run_training(["data=adding", "model=rnn", "debug=fast",
                                         "model.hidden_size=9"])
    finally:
        shared.clear()
        shared.update(before)
    assert results["status"] == "completed"
    recorded = json.loads((run_dir / "results.json").read_text())["compile_fallbacks"]
    assert recorded and set(recorded.values()) == {"RuntimeError: CppCompileError: forced"}
    assert "ran eager, compilation failed (slower): " in report_line(results, run_dir)
    # a run that ran as asked (here: eager by request) says so with an empty record
    monkeypatch.setenv("RNNLAB_COMPILE", "0")
    clean, _ = run_training(["data=adding", "model=rnn", "debug=fast", "model.hidden_size=9"],
                            name="clean")
    assert clean["compile_fallbacks"] == {}


def test_a_run_shorter_than_an_epoch_validates_at_its_last_step(run_training):
    """trainer.max_steps inside the first epoch: validated once at the end, so the run has val
    metrics, its checkpoints, and a verdict against the task's baseline in its last line."""
    from rnnlab.run.console import report_line

    results, run_dir = run_training(["data=adding", "model=gru", "debug=fast",
                                     "model.hidden_size=8", "trainer.limit_train_batches=4",
                                     "trainer.max_steps=3"])
    assert results["status"] == "completed" and results["steps"] == 3
    for key in ("val/loss", "val/loss_best", "baseline/loss", "test/loss"):
        assert key in results["metrics"], key
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt",
                                                                         "last.ckpt"]
    assert "baseline 0.1667 (" in report_line(results, run_dir)


@pytest.mark.parametrize("stop", ["trainer.max_epochs=2", "trainer.max_steps=7"])
def test_train_loss_is_logged_where_the_loggers_and_the_final_value_read_it(stop, run_training,
                                                                            monkeypatch):
    """train/loss is logged at the steps Lightning writes (every log_every_n_steps), at epoch
    ends and at max_steps only: the CSV rows are those of logging every step, and results.json's
    final train/loss is the loss of the last step taken."""
    import csv

    from rnnlab.model.task import SequenceTask

    losses, logged = [], []
    original_step, original_log = SequenceTask.training_step, SequenceTask.log

    def training_step(self, batch, batch_idx):
        loss = original_step(self, batch, batch_idx)
        losses.append(float(loss.detach()))
        return loss

    def log(self, name, value, *args, **kwargs):
        if name == "train/loss":
            logged.append(self.trainer.global_step)
        return original_log(self, name, value, *args, **kwargs)

    monkeypatch.setattr(SequenceTask, "training_step", training_step)
    monkeypatch.setattr(SequenceTask, "log", log)
    results, run_dir = run_training(["data=adding", "model=gru", "model.hidden_size=8",
                                     "data.seq_len=10", "data.train_size=320", "data.val_size=64",
                                     "data.test_size=64", "data.batch_size=64", "logger=csv",
                                     "trainer.log_every_n_steps=3", "test=false",
                                     "trainer.enable_progress_bar=false", stop])
    steps = len(losses)
    assert results["status"] == "completed" and results["steps"] == steps
    assert steps == (10 if "epochs" in stop else 7)
    written = [s for s in range(steps) if (s + 1) % 3 == 0]
    epoch_ends = [s for s in range(steps) if (s + 1) % 5 == 0]
    assert logged == sorted({*written, *epoch_ends, steps - 1})
    rows = list(csv.DictReader(open(next(run_dir.glob("csv/**/metrics.csv")))))
    in_csv = {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    # Lightning writes every log_every_n_steps, and at a max_steps stop (should_stop is set at
    # that batch's end; at max_epochs only after the epoch), as when every step was logged
    assert sorted(in_csv) == sorted({*written, *([steps - 1] if "steps" in stop else [])})
    for step, value in in_csv.items():
        assert value == pytest.approx(losses[step], rel=1e-6)
    assert results["metrics"]["train/loss"] == pytest.approx(losses[-1], rel=1e-6)


def test_the_progress_bar_draws_from_the_loop_at_most_refresh_rate_times_a_second(run_training,
                                                                                  monkeypatch):
    """No refresh thread beside the training loop; a draw at most every 1 / refresh_rate s, and
    always at an epoch's last batch (so the bar ends where the epoch did)."""
    import threading
    import time

    from lightning.pytorch.callbacks.progress import rich_progress

    from rnnlab.run.progress import ProgressBar

    draws, threads, last_batches = [], [], []
    original_refresh = rich_progress.CustomProgress.refresh
    original_end = ProgressBar.on_train_batch_end

    def refresh(self):
        draws.append(time.monotonic())
        return original_refresh(self)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        threads.append(any(isinstance(t, rich_progress._RefreshThread)
                           for t in threading.enumerate()))
        before = len(draws)
        original_end(self, trainer, pl_module, outputs, batch, batch_idx)
        if batch_idx + 1 == self.total_train_batches:
            last_batches.append(len(draws) > before)

    monkeypatch.setattr(rich_progress.CustomProgress, "refresh", refresh)
    monkeypatch.setattr(ProgressBar, "on_train_batch_end", on_train_batch_end)
    results, _ = run_training(["data=adding", "model=gru", "model.hidden_size=8",
                               "data.seq_len=10", "data.train_size=640", "data.val_size=64",
                               "data.test_size=64", "logger=csv", "trainer.max_epochs=2",
                               "callbacks.progress_bar.refresh_rate=5", "test=false"])
    assert results["status"] == "completed" and len(threads) == 20
    assert not any(threads)
    assert last_batches == [True, True]
    gaps = [b - a for a, b in zip(draws, draws[1:])]
    # forced draws (epoch ends, stage changes) aside, draws are >= 1/5 s apart
    assert sum(g < 0.2 for g in gaps) <= 8
