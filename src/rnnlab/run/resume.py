"""Continuing an interrupted run or sweep where it stopped (docs in README, "Resume").

A run keeps ``<run dir>/checkpoints/last.ckpt`` (the ``last_checkpoint`` callback at every
validation, :class:`MidEpochCheckpoint` every ``minutes`` in between and on a preemption warning).
Whenever a run starts in a run dir that holds one -- ``rnnlab-train resume=<run dir>``, a sweep
rerun on its sweep dir, a requeued SLURM job -- it continues from it, in the same run dir:

- Lightning restores the weights, optimizer, scheduler, loop counters and callback states;
- :class:`RunState` (below) adds what Lightning leaves out, so the continuation is the same
  computation as the uninterrupted run: the global RNG states, the training loader's shuffle
  state at the start of the epoch plus the batches of it already trained on, and how many rows
  the CSV log held (rows written after the checkpoint are dropped, as they are trained again);
- the W&B run continues under the same id (offline: a second ``offline-run-*`` folder with that
  id, which ``wandb sync`` uploads into the one run, in order); an attempt stopped before its
  first checkpoint starts over, its offline W&B folder and CSV rows discarded, under the same id.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from rnnlab.config.errors import ResumeError
from rnnlab.config.untrusted import CorruptCheckpoint, allow_checkpoint_types, load_checkpoint
from rnnlab.run.atomic import atomic_open, atomic_path
from rnnlab.run.rundir import RunDir

# Lightning restores fits and tests with torch.load(weights_only=True): it may read what rnnlab's
# checkpoints hold beyond tensors (registered here, where spawned DDP workers import it too).
allow_checkpoint_types()


def checkpoint_step(path: str | os.PathLike) -> int:
    return int(load_checkpoint(path).get("global_step", 0))


def read_checkpoints(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at ``path`` (last.ckpt), after reading every checkpoint beside it
    (best.ckpt, which a resumed run's test loads): weights only (rnnlab.config.untrusted), so one
    that holds anything else is refused (UntrustedContent) and a damaged one is CorruptCheckpoint,
    before a run uses them. A damaged last.ckpt is replaced by previous.ckpt when that one is
    good (one line says so); otherwise CorruptCheckpoint says how to start the run over."""
    path = Path(path)
    try:
        checkpoint = load_checkpoint(path)
    except CorruptCheckpoint as error:
        checkpoint = _previous_instead(path, error)
    for other in sorted(path.parent.glob("*.ckpt")):
        # previous.ckpt: read when it is used
        if other not in (path, path.with_name(RunDir.PREVIOUS.name)):
            load_checkpoint(other)
    _known_good[path.resolve()] = _stamp(path)
    return checkpoint


