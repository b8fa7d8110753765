"""Structured-config schemas: typos and wrong types in overrides fail at start with Hydra's
one-line message naming the key (``model.hiden_size=8``, ``model.hidden_size=abc``).

Each YAML file in conf/ lists its schema first in its defaults list. The schemas live in the
``schema/<group>`` groups of the ConfigStore, so they never appear among a group's choices;
the cells' schemas are the ``model`` group's options themselves (no YAML: rnnlab.config.cellspecs).
The datasets' schemas live in :mod:`rnnlab.data.schemas` (imported here, never the reverse).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

import rnnlab.data.schemas  # noqa: F401  (the datasets' schemas register themselves)
from rnnlab.config.cellspecs import SPECS as CELL_SPECS
from rnnlab.config.errors import check_choice
from rnnlab.config.launch import run_stamp


def _store(group: str, name: str, node: Any) -> None:
    ConfigStore.instance().store(group=f"schema/{group}", name=name, node=node, package=group)


# ----------------------------------------------------------------------------------- model
# The cells' schemas live with the cells' registry (rnnlab.config.cellspecs): one entry per cell.
MODEL_SCHEMAS = {name: cell.schema for name, cell in CELL_SPECS.items()}


# ------------------------------------------------------------------------------- optimizer
@dataclass
class OptimizerConfig:
    _target_: str = "???"
    _partial_: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class RMSpropConfig(OptimizerConfig):
    _target_: str = "torch.optim.RMSprop"
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False


# --------------------------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 10
    max_steps: int = -1
    min_epochs: Optional[int] = None
    gradient_clip_val: Optional[float] = 1.0  # clip the total gradient norm (null: never)
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1
    val_check_interval: Any = None
    check_val_every_n_epoch: Optional[int] = 1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    log_every_n_steps: int = 10
    fast_dev_run: Any = False
    deterministic: Any = False
    benchmark: Optional[bool] = None
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    num_sanity_val_steps: int = 2
    profiler: Optional[str] = None
    default_root_dir: Optional[str] = None


# --------------------------------------------------------------------------------- monitor
@dataclass
class MonitorConfig:
    """What "best" means (conf/train.yaml says where it is used)."""

    metric: str = "val/loss"
    # min | max; by default the metric's own direction (monitor_mode below)
    mode: str = "${monitor_mode:${monitor.metric}}"


# Numeric ranges of settings, checked when a command line is composed (before torch loads: a
# bad value is refused in a second, not after the ~4 s of importing Lightning): key -> (lowest,
# highest, whether the highest itself is excluded); None: no bound. The modules that take these
# settings check them again for the Python API, where no command line is composed.
BOUNDS: dict[str, tuple[float | None, float | None, bool]] = {
    "model.hidden_size": (1, None, False),
    "model.num_layers": (1, None, False),
    "model.embedding_dim": (1, None, False),
    "model.param_budget": (1, None, False),
    "model.dropout": (0, 1, True),
    "model.zoneout": (0, 1, True),
    "data.seq_len": (1, None, False),
    "data.batch_size": (1, None, False),
    "data.num_workers": (0, None, False),
    "data.train_size": (1, None, False),
    "data.val_size": (1, None, False),
    "data.test_size": (1, None, False),
    "data.copy_length": (1, None, False),
    "data.horizon": (1, None, False),
    "data.input_length": (1, None, False),
    "optimizer.lr": (0, None, False),
    "optimizer.momentum": (0, None, False),
    "optimizer.weight_decay": (0, None, False),
    "scheduler.step_size": (1, None, False),
    "trainer.gradient_clip_val": (0, None, False),
}


def out_of_bounds(key: str, value) -> str | None:
    """One line saying that ``value`` is outside the range :data:`BOUNDS` gives ``key`` (None if
    it is inside, or not a number): the one wording of a bound, for the command line and for
    the modules' own checks in the Python API."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high, open_high = BOUNDS[key]
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key} must be a finite number, got {value}"
    if key == "optimizer.lr" and not value > 0:
        return f"optimizer.lr must be > 0, got {value}"
    if key == "trainer.gradient_clip_val" and not value > 0:  # Lightning would not clip at all
        return f"trainer.gradient_clip_val must be > 0 (null turns clipping off), got {value}"
    if low is not None and value < low and high is None:
        return f"{key} must be >= {low}, got {value}"
    if (low is not None and value < low) or (
            high is not None and (value >= high if open_high else value > high)):
        return f"{key} must be in [{low}, {high}{')' if open_high else ']'}, got {value}"
    return None


def bound_error(cfg) -> str | None:
    """The first setting of ``cfg`` outside its range in :data:`BOUNDS`, as one line (None if
    all are inside). Settings the config does not have, nulls and interpolations that do not
    resolve yet are left to the modules."""
    for key in BOUNDS:
        try:
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        except Exception:  # noqa: BLE001 - a node that is not a mapping: the modules say so
            value = None
        if (error := out_of_bounds(key, value)) is not None:
            return error
    return None


