"""results.json: the one place it is written, for every way a run ends.

:class:`RunRecord` follows one attempt of a run: :meth:`refused` (a sweep job whose settings
were refused before it trained), :meth:`ended` (completed, diverged or failed, after the trainer
was built). Both write the same fields (README "Where things go"); only rank 0 of a launch
writes. The W&B run is finished with the same status, error and steps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.cells import backends, compile_cache
from rnnlab.config.errors import one_line
from rnnlab.run import distributed, resume, tracking
from rnnlab.run.rundir import RunDir
from rnnlab.run.solved import SolvedStop


def divergence_of(error: BaseException):
    """The :class:`~rnnlab.model.task.Diverged` that ``error`` is -- raised in this process, or in a
    spawned DDP worker, whose exception reaches here only as the text of its traceback -- or
    None."""
    from rnnlab.model.task import Diverged

    if isinstance(error, Diverged):
        return error
    if type(error).__name__ == "ProcessRaisedException":
        return Diverged.from_traceback(str(error))
    return None


def floats(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


class RunRecord:
    """One attempt of a run, from its start to its results.json."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.paths.output_dir)
        self.started = time.perf_counter()
        # WandbLogger(offline=True) sets WANDB_MODE for the whole process: put back what the
        # user had when the run ends, so the next job of a multirun decides afresh.
        self.wandb_mode = os.environ.get("WANDB_MODE")
        self.commit: str | None = None
        self.eager_mark: dict[str, int] = {}
        self.backend_mark = backends.mark()  # the layer calls of this run (a multirun's job)
        # more top-level fields of results.json (a pack member's "pack": which loop it shared)
        self.extra: dict[str, Any] = {}

    def training_starts(self) -> None:
        self.commit = tracking.git_commit()
        self.eager_mark = compile_cache.eager_calls()

    def _write(self, results: dict[str, Any]) -> dict[str, Any]:
        if distributed.rank() == 0:  # the other ranks of a launch share the dir
            RunDir(self.output_dir).write_results(results)
        return results

    def _common(self, config: dict[str, Any]) -> dict[str, Any]:
        results = {"wall_time_s": round(time.perf_counter() - self.started, 3),
                   "seed": self.cfg.get("seed"), "config": config,
                   "versions": tracking.versions(), "git_commit": self.commit,
                   # step functions whose compilation failed and that ran eager in this run
                   # (slower: a benchmark or a reproduction must know); {} when none did
                   "compile_fallbacks": compile_cache.eager_fallbacks(self.eager_mark),
                   # where the scratch cells' loops ran: {backend: layer calls, "fallbacks":
                   # {backend: why it could not run (a failed build, a failed capture)}}
                   "backends": backends.used(self.backend_mark), **self.extra}
        if self.cfg.get("reference"):
            results["reference"] = OmegaConf.to_container(self.cfg.reference, resolve=True)
        return results

    def refused(self, error: Exception) -> dict[str, Any]:
        """A sweep job whose settings were refused before it trained: failed, with the reason."""
        try:
            config = OmegaConf.to_container(self.cfg, resolve=True)
        except Exception:  # noqa: BLE001 - an interpolation that cannot resolve: keep it raw
            config = OmegaConf.to_container(self.cfg, resolve=False)
        self.commit = tracking.git_commit()
        return self._write({"status": "failed", "error": f"ConfigError: {error}", "metrics": {},
                            "num_params": None, "hidden_size": None, "steps": 0,
                            **self._common(config)})

    def ended(self, task, trainer, final_metrics: dict[str, float],
              error: BaseException | None = None) -> dict[str, Any]:
        """A run that trained: completed (no ``error``), diverged or failed."""
        diverged = divergence_of(error) if error is not None else None
        status = "completed" if error is None else "diverged" if diverged else "failed"
        results: dict[str, Any] = {"status": status}
        if diverged is not None:
            results["error"] = f"Diverged: {diverged}"
        elif error is not None:
            results["error"] = f"{type(error).__name__}: {one_line(error)}"
        # What the trainer holds covers a run that stopped early; what was collected wins; a
        # resumed run starts from what the checkpointed process had logged.
        restored = next((c.restored_metrics for c in trainer.callbacks
                         if isinstance(c, resume.RunState)), {})
        # (a diverged run: what it had logged when it stopped, a spawned DDP worker's included)
        metrics = {**restored, **(diverged.metrics if diverged is not None else {}),
                   **floats(trainer.callback_metrics), **final_metrics}
        if status != "completed" and "spawn" in str(self.cfg.trainer.get("strategy")):
            metrics = {**distributed.last_logged(self.output_dir), **metrics}
        metrics.update({f"{k}_best": v for k, v in task.best.items()})
        # a spawned worker's divergence: its step counter stayed there; the exception names it
        steps = int(task.num_train_steps) or (diverged.step if diverged is not None else 0)
        results.update({"metrics": dict(sorted(metrics.items())),
                        "num_params": task.model.num_params,
                        "hidden_size": task.model.hidden_size, "steps": steps,
                        **self._common(OmegaConf.to_container(self.cfg, resolve=True))})
        results["seed"] = int(self.cfg.seed)
        earlier = next((c.earlier_attempts for c in trainer.callbacks
                        if isinstance(c, resume.RunState)), [])
        if earlier:  # a resumed run: its total time, and each attempt's (README "Resume")
            results["attempt_wall_times_s"] = [*earlier, results["wall_time_s"]]
            results["wall_time_s"] = round(sum(results["attempt_wall_times_s"]), 3)
        solved = next((c.record() for c in trainer.callbacks if isinstance(c, SolvedStop)), None)
        if solved is not None:
            results["solved"] = solved
        self._write(results)
        # The W&B run says how it ended too (a DDP worker's divergence included).
        tracking.finish_wandb(exit_code=0 if status == "completed" else 1, summary={
            "status": status, "error": results.get("error", ""), "steps": steps},
            loggers=trainer.loggers)
        # (WANDB_SERVICE and the like stay: spawned DDP workers attach to the run through them.)
        if self.wandb_mode is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = self.wandb_mode
        return results
