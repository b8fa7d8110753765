"""SequenceTask: the LightningModule that turns a dataset's task kind into a loss and metrics.

Task kinds (rnnlab.data.base.TASK_KINDS):
- step_classification: cross-entropy averaged over every valid step; ``acc`` over the scored
  steps (copy: the recalled symbols).
- last_classification: cross-entropy at each sequence's last valid step; ``acc`` and ``f1``.
- last_regression: MSE on (standardised) targets; ``mse`` and ``mae`` in original units.
- step_multilabel: Bernoulli NLL summed over outputs (keys), averaged over valid frames, which is
  the loss and ``nll``; ``acc`` is frame-level accuracy TP / (TP + FP + FN) (Bay et al. 2009).
"""

from __future__ import annotations

import json
import math
import re
from functools import partial

import lightning as L
import torch
import torchmetrics

from rnnlab.cells.sequence import lengths_mask
from rnnlab.config.schemas import monitor_mode as default_mode
from rnnlab.data.base import DataSpec
from rnnlab.model.metrics import FrameAccuracy, task_loss
from rnnlab.model.models import SequenceModel

# The default of `divergence_factor` (conf/train.yaml gives the same; tests/test_configs.py
# checks that they agree), so the Python API stops exploded runs as the CLI does.
DIVERGENCE_FACTOR = 1000.0


class Diverged(RuntimeError):
    """The training or validation loss stopped being finite or exceeded divergence_factor x the
    first training loss: which ``metric``, its ``value``, at which ``step`` (and the ``factor``
    and ``first`` loss it was compared with). Its message is made and read back here only: a
    spawned DDP worker's divergence reaches the parent as the text of its traceback
    (:meth:`from_traceback`), and a test keeps the two in step."""

    def __init__(self, metric: str, value: float, step: int, factor: float | None = None,
                 first: float | None = None, metrics: dict[str, float] | None = None):
        self.metric, self.value, self.step = metric, float(value), int(step)
        self.factor, self.first = factor, first
        # the last finite value of each metric the run had logged (results.json's metrics): a
        # spawned DDP worker's reach the parent in a note of the traceback (_METRICS), since its
        # CSV log holds only the rows of trainer.log_every_n_steps
        self.metrics = {k: float(v) for k, v in (metrics or {}).items()
                        if math.isfinite(float(v))}
        if factor is None:
            text = f"{metric} became {self.value} at step {self.step}"
        else:
            text = (f"{metric} {self.value:.6g} at step {self.step} exceeds divergence_factor="
                    f"{factor:g} x the first train/loss {first:.6g}")
        super().__init__(text)
        if self.metrics and hasattr(self, "add_note"):  # Python >= 3.11 (else: the CSV log's)
            self.add_note(f"{self._NOTE}{json.dumps(self.metrics, sort_keys=True)}")

    def __reduce__(self):  # picklable with its fields (spawned workers, multiprocessing)
        return (type(self), (self.metric, self.value, self.step, self.factor, self.first,
                             self.metrics))

    _NOTE = "rnnlab: the last finite metrics: "
    _METRICS = re.compile(rf"^{re.escape(_NOTE)}(?P<json>\{{.*\}})\s*$", re.MULTILINE)

    # a traceback names the class by its module's path: rnnlab.model.task.Diverged
    _TEXT = re.compile(rf"^{re.escape(__name__)}\.Diverged: "
                       r"(?P<metric>\S+) (?:became )?(?P<value>\S+) "
                       r"at step (?P<step>\d+)(?: exceeds divergence_factor=(?P<factor>\S+) x "
                       r"the first train/loss (?P<first>\S+))?\s*$", re.MULTILINE)

    @classmethod
    def from_traceback(cls, text: str) -> Diverged | None:
        """The last divergence a traceback's text reports (None if it reports none)."""
        found = list(cls._TEXT.finditer(text))
        if not found:
            return None
        match = found[-1]
        factor, first = match.group("factor"), match.group("first")
        noted = cls._METRICS.search(text, match.end())  # its note, on the lines after it
        try:
            metrics = json.loads(noted.group("json")) if noted else {}
        except ValueError:
            metrics = {}
        return cls(match.group("metric"), float(match.group("value")), int(match.group("step")),
                   None if factor is None else float(factor),
                   None if first is None else float(first),
                   metrics if isinstance(metrics, dict) else {})


def _metrics_for(spec: DataSpec) -> torchmetrics.MetricCollection:
    kind = spec.task_kind
    if kind == "step_classification":
        return torchmetrics.MetricCollection({"acc": torchmetrics.classification.MulticlassAccuracy(
            spec.output_size, average="micro")})
    if kind == "last_classification":
        if spec.output_size == 2:
            f1 = torchmetrics.classification.BinaryF1Score()
        else:
            f1 = torchmetrics.classification.MulticlassF1Score(spec.output_size, average="macro")
        return torchmetrics.MetricCollection({
            "acc": torchmetrics.classification.MulticlassAccuracy(spec.output_size,
                                                                  average="micro"),
            "f1": f1})
    if kind == "last_regression":
        return torchmetrics.MetricCollection({"mse": torchmetrics.MeanSquaredError(),
                                              "mae": torchmetrics.MeanAbsoluteError()})
    return torchmetrics.MetricCollection({"acc": FrameAccuracy()})