# last.ckpt files this process wrote or read whole, by (inode, size, mtime): only such a file is
# kept as previous.ckpt when it is replaced (one damaged since is not)
_known_good: dict[Path, tuple[int, int, int] | None] = {}


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` (atomically) with the content of ``source``: a hard link, else a copy."""
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _previous_instead(last: Path, error: CorruptCheckpoint) -> dict[str, Any]:
    """previous.ckpt's state, put in place of the damaged last.ckpt; CorruptCheckpoint (one
    line, naming how to start over) when there is no good previous.ckpt."""
    from rnnlab.run.tracking import say

    previous = last.with_name(RunDir.PREVIOUS.name)
    state = None
    if previous.is_file():
        try:
            state = load_checkpoint(previous)  # UntrustedContent: refused, as for last.ckpt
        except CorruptCheckpoint:
            state = None
    run_dir = last.parent.parent
    if state is None:
        raise CorruptCheckpoint(
            f"{error} and {'previous.ckpt is too' if previous.is_file() else 'no previous.ckpt'}"
            f" was kept: rnnlab-train resume={run_dir} restart=true starts the run over "
            "(from step 0)")
    say(f"rnnlab-train: {error}: resuming from {RunDir.PREVIOUS} (step "
        f"{int(state.get('global_step', 0))}), the checkpoint before it")
    _link_or_copy(previous, last)
    return state


def check_checkpoint_fits(path: str | os.PathLike, module: torch.nn.Module,
                          checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint (``checkpoint``, read from ``path`` if not given), or ResumeError naming the
    first weight whose shape differs from the model's (a checkpoint of another model: another
    cell, size or dataset). Loaded weights only (rnnlab.config.untrusted): one that holds anything
    else is refused, one that is damaged is CorruptCheckpoint."""
    if checkpoint is None:
        checkpoint = load_checkpoint(path)
    saved = checkpoint.get("state_dict", {})
    wanted = module.state_dict()
    for name, tensor in wanted.items():
        if not isinstance(tensor, torch.Tensor):  # _extra_state
            continue
        if name not in saved:
            raise ResumeError(f"{path} is a checkpoint of another model: it has no {name}")
        if tuple(saved[name].shape) != tuple(tensor.shape):
            raise ResumeError(f"{path} is a checkpoint of another model: {name} is "
                              f"{tuple(saved[name].shape)} there, {tuple(tensor.shape)} here")
    extra = sorted(set(saved) - set(wanted))
    if extra:
        raise ResumeError(f"{path} is a checkpoint of another model: it has {extra[0]}, this "
                          "model does not")
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: each checkpoint goes to a temp file renamed
    into place, so a kill while saving leaves the previous last.ckpt whole (Lightning writes the
    file in place)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path).resolve()
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            # the last.ckpt being replaced stays as previous.ckpt, if it is one known whole
            if path.name == RunDir.LAST.name and _known_good.get(path) is not None \
                    and _known_good[path] == _stamp(path):
                _link_or_copy(path, path.with_name(RunDir.PREVIOUS.name))
        if path.name == RunDir.LAST.name:
            _known_good[path] = _stamp(path)


# --------------------------------------------------------------------------------- CSV log
def adopt_csv_header(writer) -> None:
    """Let Lightning's CSV writer know the columns already in its metrics.csv (written by an
    earlier attempt of the run, or by spawned DDP workers): it rewrites the file with only the
    columns it has seen itself, which fails on rows that have others."""
    path = Path(writer.metrics_file_path)
    if path.is_file():
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        writer.metrics_keys = sorted(set(writer.metrics_keys) | set(header))


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # Lightning deletes an existing metrics.csv here; this one continues it.
        adopt_csv_header(self)


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that an existing metrics.csv is continued, not deleted: a
    resumed run appends to it (RunState first cuts the rows logged after the checkpoint; a run
    that starts over removes it)."""

    @property
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def csv_rows(path: Path) -> int:
    """Data rows of a CSV file (its header excluded); 0 when absent."""
    if not path.is_file():
        return 0
    with path.open(newline="") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def truncate_csv(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` rows (written atomically)."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        kept = list(csv.reader(handle))[: rows + 1]
    with atomic_open(path, newline="") as handle:
        csv.writer(handle).writerows(kept)


def _csv_files(trainer) -> list[tuple[Any, Path]]:
    return [(logger, Path(logger.experiment.metrics_file_path)) for logger in trainer.loggers
            if isinstance(logger, CSVLogger)]


