"""A run's pieces built from its config: the data module, the task (model, optimizer, scheduler),
the loggers, the callbacks and the trainer; settings no schema can check are checked here.
Every refusal is a ConfigError of one line."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.config import hydra_runtime, launch
from rnnlab.config.errors import ConfigError, one_line
from rnnlab.config.naming import label, run_name, show, swept_keys
from rnnlab.config.references import ReferenceError, parse_references
from rnnlab.config.schemas import check_monitor
from rnnlab.model.models import SequenceModel
from rnnlab.run import distributed, resume


def build(cfg: DictConfig, wandb_id: str | None = None):
    """Everything a run needs, built from the config; raises ConfigError with one line.
    ``wandb_id``: the W&B run a resumed run continues."""
    datamodule, task, loggers, callbacks = build_parts(cfg, wandb_id)
    with _config_errors():
        # One line per job in a sweep: no 14-line model summary in each job.
        quiet = {"enable_model_summary": False} if hydra_runtime.in_multirun() else {}
        trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                              plugins=[resume.AtomicCheckpointIO()], **quiet)
    return datamodule, task, trainer


def build_parts(cfg: DictConfig, wandb_id: str | None = None):
    """A run's data module, task, loggers and callbacks -- all but the trainer, which a pack
    (rnnlab.run.pack) shares between its members -- built in the same order from the same seed,
    so a run's initial weights and RNG streams are the same wherever it trains."""
    import lightning as L

    from rnnlab.model.task import SequenceTask

    check_run_settings(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    with _config_errors():
        datamodule = instantiate(cfg.data, seed=cfg.seed)
        model_options = OmegaConf.to_container(cfg.model, resolve=True)
        model = SequenceModel(datamodule.spec, **model_options)
        _load_pretrained_embeddings(model, datamodule)
        scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
        task = SequenceTask(model, instantiate(cfg.optimizer), scheduler,
                            monitor=cfg.monitor.metric, monitor_mode=cfg.monitor.mode,
                            divergence_factor=cfg.divergence_factor)
        _check_monitored_metric(cfg, task)
        _check_solved_stop(cfg, datamodule)
        parse_references(OmegaConf.to_container(cfg.reference, resolve=True)
                         if cfg.get("reference") is not None else None)
        loggers = make_loggers(cfg, wandb_id)
        callbacks = make_callbacks(cfg, has_logger=bool(loggers))
    return datamodule, task, loggers, callbacks


@contextlib.contextmanager
def _config_errors():
    """What building raises for a bad setting, as one ConfigError line."""
    try:
        yield
    except ConfigError:
        raise
    except ReferenceError as error:
        raise ConfigError(str(error)) from error
    except (ValueError, TypeError, RuntimeError, InstantiationException) as error:
        raise ConfigError(one_line(error)) from error


def check_run_settings(cfg: DictConfig) -> None:
    """Settings no schema types (top-level keys, the optimizer's lr, the step budget), and a
    GPU asked for where there is none."""
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator") or "")
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator} (trainer=gpu, trainer=ddp) "
                              "needs a CUDA GPU and none is available here; use trainer=cpu "
                              "(or trainer=ddp_cpu)")
    seed = cfg.seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    try:
        check_monitor(cfg)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    patience = OmegaConf.select(cfg, "callbacks.early_stopping.patience")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                 or patience < 1):
        raise ConfigError("callbacks.early_stopping.patience must be an integer >= 1 (validations "
                          f"without improvement) or null (never stop early), got {patience!r}")
    lr = cfg.optimizer.get("lr")
    if isinstance(lr, (int, float)) and not lr > 0:
        raise ConfigError(f"optimizer.lr must be > 0, got {lr}")
    factor = cfg.get("divergence_factor")
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))
                               or not factor > 1):
        raise ConfigError(f"divergence_factor must be a number > 1 or null, got {factor!r}")
    if (cfg.model.get("param_budget") is not None
            and "model.hidden_size" in swept_keys([hydra_runtime.command_line()])):
        raise ConfigError("model.hidden_size and model.param_budget are both set: the budget "
                          "solves for the hidden size; give one of them")
    if cfg.trainer.get("max_steps") == 0 or cfg.trainer.get("max_epochs") == 0:
        raise ConfigError("trainer.max_steps=0 / trainer.max_epochs=0 would train nothing: use "
                          ">= 1 (max_steps=-1 means no step limit)")
    ranks = launch.launched_ranks()
    if ranks is not None and "spawn" in str(cfg.trainer.get("strategy")):
        raise ConfigError(
            f"trainer.strategy={cfg.trainer.strategy}: this process is rank {ranks[0]} of "
            f"{ranks[1]} that {launch.launcher_name()} started, and each would spawn its own "
            "workers: use trainer.strategy=ddp (one process per device, as launched)")
    if (ranks is not None and hydra_runtime.in_multirun()
            and "submitit" not in hydra_runtime.launcher_target()):
        # the ranks would run the jobs one after another and have to form a new process group
        # per job, which torch cannot do reliably (stale rendezvous keys: the next job hangs)
        raise ConfigError(
            f"a sweep (-m) under {launch.launcher_name()} runs its jobs one after another in the "
            "same ranks: start one launch per job, or sweep with hydra/launcher=submitit_slurm "
            "and hydra.launcher.tasks_per_node=<GPUs per node> (each job its own srun)")


