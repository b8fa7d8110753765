"""A pack: several runs trained side by side in one process and one Lightning loop, each still
its own run (README "Packs").

The pack runs *inside* Lightning's loop. One Trainer drives a :class:`PackTask` whose members
are the solo runs' own :class:`~rnnlab.model.task.SequenceTask`s; each member keeps its own
callbacks (best and last checkpoints, early stopping, solved stop, gradient flow, run state),
loggers, optimizer, data module and RNG stream. Every hook the pack's trainer calls is handed to
each member's callbacks and task together with a :class:`MemberTrainer` -- a view of the trainer
that shows that member's metrics, loggers, optimizer, checkpoints, step and stop flag -- so the
code a member runs is its solo run's code, and its numbers are its solo run's, bit for bit (on the
per-step eager path and the native loops; compiled per-step graphs can differ in the last bit
with the shapes the process compiled before, solo runs of a sweep included). Lightning's loop, its
hooks and its logger connector are paid once per pack step instead of once per run.

What each member keeps apart, and how:
- its metrics: everything a member logs goes to the pack under ``pack<i>/``; the view and
  :class:`PackLogger` take the prefix off again, for its callbacks and its own loggers;
- its optimizer step and clipping: :class:`PackOptimizer` steps each member's own optimizer and
  the pack clips each member's gradients with its own norm and threshold (never a norm over all);
- its RNG: the torch stream is swapped in around its training and validation steps (dropout,
  zoneout draw there), every stream around its checkpoints (its run state saves them);
- its end: a member that diverges or fails is recorded so and frozen while the others go on; one
  that asks to stop (early stopping, solved) ends at the epoch end where its solo run would, with
  its end-of-fit hooks run there and its test metrics logged at its own last step.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
from collections.abc import MutableMapping
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
from lightning.pytorch.loggers import Logger
from lightning.pytorch.trainer.connectors.callback_connector import _CallbackConnector
from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector


def member_prefix(index: int) -> str:
    return f"pack{index}/"


class PrefixedMetrics(MutableMapping):
    """One member's part of a metrics dict of the pack's trainer (``callback_metrics``), keys
    without the member's prefix; writes go through (the gradient-flow monitor adds scalars)."""

    def __init__(self, source, prefix: str):
        self._source, self._prefix = source, prefix

    def __getitem__(self, key):
        return self._source()[self._prefix + key]

    def __setitem__(self, key, value):
        self._source()[self._prefix + key] = value

    def __delitem__(self, key):
        del self._source()[self._prefix + key]

    def __iter__(self):
        n = len(self._prefix)
        return iter([k[n:] for k in list(self._source()) if k.startswith(self._prefix)])

    def __len__(self):
        return sum(1 for _ in self)

    def items(self):
        # one read of the trainer's dict (Lightning rebuilds callback_metrics at every read),
        # not one per key as Mapping.items would
        n = len(self._prefix)
        return [(k[n:], v) for k, v in list(self._source().items()) if k.startswith(self._prefix)]

    def values(self):
        return [v for _, v in self.items()]

    def copy(self) -> dict:
        return dict(self.items())

    def __deepcopy__(self, memo) -> dict:
        # a snapshot, as deepcopy(trainer.callback_metrics) is: ModelCheckpoint adds "epoch" and
        # "step" to its copy, which must not reach the pack's dict
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}


class _LoopView:
    """The fit loop as one member sees it: the pack's progress, the member's training loader
    (rnnlab.run.resume.RunState saves its shuffle state)."""

    def __init__(self, loop, member: Member):
        self._loop, self._member = loop, member

    def __getattr__(self, name):
        return getattr(self._loop, name)

    @property
    def _combined_loader(self):
        loader = self._member.train_loader
        return None if loader is None else type("One", (), {"flattened": [loader]})()