def _valid_steps(lengths: torch.Tensor | None, batch: int, steps: int, device) -> torch.Tensor:
    if lengths is None:
        return torch.ones((batch, steps), dtype=torch.bool, device=device)
    return lengths_mask(lengths.to(device), steps).t()


class SequenceTask(L.LightningModule):
    def __init__(self, model: SequenceModel, optimizer: partial, scheduler: partial | None = None,
                 monitor: str = "val/loss", monitor_mode: str | None = None,
                 divergence_factor: float | None = DIVERGENCE_FACTOR):
        super().__init__()
        # Diverged also when train/loss exceeds this factor of its first value (None: only when
        # it stops being finite): an exploded run that stays finite is not a result to average.
        self.divergence_factor = divergence_factor
        self.first_loss: float | None = None
        self.model = model
        self.spec: DataSpec = model.spec
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # the monitored metric and its direction (None: the metric's default, monitor_mode())
        self.monitor = monitor
        self.monitor_mode = monitor_mode or default_mode(monitor)
        # ModuleDict keys cannot shadow nn.Module attributes such as `train`.
        self.metrics = torch.nn.ModuleDict(
            {f"{stage}_metrics": _metrics_for(self.spec) for stage in ("train", "val", "test")})
        # A checkpoint taken mid-epoch carries the epoch's running train metrics, so a resumed
        # run reports the same train/acc at the epoch's end.
        self.metrics["train_metrics"].persistent(True)
        self.best: dict[str, float] = {}
        self.num_train_steps = 0
        scale, shift = self.spec.target_scale, self.spec.target_shift
        self.register_buffer("target_scale", torch.as_tensor(1.0 if scale is None else scale,
                                                             dtype=torch.float32), persistent=False)
        self.register_buffer("target_shift", torch.as_tensor(0.0 if shift is None else shift,
                                                             dtype=torch.float32), persistent=False)

    def forward(self, x, lengths=None):
        return self.model(x, lengths)

    # ------------------------------------------------------------------------------ steps
    def loss_and_metrics(self, batch: dict, stage: str,
                         output: torch.Tensor | None = None) -> torch.Tensor:
        """``output``: the model's output on ``batch`` when computed elsewhere (a pack's batched
        member step, rnnlab.run.pack), else the model is run here."""
        x, y, lengths = batch["x"], batch["y"], batch.get("lengths")
        if output is None:
            output = self.model(x, lengths)
        kind = self.spec.task_kind
        metrics = self.metrics[f"{stage}_metrics"]
        if kind == "step_classification":
            valid = _valid_steps(lengths, y.shape[0], y.shape[1], y.device)
            counted = valid & batch["loss_mask"] if "loss_mask" in batch else valid
            loss = task_loss(kind, output[counted], y[counted])
            scored = valid & batch["score_mask"] if "score_mask" in batch else valid
            metrics.update(output[scored].detach(), y[scored])
        elif kind == "last_classification":
            loss = task_loss(kind, output, y)
            # Class indices suit both the binary F1 and the multiclass metrics.
            metrics.update(output.detach().argmax(-1), y)
        elif kind == "last_regression":
            loss = task_loss(kind, output, y)
            metrics.update(self._original_units(output.detach()), self._original_units(y))
        else:  # step_multilabel
            valid = _valid_steps(lengths, y.shape[0], y.shape[1], y.device)
            loss = task_loss(kind, output[valid], y[valid])
            metrics.update(torch.sigmoid(output[valid].detach()), y[valid])
            self.log(f"{stage}/nll", loss.detach(), on_step=False, on_epoch=True,
                     batch_size=int(valid.sum()), sync_dist=True)
        return loss

    def _original_units(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.target_scale + self.target_shift

    def training_step(self, batch, batch_idx, output: torch.Tensor | None = None):
        loss = self.loss_and_metrics(batch, "train", output)
        # Under DDP each rank holds its shard's loss: train/loss and the divergence checks use the
        # mean over ranks (the loss of the whole batch the step took), so every rank logs the same
        # number and stops at the same step.
        mean_loss = self.trainer.strategy.reduce(loss.detach(), reduce_op="mean")
        value = float(mean_loss)
        if self.first_loss is None and math.isfinite(value):
            self.first_loss = value
        else:
            self._check_divergence("train/loss", value)
        if self._logs_train_loss():
            self.log("train/loss", mean_loss, on_step=True, on_epoch=False, prog_bar=True,
                     batch_size=batch["y"].shape[0])
        self.num_train_steps += 1
        return loss

    def _logs_train_loss(self) -> bool:
        """Whether this step's train/loss is logged: at the steps Lightning writes to the loggers
        (every trainer.log_every_n_steps), at each epoch's last batch and at trainer.max_steps,
        so that the loggers, the final train/loss (results.json) and the bar at each epoch end
        show exactly the values they would if every step were logged. The other steps' values
        would go nowhere: Lightning drops them, and self.log costs ~0.5 ms a call, 5-6% of a
        quickstart-size step (scripts/bench_step.py)."""
        trainer = self._trainer
        if trainer is None:  # called outside a Trainer (the Python API, tests)
            return True
        if trainer._logger_connector.should_update_logs or trainer.is_last_batch:
            return True
        max_steps = trainer.max_steps
        return max_steps is not None and 0 < max_steps <= trainer.global_step + 1

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _eval_step(self, batch, stage: str) -> None:
        loss = self.loss_and_metrics(batch, stage)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["y"].shape[0], sync_dist=True)

    # --------------------------------------------------------------------------- epochs
    def _log_epoch_metrics(self, stage: str) -> None:
        metrics = self.metrics[f"{stage}_metrics"]
        values = metrics.compute()
        self.log_dict({f"{stage}/{name}": value for name, value in values.items()},
                      prog_bar=stage != "train")
        metrics.reset()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # A trainer.max_steps that ends training inside an epoch would end it with no validation
        # since the last epoch end (none at all in a run shorter than one epoch): no val metrics,
        # no best or last checkpoint, no baseline or verdict. Asking to stop at the last step
        # makes Lightning validate there first (and the checkpoints follow, as at an epoch end).
        max_steps = self.trainer.max_steps
        if max_steps is not None and max_steps > 0 and self.trainer.global_step >= max_steps:
            self.trainer.should_stop = True

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")
        # The reference a trivial predictor scores, as a constant line beside every val curve.
        self.log_dict({f"baseline/{name}": float(value)
                       for name, value in self.spec.baselines.items()})
        if not self.trainer.sanity_checking:
            self._check_val_divergence()
            self._update_best()

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def _check_val_divergence(self) -> None:
        """A model whose validation loss exploded is diverged too, even when its last training
        batch still looked fine (e.g. two steps at an absurd learning rate)."""
        value = self.trainer.callback_metrics.get("val/loss")
        if value is not None and self.first_loss is not None:
            self._check_divergence("val/loss", float(value))

    def _check_divergence(self, metric: str, value: float) -> None:
        """The one divergence test, for the train and the validation loss: not finite, or above
        divergence_factor x the first training loss."""
        if not math.isfinite(value):
            raise Diverged(metric, value, self.global_step, metrics=self._scalar_metrics())
        if (self.divergence_factor is not None and self.first_loss is not None
                and self.first_loss > 0 and value > self.divergence_factor * self.first_loss):
            raise Diverged(metric, value, self.global_step, self.divergence_factor,
                           self.first_loss, metrics=self._scalar_metrics())

    def _scalar_metrics(self) -> dict[str, float]:
        """What the run had logged when it diverged (results.json keeps it). Read only then: it
        is every logged metric, and this test runs at every training step."""
        return {k: float(v) for k, v in self.trainer.callback_metrics.items()
                if getattr(v, "numel", lambda: 1)() == 1}

    def _update_best(self) -> None:
        for key, value in self.trainer.callback_metrics.items():
            if not key.startswith("val/"):
                continue
            value = float(value)
            if not math.isfinite(value):
                continue
            better = max if self.mode_of(key) == "max" else min
            self.best[key] = better(self.best.get(key, value), value)

    def logged_metrics(self, stage: str) -> list[str]:
        """The names this task logs for ``stage`` (train, val, test): its loss and metrics."""
        return list(dict.fromkeys(f"{stage}/{name}"
                                  for name in ("loss", *self.metrics[f"{stage}_metrics"])))

    def mode_of(self, metric: str) -> str:
        """Which way ``metric`` improves: the monitor's mode for the monitored metric, else the
        metric's default (max for accuracy-like metrics, min for losses)."""
        return self.monitor_mode if metric == self.monitor else default_mode(metric)

    # Carried in the state dict so that ddp_spawn's worker hands them back to the main process.
    def get_extra_state(self) -> dict:
        return {"best": dict(self.best), "num_train_steps": self.num_train_steps,
                "first_loss": self.first_loss}

    def set_extra_state(self, state: dict) -> None:
        self.best = dict(state.get("best", {}))
        self.num_train_steps = int(state.get("num_train_steps", 0))
        self.first_loss = state.get("first_loss", self.first_loss)

    # ---------------------------------------------------------------------------- optim
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor,
                                 "interval": "epoch"}}