# ------------------------------------------------------------------------------ the state
class RunState(Callback):
    """What a resumed run needs beyond Lightning's own checkpoint to continue bit for bit.

    Saved with every checkpoint: the RNG states of torch, numpy and Python; the training loader's
    generator state at the start of the current epoch and at the checkpoint; the CSV log's row
    count (the log is flushed first, so nothing logged before the checkpoint is lost to a kill);
    the metrics logged so far.
    """

    def __init__(self):
        # The metrics the checkpointed process had logged (e.g. the last val/loss), which a run
        # resumed after its last validation does not log again; results.json starts from them.
        self.restored_metrics: dict[str, float] = {}
        # The wall time of each earlier attempt, counted to its last checkpoint (what the result
        # is built on; what it did after it is done again): results.json's wall_time_s is their
        # sum with this attempt's (rnnlab.run.record), attempt_wall_times_s lists them.
        self.started = time.perf_counter()  # made when the run is built: this attempt's start
        self.earlier_attempts: list[float] = []
        self._replayed: tuple[int, int] | None = None  # (epoch, batches) replayed mid-epoch

    @property
    def state_key(self) -> str:
        return "rnnlab.RunState"

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        from lightning.fabric.utilities.seed import _collect_rng_states

        rows = {}
        for logger, path in _csv_files(trainer):
            logger.save()
            rows[path.name] = csv_rows(path)
        combined = trainer.fit_loop._combined_loader
        loader = combined.flattened[0] if combined is not None and combined.flattened else None
        generator = getattr(loader, "generator", None)
        checkpoint[self.state_key] = {
            "rng": _collect_rng_states(),
            # the shuffle generator at the start of this epoch (to replay its order mid-epoch)
            # and now (the next epoch draws from here)
            "loader": {"epoch_start": getattr(loader, "epoch_start", None),
                       "now": generator.get_state() if generator is not None else None},
            "csv_rows": rows,
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "attempts_s": [*self.earlier_attempts,
                           round(time.perf_counter() - self.started, 3)],
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        from lightning.fabric.utilities.seed import _set_rng_states

        state = checkpoint.get(self.state_key)
        # Only a resumed fit continues: testing with the best checkpoint leaves the run as it is.
        # (None: a checkpoint written without this callback, Lightning's state only.)
        if state is None or trainer.state.fn != "fit":
            return
        _set_rng_states(state["rng"])
        self.restored_metrics = dict(state.get("metrics", {}))
        self.earlier_attempts = [float(s) for s in state.get("attempts_s", [])]
        for _logger, path in _csv_files(trainer):
            truncate_csv(path, state["csv_rows"].get(path.name, 0))
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "resume_state"):
            from rnnlab.data.base import LoaderResume

            progress = (checkpoint.get("loops", {}).get("fit_loop", {})
                        .get("epoch_loop.batch_progress", {}).get("current", {}))
            # A checkpoint taken at a batch end counts that batch as processed, not completed.
            datamodule.resume_state = LoaderResume(
                epoch=int(checkpoint.get("epoch", 0)),
                batches_done=int(progress.get("processed", 0)),
                epoch_start=state["loader"]["epoch_start"], now=state["loader"]["now"])
            self._replayed = (int(checkpoint.get("epoch", 0)), int(progress.get("processed", 0)))

    def on_train_start(self, trainer, pl_module) -> None:
        """A resume inside an epoch says how the loader continues it: Lightning warns there that
        the loader "is not resumable" (it knows only loaders with a state_dict), which
        rnnlab.run.console filters while a run resumes -- the warning does not apply here."""
        replayed, self._replayed = self._replayed, None
        batches = trainer.num_training_batches
        if replayed is None or not isinstance(batches, int) or trainer.global_rank != 0:
            return
        per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        if trainer.global_step % per_epoch == 0:  # at an epoch's end: nothing to replay
            return
        from rnnlab.run.tracking import say

        epoch, done = replayed
        say(f"rnnlab-train: resuming inside epoch {epoch} after {done} of its {batches} "
            "batches: the training loader replays the epoch's shuffled order and skips those, so "
            "the run continues exactly (Lightning's warning about a non-resumable dataloader "
            "does not apply)")


# ------------------------------------------------------------------------ SIGTERM, SIGINT
class Stopped(BaseException):
    """The run was stopped by SIGTERM or SIGINT: its resumable state is on disk (last.ckpt, where
    it got to one) and no results.json is written; rnnlab-train exits 128 + the signal's number
    (143, 130) after one status line. A BaseException, so that nothing records it as a failure."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


STOP_SIGNALS = ("SIGTERM", "SIGINT")


def _raise_stopped(signum, frame) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals():
    """While a run works: SIGTERM and SIGINT raise :class:`Stopped` (outside training, at once;
    in training :class:`MidEpochCheckpoint` defers them to the next batch start and saves
    last.ckpt there first). Lightning's own SIGTERM handling (which ends ``fit`` with a
    SystemExit that exits 0) never sees them. Only in the main thread; the handlers before are
    put back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {}
    for name in STOP_SIGNALS:
        number = getattr(signal, name)
        before[number] = signal.signal(number, _raise_stopped)
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