class _StrategyView:
    """The strategy as one member's checkpoint sees it: its own module and state dict."""

    def __init__(self, strategy, member: Member):
        self._strategy, self._member = strategy, member

    def __getattr__(self, name):
        return getattr(self._strategy, name)

    @property
    def lightning_module(self):
        return self._member.task

    def lightning_module_state_dict(self):
        return self._member.task.state_dict()


class MemberTrainer:
    """The pack's Trainer as one member's callbacks and task see it. What is the member's own is
    answered here; everything else is the pack trainer's (its loop, strategy, precision, the
    logger connector's cadence)."""

    def __init__(self, trainer, member: Member):
        object.__setattr__(self, "_trainer", trainer)
        object.__setattr__(self, "_member", member)
        # the member's checkpoints are made by Lightning's own code, reading this view
        object.__setattr__(self, "_checkpoint_connector", _CheckpointConnector(self))

    def __getattr__(self, name):
        return getattr(self._trainer, name)

    def __setattr__(self, name, value):
        if name == "should_stop":  # the member asks to stop; the pack decides when it ends
            if value:
                self._member.stop_requested = True
            return
        setattr(self._trainer, name, value)

    @property
    def should_stop(self) -> bool:
        return self._member.stop_requested or self._trainer.should_stop

    @property
    def callbacks(self) -> list:
        return self._member.callbacks

    @property
    def checkpoint_callbacks(self) -> list:
        return [c for c in self._member.callbacks if isinstance(c, Checkpoint)]

    @property
    def checkpoint_callback(self):
        return next(iter(self.checkpoint_callbacks), None)

    @property
    def early_stopping_callbacks(self) -> list:
        return [c for c in self._member.callbacks if isinstance(c, EarlyStopping)]

    @property
    def early_stopping_callback(self):
        return next(iter(self.early_stopping_callbacks), None)

    @property
    def loggers(self) -> list:
        return self._member.loggers

    @property
    def logger(self):
        return next(iter(self._member.loggers), None)

    @property
    def callback_metrics(self):
        if self._member.error is not None:  # what it had when it failed
            return dict(self._member.fit_metrics)
        return PrefixedMetrics(lambda: self._trainer.callback_metrics, self._member.prefix)

    @property
    def logged_metrics(self):
        return PrefixedMetrics(lambda: self._trainer.logged_metrics, self._member.prefix)

    @property
    def progress_bar_metrics(self):
        return PrefixedMetrics(lambda: self._trainer.progress_bar_metrics, self._member.prefix)

    @property
    def lightning_module(self):
        return self._member.task

    @property
    def model(self):
        return self._member.task

    @property
    def datamodule(self):
        return self._member.datamodule

    @property
    def optimizers(self) -> list:
        return [self._member.optimizer]

    @property
    def lr_scheduler_configs(self) -> list:
        return []

    @property
    def strategy(self):
        return _StrategyView(self._trainer.strategy, self._member)

    @property
    def fit_loop(self):
        return _LoopView(self._trainer.fit_loop, self._member)

    @property
    def train_dataloader(self):
        return self._member.train_loader

    @property
    def gradient_clip_val(self):
        return self._member.clip_val

    @property
    def gradient_clip_algorithm(self):
        return self._member.clip_algorithm

    @property
    def default_root_dir(self) -> str:
        return str(self._member.run_dir)

    @property
    def global_step(self) -> int:
        ended = self._member.ended_at
        return ended["global_step"] if ended else self._trainer.global_step

    @property
    def current_epoch(self) -> int:
        ended = self._member.ended_at
        return ended["current_epoch"] if ended else self._trainer.current_epoch

    def save_checkpoint(self, filepath, weights_only: bool = False, storage_options=None):
        with self._member.all_rng_streams():
            checkpoint = self._checkpoint_connector.dump_checkpoint(weights_only)
        self._trainer.strategy.save_checkpoint(checkpoint, filepath,
                                               storage_options=storage_options)
        self._trainer.strategy.barrier("Trainer.save_checkpoint")


