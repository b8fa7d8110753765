"""The Hydra app: compose -> instantiate -> fit -> test -> results.json.

    rnnlab-train data=adding model=lstm model.hidden_size=64
    rnnlab-train -m model=rnn,gru,lstm seed=0,1,2
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import rnnlab.schemas  # noqa: F401  (registers the config schemas before composition)
from rnnlab import console, launch, resume, tracking
from rnnlab.cells import compile_cache
from rnnlab.configdir import CONFIG_DIR
from rnnlab.console import quiet_third_party
from rnnlab.errors import one_line
from rnnlab.models import ConfigError, SequenceModel
from rnnlab.results.references import ReferenceError, parse_references
from rnnlab.results.rowkeys import is_setting, label, run_name, show, swept_keys
from rnnlab.results.runs import flatten
from rnnlab.schemas import check_monitor


def build(cfg: DictConfig, wandb_id: str | None = None):
    """Everything a run needs, built from the config; raises ConfigError with one line.
    ``wandb_id``: the W&B run a resumed run continues."""
    import lightning as L

    from rnnlab.task import SequenceTask

    _check_run_settings(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    try:
        datamodule = instantiate(cfg.data, seed=cfg.seed)
        model_options = OmegaConf.to_container(cfg.model, resolve=True)
        model = SequenceModel(datamodule.spec, **model_options)
        _load_pretrained_embeddings(model, datamodule)
        scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
        task = SequenceTask(model, instantiate(cfg.optimizer), scheduler,
                            monitor=cfg.monitor.metric, monitor_mode=cfg.monitor.mode,
                            divergence_factor=cfg.divergence_factor)
        _check_monitored_metric(cfg, task)
        parse_references(OmegaConf.to_container(cfg.reference, resolve=True)
                         if cfg.get("reference") is not None else None)
        loggers = _loggers(cfg, wandb_id)
        callbacks = _callbacks(cfg, has_logger=bool(loggers))
        trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                              plugins=[resume.AtomicCheckpointIO()])
    except ConfigError:
        raise
    except ReferenceError as error:
        raise ConfigError(str(error)) from error
    except (ValueError, TypeError, RuntimeError, InstantiationException) as error:
        raise ConfigError(one_line(error)) from error
    return datamodule, task, trainer


def _check_run_settings(cfg: DictConfig) -> None:
    """Settings no schema types (top-level keys, the optimizer's lr, the step budget)."""
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
    if cfg.model.get("param_budget") is not None and "model.hidden_size" in swept_keys([_command_line()]):
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
    if ranks is not None and _in_multirun() and "submitit" not in _launcher_target():
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


def _callbacks(cfg: DictConfig, has_logger: bool) -> list:
    callbacks = [SharedRunDir(cfg.paths.output_dir)] if launch.launched_ranks() else []
    for name, callback_cfg in (cfg.get("callbacks") or {}).items():
        # Switching the bar or the loggers off drops what depends on them instead of clashing.
        if not callback_cfg or (name == "progress_bar" and not cfg.trainer.enable_progress_bar):
            continue
        if name == "lr_monitor" and not has_logger:
            continue
        if name == "early_stopping" and callback_cfg.get("patience") is None:
            continue  # patience null: never stop early
        callbacks.append(instantiate(callback_cfg))
    return callbacks


class SharedRunDir:
    """Under ranks a launcher started (torchrun, srun): stop every rank at setup, with the reason,
    unless all of them resolved rank 0's run dir (they resume from, and rank 0 writes to, one
    place). A Lightning callback; built lazily so that this module imports no Lightning."""

    def __new__(cls, output_dir):
        from lightning.pytorch.callbacks import Callback

        class _SharedRunDir(Callback):
            def setup(self, trainer, pl_module, stage):
                mine = str(Path(output_dir).resolve())
                root = trainer.strategy.broadcast(mine, src=0)
                # every rank decides alike (a rank raising alone would leave the others waiting)
                if trainer.strategy.reduce_boolean_decision(root != mine, all=False):
                    raise ConfigError(
                        f"the {trainer.world_size} ranks resolved different run dirs (rank 0: "
                        f"{root}): give them one, e.g. hydra.run.dir=<dir> (torchrun: or "
                        "--rdzv-id=<id>, which names the dir)")

        return _SharedRunDir()


def _rank() -> int:
    """This process's global rank among the ranks a launcher started (0 without one)."""
    ranks = launch.launched_ranks()
    return 0 if ranks is None else ranks[0]


def _loggers(cfg: DictConfig, wandb_id: str | None = None) -> list:
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if not logger_cfg:
            continue
        extra: dict[str, Any] = {}
        if name == "wandb":
            settings, swept = _swept_settings(cfg)
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


def _command_line() -> list[str]:
    """The overrides this run's command line gave (empty when not under Hydra: a caller composed
    the config itself)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def _swept_settings(cfg: DictConfig) -> tuple[dict[str, Any], list[str]]:
    """The run's flat settings and the config keys its command line set (what a sweep varies)."""
    settings = flatten(OmegaConf.to_container(cfg, resolve=True))
    swept = [k for k in swept_keys([_command_line()]) if k in settings and is_setting(k)]
    return settings, swept


def _log_run_metadata(trainer, cfg: DictConfig, task, commit: str | None) -> None:
    # The resolved config at top level, so dashboards filter on model.cell, data.seq_len, ...
    settings, swept = _swept_settings(cfg)
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


def _launcher_target() -> str:
    """The Hydra launcher's class path ("" when not under Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    return str(HydraConfig.get().launcher.get("_target_", ""))


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _record_refused(cfg: DictConfig, output_dir: Path, error: ConfigError,
                    started: float) -> dict[str, Any]:
    """results.json of a sweep job whose settings were refused before it trained."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation that cannot resolve: keep it unresolved
        config = OmegaConf.to_container(cfg, resolve=False)
    results = {"status": "failed", "error": f"ConfigError: {error}", "metrics": {},
               "num_params": None, "hidden_size": None,
               "wall_time_s": round(time.perf_counter() - started, 3), "steps": 0,
               "seed": cfg.get("seed"), "config": config, "versions": tracking.versions(),
               "git_commit": tracking.git_commit()}
    if _rank() == 0:  # the other ranks of a launch share this dir
        tracking.write_json_atomic(output_dir / "results.json", results)
    return results


def _finished_result(output_dir: Path) -> dict[str, Any] | None:
    """results.json of a run in this dir that completed or diverged (None otherwise)."""
    try:
        results = tracking.read_results(output_dir)
    except (OSError, ValueError):
        return None
    return results if results.get("status") in ("completed", "diverged") else None


_BUDGET = ("max_epochs", "max_steps")


def _limit(value) -> float:
    """A trainer limit as a number (None and -1 mean none: infinity)."""
    return math.inf if value is None or value == -1 else float(value)


def _larger_budget(finished: dict[str, Any], cfg: DictConfig, output_dir: Path) -> str | None:
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
    checkpoint = resume.last_checkpoint(output_dir)
    if checkpoint is None:
        raise ConfigError(f"{said}: {output_dir / resume.CHECKPOINT} is missing, so the run "
                          "cannot train on from where it ended")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
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


def _ignored_settings(finished: dict[str, Any], cfg: DictConfig) -> str:
    """The command line's settings that differ from what the finished run recorded ("" if none):
    a finished run is kept as it was, and says so rather than ignore them silently."""
    recorded = flatten(finished.get("config") or {})
    settings, swept = _swept_settings(cfg)
    return ", ".join(f"{key}={show(key, settings[key])} (ran with {show(key, recorded.get(key))})"
                     for key in swept if recorded.get(key) != settings[key])


def _clear_unfinished_attempt(output_dir: Path) -> None:
    """An earlier attempt that was stopped before its first checkpoint starts over: its partial
    CSV log (which the logger would append to), offline W&B folders, checkpoints and gradient
    record go."""
    for leftover in ("csv/metrics.csv", "gradflow.npz"):
        (output_dir / leftover).unlink(missing_ok=True)
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    resume.discard_offline_runs(output_dir)


def _remove_if_empty_run_dir(output_dir: Path) -> None:
    """A run that never started leaves no folder that looks like a run."""
    leftovers = [p for p in output_dir.iterdir()
                 if p.name not in (".hydra", ".tmp") and p.suffix != ".log"]
    if not leftovers:
        shutil.rmtree(output_dir, ignore_errors=True)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration; write and return its results.json payload."""
    quiet_third_party()
    with tracking.temp_files_in(cfg.paths.output_dir), tracking.lightning_lines_in_run_log():
        try:
            return _run(cfg)
        finally:
            # the run's CUDA graphs (RNNLAB_CUDA_GRAPHS) hold device memory: the next job of a
            # sweep in this process starts without them
            from rnnlab.cells import loop_graph

            loop_graph.clear()


def _run(cfg: DictConfig) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    user_wandb_mode = os.environ.get("WANDB_MODE")
    started = time.perf_counter()
    finished = _finished_result(output_dir)
    if finished is not None:
        # A run that ended as a result is kept, not trained again (a sweep rerun on its sweep dir,
        # or resume=, continues only the jobs that did not finish) -- unless it is given a larger
        # budget: then it trains on from its last.ckpt.
        try:
            budget = _larger_budget(finished, cfg, output_dir)
        except ConfigError as error:
            if _in_multirun():  # the job keeps its result; the sweep goes on
                tracking.say(f"rnnlab-train: {output_dir} already {finished['status']}: kept "
                             f"({error})")
                return finished
            print(f"rnnlab-train: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        if budget is None:
            ignored = _ignored_settings(finished, cfg)
            tracking.say(f"rnnlab-train: {output_dir} already {finished['status']}: kept"
                         + (f"; ignored (a finished run keeps its settings): {ignored}"
                            if ignored else ""))
            return finished
        tracking.say(f"rnnlab-train: {output_dir} completed after {finished.get('steps')} steps: "
                     f"training on to {budget}")
    checkpoint = resume.last_checkpoint(output_dir)
    wandb_id = resume.wandb_run_id(output_dir)
    if checkpoint is None and _rank() == 0:
        _clear_unfinished_attempt(output_dir)
    # A W&B run still open in this process (a caller that never finished it) would be reused by
    # the WandbLogger: close it so this job is its own run.
    tracking.finish_wandb()
    try:
        datamodule, task, trainer = build(cfg, wandb_id=wandb_id)
        if checkpoint is not None:
            step = int(resume.check_checkpoint_fits(checkpoint, task).get("global_step", 0))
            tracking.say(f"rnnlab-train: resuming {output_dir} at step {step} ({resume.CHECKPOINT})")
    except ConfigError as error:
        tracking.finish_wandb(exit_code=1)
        if _in_multirun():
            # One job of a sweep: recorded as failed with its reason (main() prints it), and the
            # sweep goes on.
            return _record_refused(cfg, output_dir, error, started)
        print(f"rnnlab-train: error: {error}", file=sys.stderr)
        if _rank() == 0:
            _remove_if_empty_run_dir(output_dir)
        raise SystemExit(2) from None

    commit = tracking.git_commit()
    eager_mark = compile_cache.eager_calls()
    results: dict[str, Any] = {"status": "completed"}
    final_metrics: dict[str, float] = {}
    exit_code = 0
    try:
        _log_run_metadata(trainer, cfg, task, commit)
        # weights_only=False: last.ckpt holds RNG states and the gradflow records (our own file).
        with console.resuming() if checkpoint else contextlib.nullcontext():
            trainer.fit(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=False)
        # Testing resets callback_metrics: keep the final train/val values first.
        final_metrics.update(_floats(trainer.callback_metrics))
        if launch.launched_ranks() is not None:
            _leave_process_group()
        # Under launched ranks rank 0 alone tests, on one device (see _test_trainer).
        if cfg.test and _rank() == 0:
            # Loading the best checkpoint would also roll back the best-so-far record.
            fit_record = task.get_extra_state()
            tester = _test_trainer(cfg, trainer)
            tester.test(task, datamodule=datamodule, ckpt_path=_best_checkpoint(trainer),
                        weights_only=False,
                        verbose=False)
            task.set_extra_state(fit_record)
            final_metrics.update(_floats(tester.callback_metrics))
    except Exception as error:  # recorded in results.json, then re-raised (unless diverged)
        divergence = _divergence(error)
        results["status"] = "diverged" if divergence else "failed"
        results["error"] = divergence or f"{type(error).__name__}: {one_line(error)}"
        exit_code = 1
        if not divergence:
            _finish(cfg, output_dir, results, final_metrics, task, trainer, started, commit,
                           user_wandb_mode, exit_code, eager_mark)
            if isinstance(error, ConfigError) and not _in_multirun():
                # a setting found wrong once the run started (e.g. ranks without one run dir)
                print(f"rnnlab-train: error: {error}", file=sys.stderr)
                raise SystemExit(2) from None
            raise
    return _finish(cfg, output_dir, results, final_metrics, task, trainer, started, commit,
                           user_wandb_mode, exit_code, eager_mark)


def _leave_process_group() -> None:
    """After a fit under launched ranks the ranks part: rank 0 then tests alone on one device, and
    a metric that synced over the group would wait forever for ranks that have left."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _divergence(error: BaseException) -> str | None:
    """"Diverged: <cause>" when ``error`` is a divergence -- raised here, or in a spawned DDP
    worker, whose exception reaches this process only as the text of its traceback."""
    from rnnlab.task import Diverged

    if isinstance(error, Diverged):
        return f"Diverged: {one_line(error)}"
    if type(error).__name__ == "ProcessRaisedException":
        causes = re.findall(r"^rnnlab\.task\.Diverged: (.+)$", str(error), re.MULTILINE)
        if causes:
            return f"Diverged: {causes[-1].strip()}"
    return None


def _steps(results: dict[str, Any], task) -> int:
    """Training steps taken; a divergence in a spawned DDP worker is known here only by its
    message (the worker's counter stays there), which names the step."""
    steps = int(task.num_train_steps)
    if not steps and results["status"] == "diverged":
        found = re.search(r" at step (\d+)", results.get("error", ""))
        steps = int(found.group(1)) if found else 0
    return steps


def _last_logged(output_dir: Path) -> dict[str, float]:
    """The last finite value of every metric in the run's CSV log: what a spawned DDP worker
    logged before it stopped, which this process never saw."""
    path = output_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return {}
    import pandas as pd

    frame = pd.read_csv(path).drop(columns=["epoch", "step"], errors="ignore")
    frame = frame.apply(pd.to_numeric, errors="coerce")
    last = {}
    for column in frame.columns:
        values = frame[column].dropna()
        values = values[values.map(math.isfinite)]
        if len(values):
            last[column] = float(values.iloc[-1])
    return last


def _test_trainer(cfg: DictConfig, trainer):
    """The trainer that runs the test split.

    After a spawn-based DDP fit the test runs on one device in this process: a second spawn would
    restart every logger in fresh workers, and a single device sees each test example exactly once
    (DistributedSampler pads the last batch with repeats). Under ranks a launcher started, rank 0
    tests on one device the same way (the others skip the test).
    """
    if "spawn" not in str(cfg.trainer.strategy) and launch.launched_ranks() is None:
        return trainer
    for logger in trainer.loggers:
        _adopt_csv_header(logger)
    return instantiate(cfg.trainer, devices=1, strategy="auto", num_nodes=1,
                       logger=trainer.loggers or False, enable_progress_bar=False)


def _adopt_csv_header(logger) -> None:
    """Let this process's CSVLogger know the columns the spawned workers wrote (see
    rnnlab.resume.adopt_csv_header)."""
    from lightning.pytorch.loggers import CSVLogger

    if isinstance(logger, CSVLogger):
        resume.adopt_csv_header(logger.experiment)


def _best_checkpoint(trainer) -> str | None:
    """The file of the checkpoint callback that monitors a metric (not last.ckpt)."""
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "best_model_path", "")
        if getattr(callback, "monitor", None) and path and Path(path).exists():
            return path
    return None