def setting_error(cfg) -> str | None:
    """A top-level setting that no schema checks, wrong (one line; None if all are right):
    ``seed`` not an integer, ``test`` not a boolean, early stopping's patience below 1, a
    divergence factor not above 1, an ``experiment_name`` that is not one folder name (it
    names the folder under the log dir: ``../..`` would write outside it)."""
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"seed must be an integer, got {seed!r}"
    test = cfg.get("test")
    if not isinstance(test, bool):
        return f"test must be true or false, got {test!r}"
    # (rnnlab.run.build checks these two again, in the same words, for the Python API)
    patience = OmegaConf.select(cfg, "callbacks.early_stopping.patience",
                                throw_on_resolution_failure=False)
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                 or patience < 1):
        return ("callbacks.early_stopping.patience must be an integer >= 1 (validations "
                f"without improvement) or null (never stop early), got {patience!r}")
    factor = cfg.get("divergence_factor")
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))
                               or not factor > 1):
        return f"divergence_factor must be a number > 1 or null, got {factor!r}"
    name = OmegaConf.select(cfg, "experiment_name", throw_on_resolution_failure=False)
    if isinstance(name, str) and (name in ("", ".", "..") or "/" in name or "\\" in name):
        return (f"experiment_name={name!r} must be one folder name (no '/', not '.' or '..'): "
                "it names the folder under paths.log_dir")
    return None


def unknown_model_setting(cfg) -> str | None:
    """A ``+model.<key>`` that the cell's schema does not have, as one line (None if none):
    Hydra lets ``+`` add a key even to a structured node; the model would refuse it only after
    torch loads."""
    model = cfg.get("model")
    schema = MODEL_SCHEMAS.get(str(model.get("cell"))) if OmegaConf.is_dict(model) else None
    if schema is None:
        return None
    import dataclasses
    import difflib

    allowed = sorted(f.name for f in dataclasses.fields(schema))
    for key in model:
        if key not in allowed:
            text = f"model.{key} is not a setting of model={model.cell}"
            close = difflib.get_close_matches(str(key), allowed, n=1)
            if close:
                text += f" (did you mean model.{close[0]}?)"
            return text + f"; its settings: {', '.join(allowed)}"
    return None


def register_schemas() -> None:
    for cell, schema in MODEL_SCHEMAS.items():
        # the `model` group's options themselves (model=gru), not only their schemas: a cell
        # is its rnnlab.config.cellspecs entry, with no YAML file of its own
        ConfigStore.instance().store(group="model", name=cell, node=schema, package="model")
    _store("optimizer", "adam", AdamConfig)
    _store("optimizer", "rmsprop", RMSpropConfig)
    _store("optimizer", "sgd", SGDConfig)
    _store("trainer", "trainer", TrainerConfig)
    _store("monitor", "monitor", MonitorConfig)


# Metrics where higher is better (the rest, losses, are minimised): a metric's default mode,
# so `monitor.mode` follows `monitor.metric` unless set, and the best value of every other
# validation metric (results.json, W&B summaries) is taken the right way.
HIGHER_IS_BETTER = ("acc", "f1")
MONITOR_MODES = ("min", "max")


def monitor_mode(metric: str) -> str:
    """"max" for accuracy-like metrics (val/acc, val/f1), "min" otherwise (losses)."""
    return "max" if str(metric).rsplit("/", 1)[-1] in HIGHER_IS_BETTER else "min"


def check_monitor(cfg) -> None:
    """Raise a one-line ValueError unless ``cfg.monitor`` is {metric, mode} with mode min or
    max. (The root config has no schema, so ``monitor=val/acc`` replaces the node instead of
    being refused by Hydra.)"""
    monitor = cfg.get("monitor")
    if not OmegaConf.is_dict(monitor):
        raise ValueError(f"monitor={monitor} is not a setting: monitor is {{metric, mode}}; use "
                         f"monitor.metric={monitor} (and monitor.mode=min|max if needed)")
    check_choice("monitor.mode", monitor.mode, MONITOR_MODES)


register_schemas()
if not OmegaConf.has_resolver("monitor_mode"):
    OmegaConf.register_new_resolver("monitor_mode", monitor_mode)
# The launch directory, usable where ${hydra:runtime.cwd} is not yet set (the sweep dir is
# resolved before any job starts).
if not OmegaConf.has_resolver("rnnlab_cwd"):
    OmegaConf.register_new_resolver("rnnlab_cwd", os.getcwd)
# The run/sweep dir stamp: the time, or the launch id every rank of a torchrun/srun launch shares.
# Cached like Hydra's ${now:}: a sweep's jobs (submitit's included) reuse the launcher's value.
if not OmegaConf.has_resolver("rnnlab_stamp"):
    OmegaConf.register_new_resolver("rnnlab_stamp", run_stamp, use_cache=True)
