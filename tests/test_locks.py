"""A run dir or sweep dir in use is locked (rnnlab.run.dirlock): a second command on it is refused
in one line naming the process and host holding it, and touches nothing of the first; the ranks of
one launch are one holder."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from rnnlab.run import dirlock, rundir
from rnnlab.run.rundir import RunDir

# the rnnlab-train script
_ENTRY = "import sys; from rnnlab.commands.train import main; sys.exit(main())"


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_SERVICE")}
    return {**env, **extra}


def _start(args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _ENTRY, *args], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def _try_in_another_process(directory, **env) -> subprocess.CompletedProcess:
    code = ("import sys; from rnnlab.run import dirlock\n"
            "try:\n    dirlock.acquire(sys.argv[1])\nexcept dirlock.InUse as e:\n"
            "    print(e, file=sys.stderr); sys.exit(2)\n")
    return subprocess.run([sys.executable, "-c", code, str(directory)], env=_env(**env),
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_held_dir_is_refused_to_another_process_but_not_to_the_ranks_of_its_launch(tmp_path):
    run = tmp_path / "run"
    with dirlock.hold(run):
        with dirlock.hold(run):  # re-entrant in its process
            pass
        assert dirlock.holder(run)["pid"] == os.getpid()
        other = _try_in_another_process(run)
        assert other.returncode == 2
        line = _one_line(other.stderr)
        assert f"in use by pid {os.getpid()} on host {socket.gethostname()}" in line
        # rank 1 of a torchrun launch: its rank 0 holds the dir for it
        assert _try_in_another_process(run, RANK="1", WORLD_SIZE="2").returncode == 0
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK]  # the holder's file is gone
    assert _try_in_another_process(run).returncode == 0  # free again


def test_a_sweep_in_use_refuses_a_second_sweep_and_resumes_of_it(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "debug=fast", "trainer.max_epochs=3", "logger=csv", "model=rnn,gru",
            "hydra.callbacks.sweep_summary.figures=false", f"hydra.sweep.dir={sweep}"]
    first = _start(args, tmp_path)
    job = sweep / "0"
    deadline = time.monotonic() + 240
    # Hydra writes the job's config.yaml, hydra.yaml, then overrides.yaml: once the last one
    # holds its text, the first sweep's job has its .hydra/ whole (reading the times earlier,
    # while Hydra still writes, would see them change)
    overrides = job / ".hydra" / "overrides.yaml"
    while not (overrides.is_file() and overrides.stat().st_size > 0):
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    holder = json.loads((sweep / rundir.HOLDER).read_text())
    assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
    recorded = {p: p.stat().st_mtime_ns for p in [sweep / "multirun.yaml",
                                                   *(job / ".hydra").iterdir()]}

    # all at once, while the first sweep runs: a second sweep, resume= of it and of its job
    others = [_start(argv, tmp_path) for argv in (args, [f"resume={sweep}"], [f"resume={job}"])]
    for other in others:
        _, err = other.communicate(timeout=240)
        assert other.returncode == 2, err[-2000:]
        line = _one_line(err)
        assert line.startswith(f"rnnlab-train: error: {sweep} is in use by pid {first.pid} on "
                               f"host {socket.gethostname()}"), line
    assert first.poll() is None, "the first sweep ended before the others were refused"
    assert {p: p.stat().st_mtime_ns for p in recorded} == recorded

    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    for n in ("0", "1"):
        assert RunDir(sweep / n).read_results()["status"] == "completed"
    with (sweep / "summary.csv").open(newline="") as handle:
        assert len(list(csv.reader(handle))) == 3  # header + rnn + gru
    assert not (sweep / rundir.HOLDER).exists() and (sweep / rundir.LOCK).is_file()


def test_a_lock_whose_holder_has_not_said_who_is_still_refused(tmp_path):
    from filelock import FileLock

    held = FileLock(str(tmp_path / rundir.LOCK), timeout=0)  # a holder without its file
    held.acquire()
    try:
        with pytest.raises(dirlock.InUse, match="in use by another process .*sweep dir in use"):
            dirlock.acquire(tmp_path, "sweep dir")
    finally:
        held.release()
