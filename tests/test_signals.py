"""A run stopped by SIGTERM or SIGINT exits 128 + the signal (143, 130) with its resumable state
written and one status line; a failed single run ends with one status line too (README
"Resume")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rnnlab.run import resume
from rnnlab.run.rundir import RunDir

# 8 batches an epoch, far more epochs than it gets to: the signal lands while it trains.
RUN = ["data=adding", "data.seq_len=10", "data.train_size=256", "data.val_size=64",
       "data.test_size=64", "data.batch_size=32", "model=lstm", "model.hidden_size=16",
       "model.num_layers=2", "model.dropout=0.25", "trainer.max_epochs=200",
       "trainer.enable_progress_bar=false", "callbacks.mid_epoch_checkpoint.minutes=null"]

FAIL = ("import sys, rnnlab.run.train as t\n"
        "def boom(*args):\n    raise RuntimeError('boom\\nsecond line')\n"
        "t._fit_and_test = boom\n"
        "sys.argv[0] = 'rnnlab-train'\n"
        "from rnnlab.commands.train import main\nmain()\n")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_SERVICE")}


def _popen(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *argv], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _step(run_dir: Path) -> int:
    path = RunDir(run_dir).last_checkpoint()
    try:
        return resume.checkpoint_step(path) if path else -1
    except Exception:  # noqa: BLE001 - being replaced: look again
        return -1


def test_sigterm_and_sigint_exit_128_plus_the_signal_resumable_and_a_failure_says_one_line(
        tmp_path):
    runs = {"SIGTERM": tmp_path / "term", "SIGINT": tmp_path / "int"}
    started = {name: _popen(["-m", "rnnlab.train", *RUN, f"hydra.run.dir={run}"], tmp_path)
               for name, run in runs.items()}
    failing = _popen(["-c", FAIL, "debug=fast", "model=gru", "model.hidden_size=8",
                      f"hydra.run.dir={tmp_path / 'failed'}"], tmp_path)
    sent: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while len(sent) < len(runs):  # each one signalled once it has its first checkpoint
        assert time.monotonic() < deadline
        for name, process in started.items():
            if name not in sent and _step(runs[name]) >= 8:
                sent[name] = _step(runs[name])
                process.send_signal(getattr(signal, name))
            assert process.poll() is None or name in sent, process.communicate()[1][-2000:]
        time.sleep(0.05)

    for name, process in started.items():
        _, err = process.communicate(timeout=120)
        run = runs[name]
        assert process.returncode == 128 + getattr(signal, name), err[-2000:]
        assert not (run / "results.json").exists()
        step = resume.checkpoint_step(run / RunDir.LAST)  # written at the next batch start
        assert step > sent[name]
        lines = [line for line in err.splitlines() if line.startswith("rnnlab-train:")]
        assert lines == [f"rnnlab-train: stopped by {name}: {run} is unfinished, "
                         f"{RunDir.LAST} at step {step}; rnnlab-train resume={run} "
                         "continues it"], err[-2000:]
        assert err.rstrip().splitlines()[-1] == lines[0]

    _, err = failing.communicate(timeout=300)
    assert failing.returncode == 1, err[-2000:]
    log = tmp_path / "failed" / "train.log"
    said = [line for line in err.splitlines() if line.startswith("rnnlab-train:")]
    assert said == [f"rnnlab-train: failed: RuntimeError: boom (traceback in {log})"], err
    assert err.rstrip().splitlines()[-1] == said[0]
    assert "Traceback" not in err and "Traceback" in log.read_text()
    results = (tmp_path / "failed" / "results.json").read_text()
    assert '"status": "failed"' in results
