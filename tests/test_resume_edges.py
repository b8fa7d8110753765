"""Killed (a real SIGKILL) at the edges of a run -- before the last validation, at the start of
the test phase, while the report is written -- ``resume=`` ends bit-identical to the
uninterrupted run: results.json without its wall time, metrics.csv and gradflow.npz byte for
byte (README "Resume")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# 2 epochs x 4 batches; last.ckpt at epoch ends only, so a kill before the last validation
# resumes from the first epoch's end.
RUN = ["data=adding", "data.seq_len=10", "data.train_size=128", "data.val_size=32",
       "data.test_size=32", "data.batch_size=32", "model=lstm", "model.hidden_size=8",
       "model.num_layers=2", "model.dropout=0.25", "trainer.max_epochs=2",
       "trainer.enable_progress_bar=false", "callbacks.gradflow.every_n_steps=3",
       "callbacks.gradflow.jacobian_every_n_steps=3",
       "callbacks.mid_epoch_checkpoint.minutes=null", "trainer.log_every_n_steps=1"]

# The process kills itself with SIGKILL at the edge named by its first argument.
KILLER = """
import os, signal, sys
edge = sys.argv.pop(1)
sys.argv[0] = "rnnlab-train"

def die():
    os.kill(os.getpid(), signal.SIGKILL)

from lightning.pytorch.loops import evaluation_loop
run = evaluation_loop._EvaluationLoop.run

def run_or_die(self):
    trainer = self.trainer
    if edge == "validation" and trainer.state.fn == "fit" and not trainer.sanity_checking \\
            and trainer.current_epoch == trainer.max_epochs - 1:
        die()
    if edge == "test" and trainer.state.fn == "test":
        die()
    return run(self)

evaluation_loop._EvaluationLoop.run = run_or_die
from rnnlab.run import atomic
write = atomic.write_json_atomic

def write_or_die(path, *args, **kwargs):
    if edge == "report" and os.path.basename(str(path)) == "results.json":
        die()
    return write(path, *args, **kwargs)

atomic.write_json_atomic = write_or_die
from rnnlab.commands.train import main
main()
"""

EDGES = ("validation", "test", "report")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_SERVICE")}


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *argv], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=600)
    return process.returncode, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted run and, for each edge, a run killed there and resumed (all started
    at once: the cores are shared)."""
    base = tmp_path_factory.mktemp("edges")
    whole = _start(["-m", "rnnlab.train", *RUN, f"hydra.run.dir={base / 'whole'}"], base)
    killed = {edge: _start(["-c", KILLER, edge, *RUN, f"hydra.run.dir={base / edge}"], base)
              for edge in EDGES}
    outcome = {edge: _wait(process) for edge, process in killed.items()}
    resumed = {edge: _start(["-m", "rnnlab.train", f"resume={base / edge}"], base)
               for edge in EDGES}
    code, err = _wait(whole)
    assert code == 0, err[-2000:]
    return base, outcome, {edge: _wait(process) for edge, process in resumed.items()}


# What differs between any two attempts, interrupted or not: the wall time (and each attempt's),
# the commit the code was at, the layer calls this attempt made (backends), and the run's own
# directory.
ATTEMPT = ("wall_time_s", "attempt_wall_times_s", "git_commit", "backends")


def _results(run: Path) -> dict:
    text = (run / "results.json").read_text().replace(str(run), "<run dir>")
    results = json.loads(text)
    for key in ATTEMPT:
        results.pop(key, None)  # (attempt_wall_times_s: a resumed run's only)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("edge", EDGES)
def test_killed_at_an_edge_of_the_run_resumes_bit_identical(runs, edge):
    base, killed, resumed = runs
    code, err = killed[edge]
    assert code == -9, err[-2000:]  # a real SIGKILL, before results.json
    run, whole = base / edge, base / "whole"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    code, err = resumed[edge]
    assert code == 0, err[-2000:]
    assert _results(run) == _results(whole)
    for name in ("csv/metrics.csv", "gradflow.npz"):
        assert (run / name).read_bytes() == (whole / name).read_bytes(), name
