"""A run dir or sweep dir in use is locked: a second command on it (a second sweep into the same
sweep dir, ``resume=`` of a run still running) is refused in one line naming the process and
host that hold it, and touches nothing of the first.

``LOCK`` is flock'ed (filelock) by the holding process, so the lock ends with the process however
it ends (kill -9 included); the file stays in the dir, empty, once released (processes that open
it must share one file). ``HOLDER``, beside it, names the holder -- pid, host, since when, its
command -- as filelock stores nothing; it exists while the dir is held. Both are part of the
run-dir layout (rnnlab.run.rundir). The ranks that torchrun/srun start for one launch share one run
dir and are one holder: rank 0 holds the lock for all of them.

Who takes it: :class:`DirLock`, a Hydra callback (conf/hydra/default.yaml), holds a run's run dir
or a sweep's sweep dir from before Hydra writes into it until the run or sweep ends;
rnnlab.run.train.run holds the run dir of every run and sweep job (re-entrant: a no-op where its
process holds it already); ``rnnlab-train resume=<dir>`` checks first, before anything loads.
Standard library and filelock only.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnlab.config.errors import ConfigError
from rnnlab.run.rundir import HOLDER, LOCK, RunDir


class InUse(ConfigError):
    """The run dir or sweep dir is held by another process (one line naming it)."""


_held: dict[Path, list] = {}  # dir -> [FileLock, depth]: what this process holds
_held_guard = threading.Lock()


def _holds_for_its_launch() -> bool:
    """Whether this process takes locks: rank 0 of a launch (or a process launched alone)."""
    from rnnlab.config import launch

    ranks = launch.launched_ranks()
    return ranks is None or ranks[0] == 0


def holder(directory: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds ``directory`` according to its HOLDER file (None: no readable file)."""
    try:
        found = json.loads((Path(directory) / HOLDER).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _in_use(directory: Path, what: str) -> InUse:
    found = None
    for _ in range(10):  # the holder may be writing its file this very moment
        found = holder(directory)
        if found is not None:
            break
        time.sleep(0.05)
    if found is None:
        by = "another process (it has not said which)"
    else:
        command = str(found.get("command", ""))
        command = command if len(command) <= 100 else command[:97] + "..."
        by = (f"pid {found.get('pid')} on host {found.get('host')} (since "
              f"{found.get('since')}: {command})")
    return InUse(f"{directory} is in use by {by}: a second command on a {what} in use is "
                 "refused; wait for it to end, or stop it")


def acquire(directory: str | os.PathLike, what: str = "run dir") -> None:
    """Hold ``directory`` for this process (created if missing), or InUse naming its holder.
    Re-entrant within a process; a no-op on ranks other than 0 of a launch."""
    from filelock import FileLock, Timeout

    if not _holds_for_its_launch():
        return
    directory = Path(directory).resolve()
    with _held_guard:
        if directory in _held:
            _held[directory][1] += 1
            return
        directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(directory / LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise _in_use(directory, what) from None
        _held[directory] = [lock, 1]
    from rnnlab.run.atomic import atomic_open

    with atomic_open(directory / HOLDER, "w") as handle:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}, handle)


def release(directory: str | os.PathLike) -> None:
    """Let go of one :func:`acquire` of ``directory`` (the last one removes HOLDER and unlocks)."""
    directory = Path(directory).resolve()
    with _held_guard:
        entry = _held.get(directory)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[directory]
        (directory / HOLDER).unlink(missing_ok=True)
        entry[0].release()


@contextlib.contextmanager
def hold(directory: str | os.PathLike, what: str = "run dir") -> Iterator[None]:
    """:func:`acquire` ``directory`` for the block."""
    acquire(directory, what)
    try:
        yield
    finally:
        release(directory)


def check_free(directory: str | os.PathLike, what: str = "run dir") -> None:
    """InUse (one line naming the holder) when another process holds ``directory``; nothing is
    written (a look, for refusing early; :func:`acquire` is what holds it)."""
    from filelock import FileLock, Timeout

    directory = Path(directory).resolve()
    if not (directory / LOCK).is_file() or directory in _held or not _holds_for_its_launch():
        return
    probe = FileLock(str(directory / LOCK), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        raise _in_use(directory, what) from None
    probe.release()


def check_sweep_not_in_use(run_dir: str | os.PathLike) -> None:
    """A single run in a job dir of a sweep (``resume=<sweep dir>/<job>``) is refused while
    another process holds that sweep: the sweep would run the same job."""
    sweep = Path(run_dir).resolve().parent
    if RunDir.sweep_config(sweep).is_file():
        check_free(sweep, "sweep dir")


class DirLock:
    """The Hydra callback (conf/hydra/default.yaml) that holds the run dir of a run, or the
    sweep dir of a sweep, from before Hydra writes into it until it ends; a second command on a
    dir in use is refused there in one line, exit 2 (Hydra turns a callback's exceptions into
    warnings, so this exits itself)."""

    def __init__(self) -> None:
        self._held: list[Path] = []

    def __getattr__(self, name: str):
        # Hydra calls every hook it knows (on_job_start, on_compose_config, ...); the others
        # have nothing to do here
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def _acquire(self, directory: str, what: str) -> None:
        try:
            if what == "run dir":
                check_sweep_not_in_use(directory)
            acquire(directory, what)
        except ConfigError as error:
            print(f"rnnlab-train: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        self._held.append(Path(directory))

    def _release(self) -> None:
        while self._held:
            release(self._held.pop())

    def on_run_start(self, config, **kwargs) -> None:
        self._acquire(str(config.hydra.run.dir), "run dir")

    def on_run_end(self, config, **kwargs) -> None:
        self._release()

    def on_multirun_start(self, config, **kwargs) -> None:
        self._acquire(str(config.hydra.sweep.dir), "sweep dir")

    def on_multirun_end(self, config, **kwargs) -> None:
        self._release()
