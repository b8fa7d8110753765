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


def width() -> int:
    """The terminal's columns (``COLUMNS`` first; 80 when not a terminal, as Rich's)."""
    return shutil.get_terminal_size((80, 24)).columns


def shown_path(path: Path | str) -> str:
    """A path as the console prints it: relative to the cwd when it lies under it (shorter, and
    a user's shell is there), else absolute."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except (OSError, ValueError):  # no cwd any more; another drive
        return absolute
    return absolute if relative.startswith("..") else relative


def wrap(pieces: list[str], columns: int | None = None, indent: str = "  ") -> str:
    """``pieces`` joined by spaces into lines of at most ``columns`` (the terminal's), the
    lines after the first indented; a piece is never split (a piece longer than a line, say a
    path, gets a line of its own)."""
    columns = columns or width()
    lines: list[str] = []
    line = ""
    for piece in pieces:
        if line and len(line) + 1 + len(piece) > columns:
            lines.append(line)
            line = indent + piece
        else:
            line = f"{line} {piece}" if line else piece
    if line:
        lines.append(line)
    return "\n".join(lines)


def command_lines(command: str, label: str, columns: int | None = None, indent: str = "  ",
                  more: str = "    ") -> str:
    """``label`` and a shell ``command`` in lines of at most ``columns``: where a word does not
    fit, the line ends with a backslash and the command goes on on the next (indented by
    ``more``), so the lines still paste into a shell as one command; the label goes on a line
    of its own when the command's first word does not fit after it."""
    columns = columns or width()
    words = [shlex.quote(word) for word in shlex.split(command)]
    lines = [f"{indent}{label}{words[0]}"]
    if len(lines[0]) + 2 > columns and label:  # the label on a line of its own
        lines = [f"{indent}{label.rstrip()}", more + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) + 2 > columns:  # room for " \\" after it
            lines[-1] += " \\"
            lines.append(more + word)
        else:
            lines[-1] += " " + word
    return "\n".join(lines)


def report_line(results: dict[str, Any], output_dir: Path, columns: int | None = None) -> str:
    """What a run ends with on the console: its status, key metrics and where everything is,
    in lines that fit the terminal (``columns``: its width). A job of a multirun ends with one
    line where it fits, two at 100 columns: its run dir is part of it, and its gradient-flow
    command is printed once for the sweep at its end (rnnlab.run.sweep_progress)."""
    from rnnlab.config.hydra_runtime import in_multirun
    from rnnlab.run.verdict import BASELINE_METRIC, VERDICT_METRIC, present_metrics, verdict

    columns = columns or width()
    metrics = results.get("metrics", {})
    parts = [f"{m} {metrics[m]:.4g}" for m in present_metrics(metrics)]
    if BASELINE_METRIC in metrics and VERDICT_METRIC in metrics:
        said = verdict(metrics[VERDICT_METRIC], metrics[BASELINE_METRIC])
        parts.append(f"baseline {metrics[BASELINE_METRIC]:.4g} ({said})")
    head = f"rnnlab-train: {results['status']} after {results.get('steps', 0)} steps"
    head += f" in {results.get('wall_time_s', 0):.0f} s"
    attempts = results.get("attempt_wall_times_s") or []
    if len(attempts) > 1:  # a resumed run: the total, and each attempt's part
        head += f" ({len(attempts)} attempts: {' + '.join(f'{s:.0f}' for s in attempts)} s)"
    pieces = head.split(" ")
    if parts:
        pieces[-1] += ":"
        pieces += [f"{part}," for part in parts[:-1]] + [parts[-1]]
    if results.get("error"):
        pieces[-1] += ";"
        pieces += str(results["error"]).split(" ")
    multirun = in_multirun()
    if multirun:  # the run dir in the report line itself
        pieces[-1] += ";"
        pieces.append(f"run dir {shown_path(output_dir)}")
    text = wrap(pieces, columns)
    if results.get("compile_fallbacks"):
        text += "\n" + wrap(["  ran eager, compilation failed (slower):",
                             *"; ".join(f"{name} ({error})" for name, error
                                        in results["compile_fallbacks"].items()).split(" ")],
                            columns, indent="    ")
    if not multirun:
        text += f"\n  run dir: {shown_path(output_dir)}"
        if RunDir(output_dir).gradflow.exists():
            text += "\n" + command_lines(plot_command(output_dir), "gradient flow: ", columns)
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