# The Callback hooks a pack hands on. The batch hooks get the member's own batch.
HOOKS = ("setup", "teardown", "on_fit_start", "on_fit_end", "on_sanity_check_start",
         "on_sanity_check_end", "on_train_start", "on_train_end", "on_train_epoch_start",
         "on_train_epoch_end", "on_train_batch_start", "on_train_batch_end",
         "on_validation_start", "on_validation_end", "on_validation_epoch_start",
         "on_validation_epoch_end", "on_validation_batch_start", "on_validation_batch_end",
         "on_test_start", "on_test_end", "on_test_epoch_start", "on_test_epoch_end",
         "on_test_batch_start", "on_test_batch_end", "on_before_backward", "on_after_backward",
         "on_before_optimizer_step", "on_before_zero_grad")
# Lightning calls these of its monitoring callbacks (checkpoints, early stopping) after the
# module's hook, the rest before it.
_MONITORS_LAST = ("on_train_epoch_end",)


class Member:
    """One run of a pack: its task, data, optimizer, callbacks, loggers, RNG, and how it ended."""

    def __init__(self, index: int, run_dir: Path, datamodule, task, callbacks: list,
                 loggers: list, clip_val=None, clip_algorithm=None, job: int | None = None):
        self.index, self.prefix, self.run_dir = index, member_prefix(index), Path(run_dir)
        self.job = index if job is None else job  # its place in the launcher's list
        self.datamodule, self.task = datamodule, task
        # the order Lightning gives a solo run's callbacks (checkpoints last)
        self.callbacks = _CallbackConnector._reorder_callbacks(list(callbacks))
        self.loggers = loggers
        self.clip_val, self.clip_algorithm = clip_val, clip_algorithm
        self.optimizer: torch.optim.Optimizer | None = None
        self.train_loader = None
        self.rng = _collect_rng_states()  # its streams as its solo run has them now
        self.stop_requested = False
        self.ended_at: dict[str, int] | None = None  # its last step and epoch
        self.error: BaseException | None = None
        self.fit_metrics: dict[str, float] = {}
        self.loss: torch.Tensor | None = None  # this batch's (None: it took no step)
        self.view: MemberTrainer | None = None
        self.env: dict[str, str | None] = {}  # see environment()
        self._targets = {hook: self._implementing(hook) for hook in HOOKS}

    @property
    def active(self) -> bool:
        return self.ended_at is None and self.error is None

    def _implementing(self, hook: str) -> list:
        """The member's callbacks and task that implement ``hook``, in Lightning's order."""
        callbacks = [c for c in self.callbacks
                     if getattr(type(c), hook, None) is not getattr(Callback, hook)]
        own = getattr(type(self.task), hook, None)
        task = [self.task] if own is not None and own is not getattr(L.LightningModule, hook,
                                                                        None) else []
        if hook in _MONITORS_LAST:
            monitors = [c for c in callbacks if isinstance(c, (Checkpoint, EarlyStopping))]
            return [c for c in callbacks if c not in monitors] + task + monitors
        return callbacks + task

    def call(self, hook: str, *args, **kwargs) -> None:
        targets = self._targets[hook]
        if not targets:
            return
        with self.environment():
            for target in targets:
                if isinstance(target, Callback):
                    getattr(target, hook)(self.view, self.task, *args, **kwargs)
                else:
                    getattr(target, hook)(*args, **kwargs)

    @contextlib.contextmanager
    def environment(self):
        """The member's own environment variables (its W&B run's folders, where W&B stages the
        tables its gradient-flow monitor logs) while its hooks run."""
        if not self.env:
            yield
            return
        outer = {name: os.environ.get(name) for name in self.env}
        _set_environment(self.env)
        try:
            yield
        finally:
            _set_environment(outer)

    @contextlib.contextmanager
    def rng_stream(self):
        """The member's torch RNG stream in place of the process's, around the code that draws
        from it (dropout and zoneout, in the training and validation steps). Hooks draw nothing
        (the gradient-flow probes fork the RNG), so they run without the swap."""
        outer = torch.get_rng_state()
        torch.set_rng_state(self.rng["torch"])
        try:
            yield
        finally:
            self.rng["torch"] = torch.get_rng_state()
            torch.set_rng_state(outer)

    @contextlib.contextmanager
    def all_rng_streams(self):
        """Every RNG stream of the member (torch, numpy, Python, CUDA), for a checkpoint: its
        run state saves them, as its solo run's does."""
        outer = _collect_rng_states()
        _set_rng_states(self.rng)
        try:
            yield
        finally:
            self.rng = _collect_rng_states()
            _set_rng_states(outer)

    def snapshot(self) -> None:
        self.fit_metrics = {k: float(v) for k, v in self.view.callback_metrics.items()}


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class PackOptimizer(torch.optim.Optimizer):
    """The members' optimizers as the one Lightning steps: each member's own optimizer steps
    (its solo run's, with its own learning rate and state), for the members that took a loss
    this batch."""

    def __init__(self, members: list[Member]):
        self.members = members
        super().__init__([p for m in members for p in m.task.parameters()], {})
        self.param_groups = [g for m in members for g in m.optimizer.param_groups]

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for member in self.members:
            if member.active and member.loss is not None:
                member.optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for member in self.members:
            if member.active:
                member.optimizer.zero_grad(set_to_none=set_to_none)