def _check_monitored_metric(cfg: DictConfig, task) -> None:
    """``monitor.metric`` must be logged while training (else Lightning stops after the first
    epoch with a traceback): train/ and val/ metrics of this task, or a gradient-flow summary."""
    metric = str(cfg.monitor.metric)
    gradflow = bool((cfg.get("callbacks") or {}).get("gradflow"))
    if metric.startswith("gradflow/") and gradflow:
        return  # per-layer summaries (docs/gradflow.md); their names depend on the layers
    logged = [*task.logged_metrics("train"), *task.logged_metrics("val")]
    if metric not in logged:
        raise ConfigError(f"monitor.metric={metric} is not logged during training with "
                          f"data={cfg.data.name}; it logs {', '.join(logged)}"
                          + (" and gradflow/<layer>/<summary>" if gradflow else ""))


def _check_solved_stop(cfg: DictConfig, datamodule) -> None:
    """Stopping at "solved" needs a task with a baseline loss to be solved against."""
    stop = OmegaConf.select(cfg, "callbacks.solved_stop")
    if stop and stop.get("consecutive") is not None and "loss" not in datamodule.spec.baselines:
        raise ConfigError(f"callbacks.solved_stop.consecutive={stop.consecutive}: data="
                          f"{cfg.data.name} has no baseline loss to be solved against (threshold "
                          "tasks: copy, adding, parity, ...); leave it null")


def _load_pretrained_embeddings(model: SequenceModel, datamodule) -> None:
    """Copy a dataset's pre-trained word vectors (data.embeddings_path) into the embedding."""
    vectors = getattr(datamodule, "pretrained_embeddings", None)
    if vectors is None:
        return
    if model.encoder_kind != "embedding" or vectors.shape[1] != model.encoder.embedding_dim:
        raise ConfigError(f"data.embeddings_path has {vectors.shape[1]}-dim vectors: set "
                          f"model.encoder=embedding model.embedding_dim={vectors.shape[1]}")
    with torch.no_grad():
        model.encoder.weight.copy_(vectors)


def make_callbacks(cfg: DictConfig, has_logger: bool) -> list:
    callbacks = [distributed.SharedRunDir(cfg.paths.output_dir)] if launch.launched_ranks() else []
    for name, callback_cfg in (cfg.get("callbacks") or {}).items():
        # Switching the bar or the loggers off drops what depends on them instead of clashing.
        if not callback_cfg or (name == "progress_bar" and not cfg.trainer.enable_progress_bar):
            continue
        if name == "lr_monitor" and not has_logger:
            continue
        if name == "early_stopping" and callback_cfg.get("patience") is None:
            continue  # patience null: never stop early
        if name == "solved_stop" and callback_cfg.get("consecutive") is None:
            continue  # consecutive null: train the whole budget
        callbacks.append(instantiate(callback_cfg))
    return callbacks


def make_loggers(cfg: DictConfig, wandb_id: str | None = None) -> list:
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if not logger_cfg:
            continue
        extra: dict[str, Any] = {}
        if name == "wandb":
            settings, swept = hydra_runtime.swept_settings(cfg)
            extra["tags"] = sorted({*cfg.tags, cfg.model.cell, cfg.model.impl, cfg.data.name,
                                    *(f"{label(k, swept)}={show(k, settings.get(k))}"[:64]
                                      for k in swept)})
            extra["name"] = run_name(settings, swept, cfg.seed)
            # The table row of the run (its name without the seed): W&B groups seeds by it.
            extra["job_type"] = run_name(settings, swept, None)
            if wandb_id:
                extra["id"] = wandb_id
        loggers.append(instantiate(logger_cfg, **extra))
    return loggers


def log_run_metadata(trainer, cfg: DictConfig, task, commit: str | None) -> None:
    # The resolved config at top level, so dashboards filter on model.cell, data.seq_len, ...
    settings, swept = hydra_runtime.swept_settings(cfg)
    params = {**OmegaConf.to_container(cfg, resolve=True), "num_params": task.model.num_params,
              "hidden_size": task.model.hidden_size, "git_commit": commit,
              # The table row (W&B job_type too): dashboards group panels by this config key.
              "row": run_name(settings, swept, None)}
    for logger in trainer.loggers:
        logger.log_hyperparams(params)
        if hasattr(logger.experiment, "define_metric"):  # W&B
            _define_best_summaries(logger.experiment, task)


def _define_best_summaries(run, task) -> None:
    """W&B summaries of validation metrics keep the best value beside the last one (min for
    losses, max for accuracy/F1, the monitor's mode for its metric), so a runs table can sort by
    best val/loss."""
    for name in task.logged_metrics("val"):
        run.define_metric(name, summary=f"{task.mode_of(name)},last")