# ----------------------------------------------------------------- checkpoints inside epochs
class MidEpochCheckpoint(Callback):
    """last.ckpt inside long epochs: every ``minutes`` of training, and at once when a scheduler
    warns that it will stop the job.

    Saved at the *start* of a batch, when everything of the previous batch -- optimizer step,
    logged rows, gradient-flow record -- is done, so the resumed run redoes exactly the batches
    after it. (Lightning's ModelCheckpoint saves time-based checkpoints at a batch end, before
    that batch's metrics are logged: a run resumed from there never logs them.)

    The warning: a cluster signals a job before stopping it (submitit and its SLURM launcher:
    SIGUSR2; SLURM's own ``--signal``: often SIGUSR1) and the handler -- submitit's -- requeues the
    job at once. While training, that handler is deferred to the next batch start and called
    after last.ckpt is written there; the requeued job then resumes from that very batch. Only
    handlers someone installed are wrapped; a plain run has none.
    """

    SIGNALS = ("SIGUSR1", "SIGUSR2")

    def __init__(self, checkpoint: str, minutes: float | None = 30):
        if minutes is not None and not minutes > 0:
            raise ValueError(f"callbacks.mid_epoch_checkpoint.minutes must be > 0 or null, got "
                             f"{minutes}")
        self.checkpoint = checkpoint
        self.seconds = None if minutes is None else 60.0 * minutes
        self._wrapped: dict[int, Any] = {}
        self._pending: int | None = None  # a deferred warning's signal number
        self._stop: int | None = None  # a deferred SIGTERM / SIGINT
        self._stop_handlers: dict[int, Any] = {}
        self._last = 0.0
        self._saving = False

    def on_train_start(self, trainer, pl_module) -> None:
        self._last = time.monotonic()
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            number = getattr(signal, name, None)
            handler = signal.getsignal(number) if number is not None else None
            if callable(handler):
                self._wrapped[number] = handler
                signal.signal(number, self._defer)
        for name in STOP_SIGNALS:  # stopped at the next batch start, after saving last.ckpt
            number = getattr(signal, name)
            self._stop_handlers[number] = signal.signal(number, self._defer_stop)

    def _defer(self, signum, frame) -> None:
        self._pending = signum

    def _defer_stop(self, signum, frame) -> None:
        if self._stop is not None:  # a second one: at once
            raise Stopped(signum)
        self._stop = signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        due = self._pending is not None or self._stop is not None or (
            self.seconds is not None and time.monotonic() - self._last >= self.seconds)
        if trainer.world_size > 1:  # every rank saves, or none (saving is collective)
            due = trainer.strategy.broadcast(due, src=0)
        if not due:
            return
        self._saving = True
        try:
            trainer.save_checkpoint(self.checkpoint)
        finally:
            self._saving = False
        self._last = time.monotonic()
        if self._stop is not None:
            raise Stopped(self._stop)
        if self._pending is not None:
            from rnnlab.run.tracking import say

            say(f"rnnlab-train: signal {self._pending}: saved {self.checkpoint} at step "
                f"{trainer.global_step}; handing over to the scheduler")
            self._hand_over()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if not self._saving:
            return
        # Lightning restores a checkpoint from inside a batch assuming it was taken at the batch
        # end, before the step counter of the loggers moved on, and adds 1; here it has moved on.
        epoch_loop = checkpoint["loops"]["fit_loop"]["epoch_loop.state_dict"]
        epoch_loop["_batches_that_stepped"] -= 1

    def _hand_over(self) -> None:
        """Put the scheduler's handlers back and let the pending warning's one act."""
        pending, handler = self._pending, self._wrapped.get(self._pending)
        self._restore()
        if handler is not None:
            handler(pending, None)

    def _restore(self) -> None:
        for number, handler in self._wrapped.items():
            signal.signal(number, handler)
        self._wrapped, self._pending = {}, None

    def _restore_stop(self) -> None:
        for number, handler in self._stop_handlers.items():
            signal.signal(number, handler)
        self._stop_handlers = {}

    def on_train_end(self, trainer, pl_module) -> None:
        # A warning that came after the last batch is the scheduler's to handle now.
        self._hand_over()
        self._restore_stop()
        if self._stop is not None:  # after the last batch: last.ckpt is the final validation's
            stop, self._stop = self._stop, None
            raise Stopped(stop)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()
        self._restore_stop()
        self._stop = None
