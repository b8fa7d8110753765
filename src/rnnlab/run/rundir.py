"""The run directory: its layout, and its lifecycle.

:class:`RunDir` is the one code that names a run dir's files (DESIGN.md section 2): every other
module asks it for them. Its layout::

    results.json            the record (rnnlab.run.record writes it; status one of STATUSES)
    gradflow.npz            the gradient-flow record (rnnlab.gradflow.stats.GradflowFile)
    csv/metrics.csv         the CSV logger's metrics
    checkpoints/            best.ckpt, last.ckpt, previous.ckpt (the last.ckpt before it)
    wandb/                  the W&B run (offline-run-* / run-* folders, its data and cache)
    .hydra/                 config.yaml, overrides.yaml, hydra.yaml, resumes.yaml
    train.log               the job's log
    .tmp/                   temporary files while it runs
    .rnnlab.lock            the lock while a process works in it (a sweep dir has one too), and
    .rnnlab.lock.holder     the file beside it naming the holder (rnnlab.run.dirlock)

A RunDir is a value (its path): make one per run, as many as a process needs. Standard library
only at import, so results/, the commands and the first checks of rnnlab-train can use it.

The lifecycle: a finished run is kept (or trained on to a larger budget), an unfinished one that
never checkpointed starts over, a run refused before it began leaves no folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlab.config.errors import ConfigError
from rnnlab.config.naming import flatten, show

if TYPE_CHECKING:
    from omegaconf import DictConfig

# results.json's status; a rerun keeps a result (completed, diverged), a failed run trains again
STATUSES = ("completed", "diverged", "failed")
KEPT = ("completed", "diverged")
# The lock of a run dir or sweep dir in use, and the file beside it naming its holder
# (rnnlab.run.dirlock takes and checks them); the lock stays, empty, when released.
LOCK = ".rnnlab.lock"
HOLDER = ".rnnlab.lock.holder"
LOCK_FILES = (LOCK, HOLDER)
# A W&B run's folder under wandb/: offline-run-<time>-<id> or run-<time>-<id>.
_WANDB_RUN = re.compile(r"(?:offline-)?run-(\d{8}_\d{6})-(\w+)")


@dataclass(frozen=True)
class RunDir:
    """A run directory (it need not exist yet) and the path of each of its files."""

    path: Path

    RESULTS = "results.json"
    GRADFLOW = "gradflow.npz"
    CHECKPOINTS = "checkpoints"
    # checkpoints/, relative to the run dir (as messages name them): the one a run resumes from,
    # and the last.ckpt before it, kept when a good last.ckpt is replaced: where a run whose
    # last.ckpt was damaged (truncated, emptied, overwritten) resumes from instead
    LAST = Path(CHECKPOINTS) / "last.ckpt"
    PREVIOUS = Path(CHECKPOINTS) / "previous.ckpt"

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------------------ the files
    @property
    def results(self) -> Path:
        return self.path / self.RESULTS

    @property
    def gradflow(self) -> Path:
        return self.path / self.GRADFLOW

    @property
    def csv(self) -> Path:
        return self.path / "csv"

    @property
    def metrics_csv(self) -> Path:
        return self.csv / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.ckpt``: best, last or previous."""
        return self.checkpoints / f"{name}.ckpt"

    @property
    def wandb(self) -> Path:
        return self.path / "wandb"

    @property
    def hydra(self) -> Path:
        return self.path / ".hydra"

    @property
    def hydra_config(self) -> Path:
        return self.hydra / "config.yaml"

    @property
    def overrides(self) -> Path:
        return self.hydra / "overrides.yaml"

    @property
    def hydra_yaml(self) -> Path:
        return self.hydra / "hydra.yaml"

    @property
    def resumes(self) -> Path:
        return self.hydra / "resumes.yaml"

    @property
    def train_log(self) -> Path:
        return self.path / "train.log"

    @property
    def tmp(self) -> Path:
        return self.path / ".tmp"

    @property
    def lock(self) -> Path:
        return self.path / LOCK

    @property
    def holder(self) -> Path:
        return self.path / HOLDER

    # --------------------------------------------------------------------------- what it holds
    def is_run(self) -> bool:
        """Whether rnnlab-train (Hydra) made it: it has .hydra/hydra.yaml."""
        return self.hydra_yaml.is_file()

    def read_results(self) -> dict[str, Any]:
        """results.json (OSError when there is none, ValueError when it is not JSON)."""
        return json.loads(self.results.read_text())

    def write_results(self, results: dict[str, Any]) -> Path:
        """results.json, atomically: a reader sees the old file or the new one."""
        from rnnlab.run import atomic

        return atomic.write_json_atomic(self.results, results)

    def status(self) -> str | None:
        """results.json's status; None when it has none or it cannot be read."""
        try:
            return self.read_results().get("status")
        except (OSError, ValueError, AttributeError):
            return None

    def finished(self) -> dict[str, Any] | None:
        """results.json of a run in this dir that completed or diverged (None otherwise)."""
        try:
            results = self.read_results()
        except (OSError, ValueError):
            return None
        return results if results.get("status") in KEPT else None

    def config(self) -> dict[str, Any]:
        """The config the run ran with: results.json's ``config``, else .hydra/config.yaml, else
        {} (unresolved; recorded, so untrusted: rnnlab.config.untrusted checks it)."""
        if self.results.exists():
            try:
                return self.read_results().get("config") or {}
            except json.JSONDecodeError:
                pass
        if self.hydra_config.exists():
            from omegaconf import OmegaConf

            try:
                return OmegaConf.to_container(OmegaConf.load(self.hydra_config), resolve=False)
            except Exception:  # noqa: BLE001 - unresolvable interpolations: no config
                return {}
        return {}

    def recorded_config(self) -> Path:
        """The file :meth:`config` reads (results.json, else .hydra/config.yaml): what a refusal
        of the config names."""
        return self.results if self.results.is_file() else self.hydra_config

    def read_overrides(self) -> list[str]:
        """The command-line overrides of the run (Hydra's .hydra/overrides.yaml), if saved."""
        if not self.overrides.exists():
            return []
        import yaml

        return [str(item) for item in (yaml.safe_load(self.overrides.read_text()) or [])]

    def last_checkpoint(self) -> Path | None:
        """checkpoints/last.ckpt, when there is one (the run resumes from it)."""
        path = self.checkpoint("last")
        return path if path.is_file() else None

    def wandb_run_id(self) -> str | None:
        """The W&B run of this run dir: the one its first attempt started (offline or online).

        Every later attempt -- resumed, started over, or trained on to a larger budget -- logs
        into it, so a run dir is one W&B run however often it was stopped (``wandb sync`` of its
        ``offline-run-*`` folders, in order, makes that one run)."""
        found = [(match.group(1), match.group(2)) for path in self.wandb.glob("*run-*")
                 if (match := _WANDB_RUN.fullmatch(path.name))]
        return min(found)[1] if found else None

    def discard_offline_wandb_runs(self) -> None:
        """An attempt that starts over discards what earlier attempts logged (like their CSV
        rows): their offline W&B folders go, so syncing the run dir uploads the kept attempt
        only. (An online attempt has already uploaded; the run's next attempt logs into the same
        W&B run, from step 0 again.)"""
        for path in self.wandb.glob("offline-run-*"):
            if _WANDB_RUN.fullmatch(path.name):
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------------- many run dirs
    SWEEP_CONFIG = "multirun.yaml"  # a sweep dir's own file (Hydra's): the sweep's command line

    @classmethod
    def sweep_config(cls, sweep_dir: str | os.PathLike) -> Path:
        """A sweep dir's multirun.yaml; a dir that has one is a sweep dir of rnnlab-train -m."""
        return Path(sweep_dir) / cls.SWEEP_CONFIG

    @classmethod
    def jobs_of(cls, sweep_dir: str | os.PathLike) -> list[RunDir]:
        """The job dirs of a sweep dir that have a results.json."""
        return [cls(path.parent) for path in Path(sweep_dir).glob(f"*/{cls.RESULTS}")]