class Zipped:
    """The members' loaders of one split, batch by batch; None for a member that has none (it
    ended, or is not tested). A pack's members share the data's sizes and batch size."""

    def __init__(self, loaders: list):
        self.loaders = loaders
        self.length = len(next(loader for loader in loaders if loader is not None))

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        # A generator: nothing is drawn before the first batch is asked for. (Lightning calls
        # iter() once to check an iterable that is not a DataLoader, and a DataLoader's
        # iterator draws its base seed from the shuffle generator when it is made.)
        yield from zip(*[itertools.repeat(None) if loader is None else iter(loader)
                         for loader in self.loaders])


class PackLogger(Logger):
    """The pack trainer's one logger: each member's keys go to that member's loggers without
    the prefix, at the member's own step and epoch (a member that ended logs its test metrics at
    its last step, as its solo run does)."""

    def __init__(self, members: list[Member], batched: bool = False):
        super().__init__()
        self.members = members
        # one computation over the member dimension per step where possible (GPUs; on the CPU
        # each member's own forward is exact and as fast): _batched_outputs
        self.batched = batched

    @property
    def name(self) -> str:
        return "pack"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # each member's loggers have its own (rnnlab.run.build.log_run_metadata)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for member in self.members:
            if member.error is not None:
                # its solo run raised there: nothing it logged since (e.g. the validation whose
                # loss diverged) reaches a logger
                continue
            own = {k[len(member.prefix):]: v for k, v in metrics.items()
                   if k.startswith(member.prefix)}
            if not own:
                continue
            ended = member.ended_at
            if "epoch" in metrics:
                own["epoch"] = ended["current_epoch"] if ended else metrics["epoch"]
            for logger in member.loggers:
                logger.log_metrics(own, ended["batches"] if ended else step)

    def save(self) -> None:
        for member in self.members:
            for logger in member.loggers:
                logger.save()