def _floats(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def _finish(cfg, output_dir, results, final_metrics, task, trainer, started, commit, wandb_mode,
            exit_code, eager_mark):
    # What the trainer holds covers a run that stopped early; what was collected wins; a resumed
    # run starts from what the checkpointed process had logged.
    restored = next((c.restored_metrics for c in trainer.callbacks
                     if isinstance(c, resume.RunState)), {})
    metrics = {**restored, **_floats(trainer.callback_metrics), **final_metrics}
    if results["status"] != "completed" and "spawn" in str(cfg.trainer.get("strategy")):
        metrics = {**_last_logged(output_dir), **metrics}
    metrics.update({f"{k}_best": v for k, v in task.best.items()})
    results.update({
        "metrics": dict(sorted(metrics.items())),
        "num_params": task.model.num_params,
        "hidden_size": task.model.hidden_size,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "steps": _steps(results, task),
        "seed": int(cfg.seed),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": tracking.versions(),
        "git_commit": commit,
        # step functions whose compilation failed and that ran eager in this run (slower: a
        # benchmark or a reproduction must know); {} when everything compiled or ran as asked
        "compile_fallbacks": compile_cache.eager_fallbacks(eager_mark),
    })
    if cfg.get("reference"):
        results["reference"] = OmegaConf.to_container(cfg.reference, resolve=True)
    if _rank() == 0:  # the other ranks of a launch share this dir and write nothing of their own
        tracking.write_json_atomic(output_dir / "results.json", results)
    # The W&B run says how it ended too (a DDP worker's divergence included), for run tables.
    tracking.finish_wandb(exit_code=exit_code, summary={
        "status": results["status"], "error": results.get("error", ""),
        "steps": results["steps"]})
    # WandbLogger(offline=True) sets WANDB_MODE for the whole process: restore what the user had,
    # so the next job of a multirun decides online/offline afresh. (WANDB_SERVICE and the like
    # stay: spawned DDP workers attach to the run through them.)
    if wandb_mode is None:
        os.environ.pop("WANDB_MODE", None)
    else:
        os.environ["WANDB_MODE"] = wandb_mode
    return results


def report_line(results: dict[str, Any], output_dir: Path) -> str:
    """What a run ends with on the console: its status, key metrics and where everything is."""
    from rnnlab.results.aggregate import BASELINE_METRIC, VERDICT_METRIC, present_metrics, verdict

    metrics = results.get("metrics", {})
    parts = [f"{m} {metrics[m]:.4g}" for m in present_metrics(metrics)]
    if BASELINE_METRIC in metrics and VERDICT_METRIC in metrics:
        said = verdict(metrics[VERDICT_METRIC], metrics[BASELINE_METRIC])
        parts.append(f"baseline {metrics[BASELINE_METRIC]:.4g} ({said})")
    text = f"rnnlab-train: {results['status']} after {results.get('steps', 0)} steps"
    text += f" in {results.get('wall_time_s', 0):.0f} s"
    if parts:
        text += ": " + ", ".join(parts)
    if results.get("error"):
        text += f"; {results['error']}"
    if results.get("compile_fallbacks"):
        text += "\n  ran eager, compilation failed (slower): " + "; ".join(
            f"{name} ({error})" for name, error in results["compile_fallbacks"].items())
    text += f"\n  run dir: {output_dir}"
    if (output_dir / "gradflow.npz").exists():
        text += f"\n  gradient flow: {plot_command(output_dir)}"
    return text


def plot_command(output_dir: Path) -> str:
    """A command that plots the run's gradient flow from this shell: the console script beside
    this interpreter (a venv's bin need not be on PATH), else this interpreter with -m."""
    script = Path(sys.executable).parent / "rnnlab-plot-gradflow"
    words = [str(script)] if script.is_file() else [sys.executable, "-m", "rnnlab.gradflow.cli"]
    relative = os.path.relpath(words[0])
    if not relative.startswith(".."):
        words[0] = relative if os.sep in relative else f".{os.sep}{relative}"
    return shlex.join([*words, str(output_dir)])


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    try:
        results = run(cfg)
    except Exception as error:
        if not _in_multirun():
            raise
        # run() has recorded the failure in results.json; the sweep goes on with the next job
        # and its summary lists this one (the sweep then exits non-zero).
        results = tracking.read_results(cfg.paths.output_dir) if (
            Path(cfg.paths.output_dir) / "results.json").exists() else {
            "status": "failed", "error": f"{type(error).__name__}: {one_line(error)}"}
    if _rank() != 0:  # rank 0 reports for all of them
        return None
    tracking.say(report_line(results, Path(cfg.paths.output_dir)), file=sys.stdout)
    if results["status"] != "completed":  # the one line that says so, where errors go
        tracking.say(f"rnnlab-train: {results['status']}: {results.get('error')}")
    # The optimised value for hparams_search sweepers; NaN marks a diverged trial.
    value = results["metrics"].get(cfg.monitor.metric) if results["status"] == "completed" else None
    return float("nan") if value is None else value


if __name__ == "__main__":
    # `python -m rnnlab.train`: rnnlab-train's entry point, which imports this module as
    # rnnlab.train -- the one already running, not a second copy of it
    sys.modules.setdefault("rnnlab.train", sys.modules[__name__])
    from rnnlab.cli import main

    main()
