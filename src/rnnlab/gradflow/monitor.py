"""GradientFlowMonitor: the per-time-step gradient norm as a Lightning callback (docs/gradflow.md).

Every ``every_n_steps`` optimizer steps it takes, through the model's small interface
(``gradient_flow()``, ``gradient_flow_quantity``, ``watch_gradient_flow()``, see
rnnlab.model.models.SequenceModel), the per-sample norms of the gradient at every time step and
layer,
and keeps their batch mean and 10th/90th percentiles:

- scratch cells: ||dL/dh_t||, the total gradient at each layer's hidden state (direct and through
  the recurrence), every layer; metric names ``gradflow/<layer>/...``;
- fused (torch.nn / cuDNN) cells, which hide dL/dh_t: ||dL/dx_t||, the gradient reaching the first
  layer's input at step t; metric names ``gradflow_input/<layer>/...``.

``probe="train"`` reads the training backward itself (the current batch and loss, no extra
work). ``probe="fixed"`` runs its own forward/backward on a held-out batch (the first validation
batch) with the loss at the final output step only: the classic curve, comparable across training
(step 0 is the network at initialisation). The fixed probe leaves no parameter gradients behind
(``torch.autograd.grad`` with respect to the recurrent stack's input only), takes no optimizer
step, runs in eval mode (no dropout) and restores every module's mode, and runs inside
``torch.random.fork_rng`` so the global RNG state is as before.

Also, before every optimizer step (before Lightning clips), the total gradient norm, to count how
often ``trainer.gradient_clip_val`` fires; at the measured steps the per-parameter norms
(Lightning's ``grad_norm``), the total norm and the fraction of steps clipping fired since the
previous record.

Outputs: scalars to every logger (and ``pl_module.log(logger=False)``, so the final values reach
``trainer.callback_metrics`` and results.json); to W&B, when a WandbLogger is present, two custom
charts over W&B Tables (plots.py): each record's curves on a log y axis and, at every epoch end,
the (training step x t) heatmap on a fixed colour range shared by every run
(``heatmap_range``), plus a table of the summaries per record at the end; and ``gradflow.npz`` in
``output_dir``, written atomically by rank 0 at every epoch end, at the end of training and when
training stops on an exception. Under DDP the curves are averaged over ranks (every rank computes
the same numbers; rank 0 logs and writes).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.nn import functional as F

from rnnlab.config.errors import check_choice
from rnnlab.run.rundir import RunDir
from rnnlab.wandb import gradflow as wandb_charts

from .clipping import ClipCounter
from .dynamics import DynamicsRecorder
from .probe import fixed_probe, take_rows
from .stats import (
    DEFAULT_HORIZON_FRACTION,
    PREFIX,
    SUMMARIES,
    GradflowFile,
    batch_stats,
    curve_summaries,
    metric_key,
)

PROBES = ("train", "fixed")
def flow_model(pl_module) -> Any | None:
    """The object exposing ``gradient_flow()``: the LightningModule itself or its ``.model``."""
    for candidate in (pl_module, getattr(pl_module, "model", None)):
        if candidate is not None and callable(getattr(candidate, "gradient_flow", None)):
            return candidate
    return None


# -------------------------------------------------------------------------------- callback
class GradientFlowMonitor(Callback):
    """Record the per-time-step gradient norm every ``every_n_steps`` steps (see module doc).

    Args:
        every_n_steps: measure at the optimizer steps 0, n, 2n, ... (the fixed probe also at the
            end of training).
        probe: ``train`` (the training batch and loss) or ``fixed`` (a held-out batch, loss at
            the final step only, no optimizer step).
        probe_batch_size: examples of the fixed probe batch (default: the whole first val batch).
        horizon_fraction: f of the ``horizon`` summary (steps back with norm >= f * peak).
        output_dir: where ``gradflow.npz`` goes (the run dir); default ``trainer.default_root_dir``.
        param_norms: log per-parameter gradient norms at the measured steps.
        log_curves: log the last record's curves to W&B (custom chart, log y axis).
        heatmap: log the (training step x t) heatmap to W&B (table + custom chart).
            W&B gets its tables once, at the end of training (rnnlab.wandb.gradflow.log_final);
            each record's scalars go to every logger as it is taken.
        heatmap_range: [lo, hi], the heatmap's colour range in log10 units, the same for every
            run so that colours compare across runs (None: plots.DEFAULT_HEATMAP_RANGE); values
            outside are clamped to the end colours, and the chart says so.
        jacobian_rows: rows of the probe batch (the fixed probe's, else the first training
            batch's) whose step Jacobians, Lyapunov exponents and gates are recorded
            (dynamics.py; 0: none), at the first record, every ``jacobian_every_n_steps``
            (None: never in between) and at the end of training.
        lyapunov_k: how many of the top Lyapunov exponents.
    """

    def __init__(
        self,
        every_n_steps: int = 100,
        probe: str = "train",
        probe_batch_size: int | None = None,
        horizon_fraction: float = DEFAULT_HORIZON_FRACTION,
        output_dir: str | None = None,
        param_norms: bool = True,
        log_curves: bool = True,
        heatmap: bool = True,
        heatmap_range: Sequence[float] | None = None,
        jacobian_rows: int = 4,
        jacobian_every_n_steps: int | None = None,
        lyapunov_k: int = 8,
    ):
        from rnnlab.wandb.charts import check_heatmap_range

        super().__init__()
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"callbacks.gradflow.every_n_steps must be an int >= 1, got "
                             f"{every_n_steps!r}")
        check_choice("callbacks.gradflow.probe", probe, PROBES)
        if not 0.0 < horizon_fraction < 1.0:
            raise ValueError(f"callbacks.gradflow.horizon_fraction must be in (0, 1), got "
                             f"{horizon_fraction}")
        if probe_batch_size is not None and probe_batch_size < 1:
            raise ValueError(f"callbacks.gradflow.probe_batch_size must be >= 1, got "
                             f"{probe_batch_size}")
        self.every_n_steps = every_n_steps
        self.probe = probe
        self.probe_batch_size = probe_batch_size
        self.horizon_fraction = float(horizon_fraction)
        self.output_dir = output_dir
        self.param_norms = param_norms
        self.log_curves = log_curves
        self.heatmap = heatmap
        self.heatmap_range = check_heatmap_range(heatmap_range)
        self._dynamics_args = (jacobian_rows, jacobian_every_n_steps, lyapunov_k)
        DynamicsRecorder(*self._dynamics_args)  # checks the arguments now
        self._reset()

    def _reset(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.param_records: list[dict[str, Any]] = []
        self.layers: list[str] | None = None
        self.quantity: str | None = None
        self.cell = self.impl = ""
        self._model = None
        self._params: list[torch.Tensor] = []
        self._armed_step: int | None = None
        self._armed_lengths: torch.Tensor | None = None
        self._probe_batch: dict | None = None
        self._last_probe_step: int | None = None
        self._last_param_step: int | None = None
        self._clipping = ClipCounter()
        self._clipped_steps = 0
        self._warned = False
        self.dynamics = DynamicsRecorder(*self._dynamics_args)

    # What a checkpoint keeps, so that a resumed run's gradflow.npz holds every record, once.
    _STATE = ("records", "param_records", "layers", "_last_probe_step", "_last_param_step",
              "_pending", "_clipped_steps", "_dynamics_state")

    @property
    def _dynamics_state(self) -> dict[str, Any]:
        return {"records": self.dynamics.records, "batch": self.dynamics.batch}

    @_dynamics_state.setter
    def _dynamics_state(self, value: dict[str, Any]) -> None:
        self.dynamics.records, self.dynamics.batch = value["records"], value["batch"]

    @property
    def _pending(self) -> list[list[torch.Tensor]]:  # the checkpointed part of the counter
        return self._clipping.pending

    @_pending.setter
    def _pending(self, value: list[list[torch.Tensor]]) -> None:
        self._clipping.pending = value

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATE}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self._stage != "fit":  # testing with the best checkpoint: keep the fit's record
            return
        for name in self._STATE:
            if name in state_dict:
                setattr(self, name, state_dict[name])

    # ------------------------------------------------------------------------ lifecycle
    def setup(self, trainer, pl_module, stage: str) -> None:
        self._stage = stage
        if stage != "fit":
            return
        self._reset()
        self._model = flow_model(pl_module)
        if self._model is None:
            warnings.warn("GradientFlowMonitor: the module has no gradient_flow(); only "
                          "parameter gradient norms are recorded", stacklevel=2)
            return
        self.quantity = self._model.gradient_flow_quantity
        self.cell = str(getattr(self._model, "cell_name", ""))
        self.impl = str(getattr(self._model, "impl", ""))

    def on_train_start(self, trainer, pl_module) -> None:
        self._params = [p for p in pl_module.parameters() if p.requires_grad]
        if self.probe == "fixed" and self._model is not None:
            self._probe_batch = self._held_out_batch(trainer, pl_module)
            if self._probe_batch is not None:
                self.dynamics.keep_batch(self._probe_batch)

    def _held_out_batch(self, trainer, pl_module) -> dict | None:
        """The first validation batch (None without a datamodule: the first training batch then
        stands in, which is not held out)."""
        from lightning.pytorch.utilities import move_data_to_device

        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "val_dataloader"):
            return None
        with torch.random.fork_rng():  # a DataLoader iterator draws its base seed from torch
            try:
                batch = next(iter(datamodule.val_dataloader()))
            except (StopIteration, NotImplementedError, TypeError):
                return None
        return move_data_to_device(take_rows(batch, self.probe_batch_size), pl_module.device)

    def _due(self, step: int) -> bool:
        return step % self.every_n_steps == 0

    # --------------------------------------------------------------------------- hooks
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        if self._model is not None and self.dynamics.due(step):
            if isinstance(batch, dict):
                self.dynamics.keep_batch(batch)
            self._measure_dynamics(trainer, pl_module, step, can_log=True)
        if self._model is None or not self._due(step):
            return
        if self.probe == "train":
            if self._armed_step is None:
                self._model.watch_gradient_flow(True)
            self._armed_step = step
            self._armed_lengths = batch.get("lengths") if isinstance(batch, dict) else None
        elif self._last_probe_step != step:
            if self._probe_batch is None:
                self._probe_batch = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                                     for k, v in take_rows(batch, self.probe_batch_size).items()}
            self._run_fixed_probe(trainer, pl_module, step, can_log=True)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        step = trainer.global_step
        self._track_clipping(trainer, pl_module)
        if self._armed_step is not None:
            flows = self._model.gradient_flow()
            self._model.watch_gradient_flow(False)
            self._armed_step = None
            self._record(trainer, pl_module, step, flows, self._armed_lengths, 1.0, can_log=True)
            self._armed_lengths = None
        if self._due(step) and self._last_param_step != step:
            self._record_params(trainer, pl_module, step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._flush(trainer, images="epoch")

    def on_train_end(self, trainer, pl_module) -> None:
        self._record_params(trainer, pl_module, None)  # clipping in the steps since the last
        if (self.probe == "fixed" and self._model is not None and self._probe_batch is not None
                and self._last_probe_step != trainer.global_step):
            self._run_fixed_probe(trainer, pl_module, trainer.global_step, can_log=False)
        records = self.dynamics.records
        if (self._model is not None and self.dynamics.on
                and (not records or records[-1]["step"] != trainer.global_step)):
            self._measure_dynamics(trainer, pl_module, trainer.global_step, can_log=False)
        self._flush(trainer, images="final")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # A diverged run's last curves are the interesting ones: keep what was recorded, and
        # give W&B its tables (not on Ctrl-C or a kill: the run stops as fast as it can).
        if self._armed_step is not None and self._model is not None:
            self._model.watch_gradient_flow(False)
            self._armed_step = None
        self._flush(trainer, images="failed" if isinstance(exception, Exception) else None)

    # ----------------------------------------------------------------------- measuring
    def _run_fixed_probe(self, trainer, pl_module, step: int, can_log: bool) -> None:
        flows, scale = fixed_probe(self._model, self._probe_batch)
        self._last_probe_step = step
        self._record(trainer, pl_module, step, flows, self._probe_batch.get("lengths"), scale,
                     can_log=can_log)

    def _measure_dynamics(self, trainer, pl_module, step: int, can_log: bool) -> None:
        """Step Jacobians, Lyapunov exponents and gates (dynamics.py) at ``step``. Every rank
        measures the same rows with the same weights; rank 0 logs."""
        scalars = self.dynamics.measure(self._model, step, trainer.current_epoch)
        if not scalars:
            return
        if can_log:
            for key, value in scalars.items():
                pl_module.log(key, value, on_step=True, on_epoch=False, logger=False)
        else:  # after the loop self.log is closed: the final values reach results.json here
            trainer.callback_metrics.update({k: torch.tensor(v) for k, v in scalars.items()})
        self._log_scalars(trainer, scalars, step)  # the charts go to W&B at the end

    def _track_clipping(self, trainer, pl_module) -> None:
        if trainer.gradient_clip_val:  # only when clipping is configured
            self._clipping.track([p.grad for p in self._params if p.grad is not None],
                                 trainer.gradient_clip_algorithm)

    def _record_params(self, trainer, pl_module, step: int | None) -> None:
        """Optimizer-side record: total norm before clipping, clipping frequency, per-parameter
        norms. ``step=None``: the end of training (only the clipping count of the last steps)."""
        from lightning.pytorch.utilities import grad_norm

        fired, steps = self._clipping.count(trainer.gradient_clip_val,
                                            trainer.gradient_clip_algorithm)
        if step is None and not steps:
            return
        self._clipped_steps += fired
        fraction = fired / steps if steps else math.nan
        total, norms = math.nan, {}
        if step is not None:
            self._last_param_step = step
            grads = [p.grad for p in self._params if p.grad is not None]
            if grads:
                total = float(torch.nn.utils.get_total_norm(grads, 2.0))
            if self.param_norms:
                norms = {name.split("/", 1)[1]: float(value)
                         for name, value in grad_norm(pl_module, 2).items()
                         if not name.endswith("_norm_total")}
        log_step = trainer.global_step if step is None else step
        self.param_records.append({"step": log_step, "grad_norm_total": total,
                                   "clip_fraction": fraction, "norms": norms})
        scalars = {"gradflow/grad_norm_total": total, "gradflow/clip_fraction": fraction,
                   "gradflow/clipped_steps": float(self._clipped_steps)}
        if step is None:
            del scalars["gradflow/grad_norm_total"]
        else:
            for key, value in scalars.items():
                pl_module.log(key, value, on_step=True, on_epoch=False, logger=False)
        scalars.update({f"gradflow/param/{name}": value for name, value in norms.items()})
        self._log_scalars(trainer, scalars, log_step)

    def _record(self, trainer, pl_module, step: int, flows: dict[str, torch.Tensor],
                lengths: torch.Tensor | None, scale: float, can_log: bool) -> None:
        if not flows:
            if not self._warned:
                warnings.warn("GradientFlowMonitor: the model recorded no gradient norms "
                              f"(step {step}); nothing measured", stacklevel=2)
                self._warned = True
            return
        self.layers = list(flows)
        stats = torch.stack([batch_stats(flows[layer].double() / scale, lengths)
                             for layer in self.layers], dim=1)  # (3, L, T)
        stats = self._reduce(trainer, stats).cpu().numpy()
        summaries = {layer: curve_summaries(stats[0, k], self.horizon_fraction)
                     for k, layer in enumerate(self.layers)}
        record = {"step": int(step), "epoch": int(trainer.current_epoch), "stats": stats,
                  "summaries": summaries}
        self.records.append(record)
        scalars = {metric_key(self.quantity, layer, name): values[name]
                   for layer, values in summaries.items() for name in SUMMARIES}
        if can_log:
            for key, value in scalars.items():
                pl_module.log(key, value, on_step=True, on_epoch=False, logger=False)
        self._log_scalars(trainer, scalars, step)  # the curves go to W&B at the end

    @staticmethod
    def _reduce(trainer, stats: torch.Tensor) -> torch.Tensor:
        """Mean over ranks (NaN-aware; batches of different T padded with NaN)."""
        if trainer.world_size <= 1:
            return stats
        steps = torch.tensor([stats.shape[-1]], device=stats.device)
        longest = int(trainer.strategy.all_gather(steps).max())
        if stats.shape[-1] < longest:
            stats = F.pad(stats, (0, longest - stats.shape[-1]), value=float("nan"))
        gathered = trainer.strategy.all_gather(stats.contiguous())
        return torch.nanmean(gathered.reshape(-1, *stats.shape), dim=0)

    # ------------------------------------------------------------------------- logging
    @staticmethod
    def _wandb(trainer):
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                return logger
        return None

    def _log_scalars(self, trainer, scalars: dict[str, float], step: int) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)

    # -------------------------------------------------------------------------- output
    def npz_file(self, trainer) -> GradflowFile:
        return GradflowFile(RunDir(self.output_dir or trainer.default_root_dir).gradflow)

    def arrays(self, trainer=None) -> dict[str, Any]:
        """Everything recorded so far, as the arrays of gradflow.npz (docs/gradflow.md)."""
        layers = self.layers or []
        R, L = len(self.records), len(layers)
        T = max((r["stats"].shape[-1] for r in self.records), default=0)
        stats = np.full((R, 3, L, T), np.nan, dtype=np.float32)
        for i, r in enumerate(self.records):
            stats[i, ..., : r["stats"].shape[-1]] = r["stats"]
        out: dict[str, Any] = {
            "quantity": np.str_(self.quantity or ""),
            "prefix": np.str_(PREFIX.get(self.quantity, "")),
            "probe": np.str_(self.probe),
            "cell": np.str_(self.cell),
            "impl": np.str_(self.impl),
            "layers": np.array(layers, dtype=str),
            "steps": np.array([r["step"] for r in self.records], dtype=np.int64),
            "epochs": np.array([r["epoch"] for r in self.records], dtype=np.int64),
            "t": np.arange(1, T + 1, dtype=np.int64),
            "mean": stats[:, 0], "p10": stats[:, 1], "p90": stats[:, 2],
            "horizon_fraction": np.float64(self.horizon_fraction),
            "every_n_steps": np.int64(self.every_n_steps),
        }
        for name in SUMMARIES:
            out[name] = np.array([[r["summaries"][layer][name] for layer in layers]
                                  for r in self.records], dtype=np.float64).reshape(R, L)
        names = sorted({n for r in self.param_records for n in r["norms"]})
        out["param_steps"] = np.array([r["step"] for r in self.param_records], dtype=np.int64)
        out["grad_norm_total"] = np.array([r["grad_norm_total"] for r in self.param_records],
                                          dtype=np.float64)
        out["clip_fraction"] = np.array([r["clip_fraction"] for r in self.param_records],
                                        dtype=np.float64)
        out["param_names"] = np.array(names, dtype=str)
        out["param_grad_norms"] = np.array(
            [[r["norms"].get(n, np.nan) for n in names] for r in self.param_records],
            dtype=np.float64).reshape(len(self.param_records), len(names))
        clip = getattr(trainer, "gradient_clip_val", None) if trainer is not None else None
        out["gradient_clip_val"] = np.float64(clip if clip else np.nan)
        if self.dynamics.records:
            out.update(self.dynamics.arrays())
        return out

    def _flush(self, trainer, images: str | None) -> None:
        """Write gradflow.npz (rank 0); ``images``: None or "epoch" (the file only), "final" (and
        W&B's tables, once: rnnlab.wandb.gradflow.log_final), "failed" (the same, after an error:
        a W&B that fails too is a warning, not a second error over the first)."""
        if not trainer.is_global_zero or not (self.records or self.param_records
                                               or self.dynamics.records):
            return
        arrays = self.arrays(trainer)
        # the epoch-end copies skip the fsync (the rename keeps them whole); the last one has it
        self.npz_file(trainer).write(arrays, durable=images != "epoch")
        if images == "final":
            wandb_charts.log_final(self, self._wandb(trainer), arrays)
        elif images == "failed":
            try:
                wandb_charts.log_final(self, self._wandb(trainer), arrays)
            except Exception as error:  # noqa: BLE001 - the run's own error is the one to report
                warnings.warn(f"GradientFlowMonitor: W&B tables not logged ({error})",
                              stacklevel=2)