def finished_jobs(sweep_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{job subdir: results.json}`` of the jobs of a sweep dir that have finished (any of
    STATUSES; a results.json being written is skipped)."""
    done = {}
    for job in RunDir.jobs_of(sweep_dir):
        try:
            record = job.read_results()
        except (OSError, json.JSONDecodeError):
            continue  # being written
        if record.get("status") in STATUSES:
            done[job.path.name] = record
    return done


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
    checkpoint = RunDir(output_dir).last_checkpoint()
    if checkpoint is None:
        raise ConfigError(f"{said}: {output_dir / RunDir.LAST} is missing, so the run "
                          "cannot train on from where it ended")
    from omegaconf import OmegaConf

    from rnnlab.config.untrusted import load_checkpoint

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


# What resume=<sweep dir> may change: the budget of every job (each trains on, or says why not);
# hydra.* settings (the launcher, its workers) change how the sweep runs, not what a job computes.
SWEEP_RESUME_SETTINGS = tuple(f"trainer.{key}" for key in _BUDGET)


def sweep_resume_error(sweep_dir: str | os.PathLike, extra: list[str]) -> str | None:
    """The one-line refusal of settings given with ``resume=<sweep dir>`` that it does not take
    (None when it takes them all): a sweep's jobs share its command line (multirun.yaml), and a
    setting changed half-way would leave its finished jobs kept with the old value, its
    checkpointed ones refused (another model) or resumed with the new one, and the jobs not yet
    started run with it -- one sweep, two configurations, recorded as one. A larger trainer
    budget is the exception: every job trains on to it (or says why it cannot)."""
    other = [o for o in extra if not o.lstrip("+~").startswith("hydra.")
             and o.lstrip("+~").split("=", 1)[0] not in SWEEP_RESUME_SETTINGS]
    if not other:
        return None
    return (f"resume={sweep_dir}: a sweep resumes with its own settings (multirun.yaml); "
            f"{' '.join(other)} would change them half-way (only "
            f"{'/'.join(SWEEP_RESUME_SETTINGS)} and hydra.* settings can be given; start a new "
            "sweep dir for other settings)")


def record_new_job(output_dir: str | os.PathLike, task_cfg: DictConfig) -> None:
    """The .hydra/ of a job that a resumed sweep starts for the first time, written as Hydra
    writes it. (resume= tells Hydra to write no .hydra/ -- hydra.output_subdir=null, so that it
    does not rewrite the record of the jobs that ran -- and a job without one writes its own
    here; the jobs that have one record what an accepted resume changed: rnnlab.run.train.)
    A no-op outside Hydra, where Hydra writes .hydra/ itself, and where the job has one."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from rnnlab.config.hydra_runtime import RESUME_MARK
    from rnnlab.run.atomic import atomic_open

    run_dir = RunDir(output_dir)
    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:  # not under Hydra (the Python API)
        return
    if hydra_cfg.output_subdir is not None or run_dir.hydra_yaml.is_file():
        return
    node = OmegaConf.to_container(hydra_cfg, resolve=False)
    node["output_subdir"] = run_dir.hydra.name
    node["overrides"]["hydra"] = [o for o in node["overrides"]["hydra"] if o != RESUME_MARK]
    run_dir.hydra.mkdir(parents=True, exist_ok=True)
    for path, text in (
            (run_dir.hydra_config, OmegaConf.to_yaml(task_cfg)),
            (run_dir.hydra_yaml, OmegaConf.to_yaml(OmegaConf.create({"hydra": node}))),
            (run_dir.overrides, OmegaConf.to_yaml(OmegaConf.create(
                [str(o) for o in hydra_cfg.overrides.task])))):
        with atomic_open(path) as handle:
            handle.write(text)


def ignored_settings(finished: dict[str, Any], cfg: DictConfig) -> str:
    """The command line's settings that differ from what the finished run recorded ("" if none):
    a finished run is kept as it was, and says so rather than ignore them silently."""
    from rnnlab.config import hydra_runtime

    recorded = flatten(finished.get("config") or {})
    settings, swept = hydra_runtime.swept_settings(cfg)
    return ", ".join(f"{key}={show(key, settings[key])} (ran with {show(key, recorded.get(key))})"
                     for key in swept if recorded.get(key) != settings[key])


def clear_unfinished_attempt(output_dir: Path) -> bool:
    """An earlier attempt that was stopped before its first checkpoint starts over: its partial
    CSV log (which the logger would append to), offline W&B folders, checkpoints and gradient
    record go. Whether there was such an attempt (it left any of them, or a W&B run: the caller
    says it starts over)."""
    run_dir = RunDir(output_dir)
    earlier = any(p.exists() for p in (run_dir.metrics_csv, run_dir.gradflow,
                                        run_dir.checkpoints)) or run_dir.wandb_run_id() is not None
    for leftover in (run_dir.metrics_csv, run_dir.gradflow):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(run_dir.checkpoints, ignore_errors=True)
    run_dir.discard_offline_wandb_runs()
    return earlier


def remove_if_empty_run_dir(output_dir: Path) -> None:
    """A run that never started leaves no folder that looks like a run."""
    run_dir = RunDir(output_dir)
    kept = (run_dir.hydra.name, run_dir.tmp.name, *LOCK_FILES)
    leftovers = [p for p in output_dir.iterdir() if p.name not in kept and p.suffix != ".log"]
    if not leftovers:
        shutil.rmtree(output_dir, ignore_errors=True)

