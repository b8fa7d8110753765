"""A run that goes wrong ends as a result with its reason, and leaves nothing outside its run
and data dirs: divergence under DDP, W&B without a network, where files go (README "Resume" and
"Where outputs land")."""

from __future__ import annotations

import os
import time

import pytest
from conftest import cli
from wandb_offline import read_finished_run

from rnnlab.run.rundir import RunDir


def test_ddp_divergence_is_a_result_with_its_cause_and_nothing_lands_outside(tmp_path):
    home, tmp, run_dir, data = (tmp_path / name for name in ("home", "tmp", "run", "data"))
    home.mkdir()
    tmp.mkdir()
    done = cli(["trainer=ddp_cpu", "data=adding", "model=gru", "model.hidden_size=8",
                # rows every 50 steps: none before it diverges, so the worker's own metrics
                # are what results.json has (issue 42 item 8: it recorded metrics {})
                "debug=fast", "trainer.log_every_n_steps=50", "optimizer.lr=1e6",
                f"hydra.run.dir={run_dir}",
                f"paths.data_dir={data}"], cwd=tmp_path,
               env={"HOME": str(home), "TMPDIR": str(tmp)})
    assert done.returncode == 0, done.stderr[-2000:]  # diverged is a result, not a failure
    results = RunDir(run_dir).read_results()
    assert results["status"] == "diverged"
    # the spawned worker's own cause, not "ProcessRaisedException: process 1 terminated"
    assert results["error"].startswith("Diverged: ")
    assert "divergence_factor=1000" in results["error"]
    assert results["steps"] >= 1
    assert results["metrics"]["train/loss"] > 0  # the last finite values the worker logged
    said = [line for line in done.stderr.splitlines() if line.startswith("rnnlab-train: diverged")]
    assert said == [f"rnnlab-train: diverged: {results['error']}"]
    wandb_run = read_finished_run(run_dir)
    assert wandb_run.summary["status"] == "diverged"
    assert wandb_run.summary["error"] == results["error"]
    log = (run_dir / "train.log").read_text()
    assert "rnnlab-train: diverged after" in log and "GPU available" in log

    # Writes stay home: the cwd untouched, no temp folders, no W&B files under $HOME
    assert {p.name for p in tmp_path.iterdir()} <= {"data", "home", "run", "tmp"}
    assert [p.name for p in tmp.iterdir()] in ([], ["torchinductor_" + os.environ.get(
        "USER", "root")]), list(tmp.iterdir())  # the compile cache, shared by runs
    assert not [p for p in home.rglob("*") if "wandb" in str(p)]
    assert not (run_dir / ".tmp").exists()


def test_wandb_online_without_a_network_falls_back_to_offline(run_training, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    results, run_dir = run_training(["debug=fast", "model.hidden_size=8", "logger=wandb"])
    assert results["status"] == "completed"
    assert time.monotonic() - started < 60
    warnings = [line for line in capsys.readouterr().err.splitlines() if "unreachable" in line]
    assert len(warnings) == 1 and "http://127.0.0.1:9" in warnings[0]
    wandb_run = read_finished_run(run_dir)  # everything logged, offline, ready for wandb sync
    assert wandb_run.exit_code == 0 and wandb_run.summary["status"] == "completed"
    assert os.environ["WANDB_MODE"] == "online"  # the user's choice stays for the next job


@pytest.mark.parametrize("diverged", [("train/loss", float("nan"), 7, None, None),
                                      ("val/loss", float("inf"), 0, None, None),
                                      ("train/loss", 1234.5678, 12, 1000.0, 0.693147)])
def test_a_divergence_reads_back_from_a_spawned_workers_traceback(diverged):
    """A spawned DDP worker's Diverged reaches the parent as traceback text: what the message
    says must read back as the same fields (a reworded message would zero the steps)."""
    import pickle

    from rnnlab.model.task import Diverged

    # the last finite metrics the worker had logged come back too (issue 42 item 8: a DDP
    # divergence before the CSV log's first row recorded metrics {})
    error = Diverged(*diverged, metrics={"train/loss": 0.69, "val/loss": float("nan")})
    # as Python prints it: the class by its module's path, then its note
    import sys
    import traceback

    lines = traceback.format_exception_only(error)
    assert lines[0].startswith("rnnlab.model.task.Diverged: ")
    text = "Traceback (most recent call last):\n  ...\n" + "".join(lines)
    back = Diverged.from_traceback(text)
    assert (back.metric, back.step, back.factor) == (error.metric, error.step, error.factor)
    assert str(back) == str(error)
    assert back.metrics == ({"train/loss": 0.69} if sys.version_info >= (3, 11) else {})
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    assert Diverged.from_traceback("RuntimeError: something else") is None