class PackTask(L.LightningModule):
    """The LightningModule of a pack: its members' tasks, stepped together."""

    def __init__(self, members: list[Member], batched: bool = False):
        super().__init__()
        self.members = members
        # one computation over the member dimension per step where possible (GPUs; on the CPU
        # each member's own forward is exact and as fast): _batched_outputs
        self.batched = batched
        self.tasks = torch.nn.ModuleList([m.task for m in members])
        self.testing: list[Member] = []
        for member in members:  # what a member logs goes to the pack, under its prefix
            member.task.log = self._log_for(member)
            member.task.log_dict = self._log_dict_for(member)

    def _log_for(self, member: Member):
        def log(name, value, *args, **kwargs):
            return self.log(member.prefix + name, value, *args, **kwargs)
        return log

    def _log_dict_for(self, member: Member):
        def log_dict(dictionary, *args, **kwargs):
            return self.log_dict({member.prefix + k: v for k, v in dictionary.items()},
                                 *args, **kwargs)
        return log_dict

    # ---------------------------------------------------------------------------- members
    def active(self) -> list[Member]:
        return [m for m in self.members if m.active]

    def current(self) -> list[Member]:
        """The members this stage runs: training, the active ones; testing, the tested."""
        return self.testing if self.trainer.testing else self.active()

    def guarded(self, member: Member, fn, *args, **kwargs):
        """``fn`` for ``member``: an exception ends that member's run (recorded as its solo run
        would record it: diverged or failed) while its pack-mates go on."""
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the member's run ends here, as solo
            self.fail(member, error)
            return None

    def fail(self, member: Member, error: BaseException) -> None:
        member.snapshot()
        member.error = error
        member.ended_at = self._position()
        for callback in member.callbacks:  # as Lightning does for a run that raised
            with contextlib.suppress(Exception):
                callback.on_exception(member.view, member.task, error)
        for logger in member.loggers:
            logger.finalize("failed")
        self._stop_when_all_ended()

    def end(self, member: Member) -> None:
        """The member's fit ends here (it asked to stop, or the pack's fit ended): its
        end-of-fit hooks run now, at its last step, as its solo run's would."""
        member.ended_at = self._position()
        for hook, kwargs in (("on_train_end", {}), ("on_fit_end", {}),
                             ("teardown", {"stage": "fit"})):
            self.guarded(member, member.call, hook, **kwargs)
        if member.error is None:
            member.snapshot()
            for logger in member.loggers:
                logger.finalize("success")
        self._stop_when_all_ended()

    def _position(self) -> dict[str, int]:
        trainer = self.trainer
        return {"global_step": trainer.global_step, "current_epoch": trainer.current_epoch,
                "batches": trainer.fit_loop.epoch_loop._batches_that_stepped}

    def _stop_when_all_ended(self) -> None:
        if not self.active():
            self.trainer.should_stop = True

    # ------------------------------------------------------------------------- Lightning
    def setup(self, stage: str) -> None:
        # Lightning has just pointed every child module at the pack's trainer: each member's
        # task sees its own view of it instead.
        for member in self.members:
            member.task._trainer = member.view

    def configure_optimizers(self):
        for member in self.members:
            member.optimizer = member.task.configure_optimizers()
        return PackOptimizer(self.members)

    def training_step(self, batches, batch_idx):
        losses = []
        outputs = self._batched_outputs(batches)
        for member, batch in zip(self.members, batches):
            member.loss = None
            if not member.active:
                continue
            with member.rng_stream():
                loss = self.guarded(member, member.task.training_step, batch, batch_idx,
                                    outputs.get(member.index))
            if loss is not None and member.active:
                member.loss = loss
                losses.append(loss)
        if not losses:
            return None  # every member ended at this step: nothing to step
        # d(sum)/d(loss_i) = 1: each member's backward is its solo run's
        return losses[0] if len(losses) == 1 else torch.stack(losses).sum()

    def _batched_outputs(self, batches) -> dict[int, torch.Tensor]:
        """With ``batched`` on: every active member's output from one computation over a member
        dimension (rnnlab.cells.members: one batched product per step), where the members can
        be stacked this step -- not on a step whose gradient flow is recorded, with ragged
        batches or dropout (then each member runs its own forward, as always)."""
        if not self.batched:
            return {}
        from rnnlab.cells import members as stacking

        active = [m for m in self.members if m.active]
        if len(active) < 2 or any("lengths" in batches[m.index] for m in active):
            return {}
        models = [m.task.model for m in active]
        if stacking.model_stack_reason(models) is not None:
            return {}
        outputs = stacking.stacked_model_forward(models, [batches[m.index]["x"] for m in active])
        return {m.index: outputs[i] for i, m in enumerate(active)}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        # each member by its own norm and threshold, as its solo run (Lightning's clip_gradients)
        for member in self.members:
            if member.active and member.loss is not None:
                member.task.clip_gradients(member.optimizer, member.clip_val,
                                           member.clip_algorithm)

    def validation_step(self, batches, batch_idx):
        for member, batch in zip(self.members, batches):
            if member.active:
                with member.rng_stream():
                    self.guarded(member, member.task.validation_step, batch, batch_idx)

    def test_step(self, batches, batch_idx):
        for member, batch in zip(self.members, batches):
            if member in self.testing:
                with member.rng_stream():
                    member.task.test_step(batch, batch_idx)


