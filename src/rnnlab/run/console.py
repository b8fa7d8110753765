"""What a run prints: its own report (:func:`report_line`), and third-party lines that say
nothing about the run filtered, once.

Filtered (each seen on every quickstart job, 2026-12):

* torch's deprecation of ``isinstance(treespec, LeafSpec)``, which Lightning's own
  ``utilities/_pytree.py`` triggers at every fit and test (nine times in a 3-job sweep): nothing
  a user can change;
* Lightning's "💡 Tip: ... try installing litlogger" advertisement at every Trainer.

(wandb's "The anonymous setting has no effect" at every run is not filtered but avoided:
``tracking.wandb_logger`` leaves out the ``anonymous=None`` Lightning passes to ``wandb.init``.)

While a run resumes from a checkpoint (:func:`resuming`), also the warnings a resume gives
and that say nothing wrong: Lightning's "resuming from a checkpoint that ended before the epoch
ended and your dataloader is not resumable" (rnnlab's loader replays the epoch: RunState says so
in one line instead), Lightning's "Checkpoint directory ... exists and is not empty"
(it is the run's own) and torchmetrics' "compute ... called before update" for the train metrics
(their states come from the checkpoint; torchmetrics counts updates of this process only).

Everything else — Lightning's progress, our own one-line results, every other warning — stays.
``RNNLAB_CONSOLE=all`` keeps the filtered lines too.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rnnlab.run.rundir import RunDir

_PYTREE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
_TIP = "\N{ELECTRIC LIGHT BULB} Tip:"
# Where Lightning's rank_zero_info records are created (fabric's and pytorch's rank_zero).
_RANK_ZERO = ("lightning.fabric.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero")


# In a sweep every job would repeat these; the job's own report line says what a sweep needs.
_PER_JOB = ("GPU available:", "TPU available:", "HPU available:", "`Trainer.fit` stopped:",
            "Restoring states from the checkpoint path", "Loaded model weights from the checkpoint")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if text.startswith(_TIP):
            return False
        if text.startswith(_PER_JOB):
            from rnnlab.config.hydra_runtime import in_multirun

            return not in_multirun()
        return True


_TIPS = _DropTips()


def quiet_third_party() -> None:
    """Install the filters (idempotent); a no-op under ``RNNLAB_CONSOLE=all``."""
    if os.environ.get("RNNLAB_CONSOLE") == "all":
        return
    warnings.filterwarnings("ignore", message=_PYTREE)
    for name in _RANK_ZERO:
        logger = logging.getLogger(name)
        if _TIPS not in logger.filters:
            logger.addFilter(_TIPS)


_RESUME_WARNINGS = (r"Checkpoint directory .* exists and is not empty",
                    r"The ``compute`` method of metric .* was called before the ``update`` method",
                    # rnnlab's loader replays the epoch (rnnlab.run.resume.RunState says so)
                    r"You're resuming from a checkpoint that ended before the epoch ended")


@contextmanager
def resuming() -> Iterator[None]:
    """Within: the warnings a resume gives that say nothing wrong (see the module docstring)."""
    with warnings.catch_warnings():
        if os.environ.get("RNNLAB_CONSOLE") != "all":
            for message in _RESUME_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
        yield


def report_line(results: dict[str, Any], output_dir: Path) -> str:
    """What a run ends with on the console: its status, key metrics and where everything is."""
    from rnnlab.run.verdict import BASELINE_METRIC, VERDICT_METRIC, present_metrics, verdict

    metrics = results.get("metrics", {})
    parts = [f"{m} {metrics[m]:.4g}" for m in present_metrics(metrics)]
    if BASELINE_METRIC in metrics and VERDICT_METRIC in metrics:
        said = verdict(metrics[VERDICT_METRIC], metrics[BASELINE_METRIC])
        parts.append(f"baseline {metrics[BASELINE_METRIC]:.4g} ({said})")
    text = f"rnnlab-train: {results['status']} after {results.get('steps', 0)} steps"
    text += f" in {results.get('wall_time_s', 0):.0f} s"
    attempts = results.get("attempt_wall_times_s") or []
    if len(attempts) > 1:  # a resumed run: the total, and each attempt's part
        text += f" ({len(attempts)} attempts: {' + '.join(f'{s:.0f}' for s in attempts)} s)"
    if parts:
        text += ": " + ", ".join(parts)
    if results.get("error"):
        text += f"; {results['error']}"
    if results.get("compile_fallbacks"):
        text += "\n  ran eager, compilation failed (slower): " + "; ".join(
            f"{name} ({error})" for name, error in results["compile_fallbacks"].items())
    text += f"\n  run dir: {output_dir}"
    if RunDir(output_dir).gradflow.exists():
        text += f"\n  gradient flow: {plot_command(output_dir)}"
    return text


def plot_command(output_dir: Path) -> str:
    """A command that plots the run's gradient flow from any folder: the bare console script
    where PATH finds this install's, else its absolute path beside this interpreter (a venv's bin
    need not be on PATH), else this interpreter with -m; the run dir absolute."""
    name = "rnnlab-plot-gradflow"
    script = Path(sys.executable).parent / name
    on_path = shutil.which(name)
    if script.is_file() and on_path and Path(on_path).resolve() == script.resolve():
        words = [name]
    elif script.is_file():
        words = [os.path.abspath(script)]
    else:
        words = [os.path.abspath(sys.executable), "-m", "rnnlab.commands.plot_gradflow"]
    return shlex.join([*words, os.path.abspath(output_dir)])
