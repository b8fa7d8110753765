"""A run dir's lifecycle: a finished run is kept (or trained on to a larger budget), an
unfinished one that never checkpointed starts over, a run refused before it began leaves no
folder; while a command works in a run dir or sweep dir, the dir is locked (LOCK, HOLDER)."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.config import hydra_runtime
from rnnlab.config.errors import ConfigError
from rnnlab.config.naming import flatten, show
from rnnlab.config.untrusted import load_checkpoint
from rnnlab.run import dirlock, resume, tracking

# The lock of a run dir or sweep dir in use, and the file beside it naming its holder: part of
# the run-dir layout (rnnlab.run.dirlock takes and checks them, light enough for the CLI's first
# checks); the lock stays, empty, when released, the holder's file goes.
LOCK, HOLDER = dirlock.LOCK, dirlock.HOLDER
LOCK_FILES = (LOCK, HOLDER)
InUse, acquire, release = dirlock.InUse, dirlock.acquire, dirlock.release
check_sweep_not_in_use = dirlock.check_sweep_not_in_use


def finished_result(output_dir: Path) -> dict[str, Any] | None:
    """results.json of a run in this dir that completed or diverged (None otherwise)."""
    try:
        results = tracking.read_results(output_dir)
    except (OSError, ValueError):
        return None
    return results if results.get("status") in ("completed", "diverged") else None


_BUDGET = ("max_epochs", "max_steps")


def _limit(value) -> float:
    """A trainer limit as a number (None and -1 mean none: infinity)."""
    return math.inf if value is None or value == -1 else float(value)


def larger_budget(finished: dict[str, Any], cfg: DictConfig, output_dir: Path) -> str | None:
    """The larger trainer budget (e.g. "trainer.max_epochs=40") that a finished run is given, to
    train on to from its last.ckpt; None when its budget is unchanged (the run is kept).
    ConfigError when the new budget cannot be honoured: one the run has already reached, a
    diverged run, a run that early stopping ended, a schedule spanning the old budget."""
    old = (finished.get("config") or {}).get("trainer") or {}
    changed = {key: cfg.trainer.get(key) for key in _BUDGET
               if _limit(cfg.trainer.get(key)) != _limit(old.get(key))}
    if not changed:
        return None
    said = " ".join(f"trainer.{key}={value}" for key, value in changed.items())
    if finished["status"] != "completed":
        raise ConfigError(f"{said}: the run {finished['status']} ({finished.get('error')}); it "
                          "does not train on (start a new run dir)")
    checkpoint = resume.last_checkpoint(output_dir)
    if checkpoint is None:
        raise ConfigError(f"{said}: {output_dir / resume.CHECKPOINT} is missing, so the run "
                          "cannot train on from where it ended")
    state = load_checkpoint(checkpoint)
    # What the run has reached, against each new limit (the epoch of last.ckpt counts as reached).
    reached = {"max_steps": (int(finished.get("steps") or 0), "steps"),
               "max_epochs": (int(state.get("epoch", 0)) + 1, "epochs")}
    for key in sorted(_BUDGET, key=lambda k: k not in changed):  # the settings given first
        done, unit = reached[key]
        if done >= _limit(cfg.trainer.get(key)):
            raise ConfigError(f"{said}: the run has already trained {done} {unit} "
                              f"(trainer.{key}={cfg.trainer.get(key)} allows no more); a finished "
                              "run trains on only to a larger budget (start a new run dir for "
                              "another)")
    for key, callback in (state.get("callbacks") or {}).items():
        if key.startswith("EarlyStopping") and callback.get("stopped_epoch", 0) > 0:
            raise ConfigError(f"{said}: the run stopped early (callbacks.early_stopping.patience="
                              f"{callback.get('patience')}) and would stop again at once")
    if cfg.get("scheduler") and re.search(r"trainer\.max_(epochs|steps)", OmegaConf.to_yaml(
            cfg.scheduler, resolve=False)):
        raise ConfigError(f"{said}: the scheduler's schedule spans the run's old budget (the "
                          "checkpoint keeps it) and would not stretch; start a new run dir")
    return said


def ignored_settings(finished: dict[str, Any], cfg: DictConfig) -> str:
    """The command line's settings that differ from what the finished run recorded ("" if none):
    a finished run is kept as it was, and says so rather than ignore them silently."""
    recorded = flatten(finished.get("config") or {})
    settings, swept = hydra_runtime.swept_settings(cfg)
    return ", ".join(f"{key}={show(key, settings[key])} (ran with {show(key, recorded.get(key))})"
                     for key in swept if recorded.get(key) != settings[key])


def clear_unfinished_attempt(output_dir: Path) -> None:
    """An earlier attempt that was stopped before its first checkpoint starts over: its partial
    CSV log (which the logger would append to), offline W&B folders, checkpoints and gradient
    record go."""
    for leftover in ("csv/metrics.csv", "gradflow.npz"):
        (output_dir / leftover).unlink(missing_ok=True)
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    resume.discard_offline_runs(output_dir)


def remove_if_empty_run_dir(output_dir: Path) -> None:
    """A run that never started leaves no folder that looks like a run."""
    leftovers = [p for p in output_dir.iterdir()
                 if p.name not in (".hydra", ".tmp", *LOCK_FILES) and p.suffix != ".log"]
    if not leftovers:
        shutil.rmtree(output_dir, ignore_errors=True)