def _batch_hook(hook: str, has_outputs: bool):
    def forward(self, trainer, pl_module, *args, **kwargs):
        if has_outputs:
            _outputs, batches, *rest = args
        else:
            batches, *rest = args
        for member in pl_module.current():
            batch = batches[member.index]
            if has_outputs:
                outputs = {"loss": member.loss.detach()} if member.loss is not None else None
                pl_module.guarded(member, member.call, hook, outputs, batch, *rest, **kwargs)
            else:
                pl_module.guarded(member, member.call, hook, batch, *rest, **kwargs)
    forward.__name__ = hook
    return forward


def _plain_hook(hook: str):
    def forward(self, trainer, pl_module, *args, **kwargs):
        for member in pl_module.current():
            pl_module.guarded(member, member.call, hook, *args, **kwargs)
    forward.__name__ = hook
    return forward


# (made once, not at every step: PackHooks adds its stop rule after them)
_each_train_batch_end = _batch_hook("on_train_batch_end", True)
_each_validation_end = _plain_hook("on_validation_end")


class PackHooks(Callback):
    """The pack trainer's one callback: every hook handed to the members it concerns, with the
    pack's own rules where a member's run starts, steps or ends."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        for member in pl_module.members:
            member.task._trainer = member.view
        for member in pl_module.current():
            pl_module.guarded(member, member.call, "setup", stage=stage)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage == "test":  # (a fit's is each member's own, at its end)
            for member in pl_module.testing:
                pl_module.guarded(member, member.call, "teardown", stage=stage)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # A member that asked to stop at the last validation has had that epoch's end, as its
        # solo run does before its loop ends: its fit ends now.
        for member in pl_module.active():
            if member.stop_requested:
                pl_module.end(member)
        for member in pl_module.active():
            pl_module.guarded(member, member.call, "on_train_epoch_start")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        for member in pl_module.active():
            if member.loss is not None:
                pl_module.guarded(member, member.call, "on_before_optimizer_step",
                                  member.optimizer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _each_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx)
        self._stop_when_every_member_asks(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        _each_validation_end(self, trainer, pl_module)
        self._stop_when_every_member_asks(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        for member in pl_module.active():
            pl_module.end(member)

    @staticmethod
    def _stop_when_every_member_asks(trainer, pl_module) -> None:
        active = pl_module.active()
        if active and all(m.stop_requested for m in active):
            trainer.should_stop = True


for _hook in HOOKS:
    if _hook not in vars(PackHooks) and _hook not in ("on_train_end", "on_fit_end", "teardown"):
        if _hook.endswith("_batch_start"):
            setattr(PackHooks, _hook, _batch_hook(_hook, False))
        elif _hook.endswith("_batch_end"):
            setattr(PackHooks, _hook, _batch_hook(_hook, True))
        else:
            setattr(PackHooks, _hook, _plain_hook(_hook))
