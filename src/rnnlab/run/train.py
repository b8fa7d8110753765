"""The Hydra app: compose -> build -> fit -> test -> record.

    rnnlab-train data=adding model=lstm model.hidden_size=64
    rnnlab-train -m model=rnn,gru,lstm seed=0,1,2

What each step needs lives beside it in rnnlab.run: build (the pieces, and the settings no
schema checks), rundir (a finished, unfinished or refused run dir), distributed (DDP's
workarounds), record (results.json, the one writer). The command line's checks before any of this
loads: rnnlab.commands.train; ``python -m rnnlab.train`` is the same command.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import rnnlab.config.schemas  # noqa: F401  (registers the config schemas before composition)
from rnnlab.config import launch
from rnnlab.config.configdir import CONFIG_DIR
from rnnlab.config.errors import ConfigError, one_line
from rnnlab.config.hydra_runtime import RESUME_MARK, in_multirun
from rnnlab.config.schemas import out_of_bounds
from rnnlab.run import console, dirlock, distributed, resume, rundir, tracking
from rnnlab.run.build import build, log_run_metadata
from rnnlab.run.record import RunRecord, floats
from rnnlab.run.rundir import RunDir


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration; write and return its results.json payload."""
    console.quiet_third_party()
    from rnnlab.cells import announce  # the cells' slow first steps (a native build, a compile)

    announce.set_printer(lambda line: tracking.say(f"rnnlab-train: {line}"))
    output_dir = Path(cfg.paths.output_dir)
    try:  # the run dir is this run's alone (rnnlab.run.dirlock; a no-op where already held)
        if not in_multirun():
            dirlock.check_sweep_not_in_use(output_dir)
        dirlock.acquire(output_dir)
    except dirlock.InUse as error:
        if in_multirun():  # this job's dir is another process's: left as it is, the sweep goes on
            tracking.say(f"rnnlab-train: {error}")
            return {"status": "failed", "error": str(error), "metrics": {}}
        _refuse(error)
    with contextlib.ExitStack() as stack:
        stack.callback(dirlock.release, output_dir)
        stack.enter_context(tracking.temp_files_in(output_dir))
        stack.enter_context(tracking.lightning_lines_in_run_log())
        stack.enter_context(resume.stop_on_signals())  # SIGTERM, SIGINT: resume.Stopped
        try:
            return _run(cfg)
        finally:
            # the run's CUDA graphs (RNNLAB_CUDA_GRAPHS) hold device memory: the next job of a
            # sweep in this process starts without them
            from rnnlab.cells import loop_graph

            loop_graph.clear()


def _run(cfg: DictConfig) -> dict[str, Any]:
    output_dir, record = Path(cfg.paths.output_dir), RunRecord(cfg)
    run_dir = RunDir(output_dir)
    finished = run_dir.finished()
    if finished is not None and not _trains_on(finished, cfg, output_dir):
        return finished
    checkpoint = run_dir.last_checkpoint()
    wandb_id = run_dir.wandb_run_id()  # the first attempt's: one run, one W&B run
    if checkpoint is None and distributed.rank() == 0:
        if rundir.clear_unfinished_attempt(output_dir):
            tracking.say(f"rnnlab-train: {output_dir}: its earlier attempt left no checkpoint: "
                         "starting over from step 0" + (f" (the same W&B run, {wandb_id})"
                                                        if wandb_id else ""))
    if distributed.rank() == 0:  # a job a resumed sweep starts: its .hydra/, as Hydra writes it
        rundir.record_new_job(output_dir, cfg)
    # A W&B run still open in this process (a caller that never finished it) would be reused by
    # the WandbLogger: close it so this job is its own run.
    tracking.finish_wandb()
    try:
        # (the command line's composition refuses it too; here for the Python API)
        clip = out_of_bounds("trainer.gradient_clip_val", cfg.trainer.get("gradient_clip_val"))
        if clip is not None:
            raise ConfigError(clip)
        # Read before anything is built: a checkpoint of the run (last.ckpt, and best.ckpt that
        # the test loads) holding more than rnnlab writes is refused here (rnnlab.config.untrusted).
        state = resume.read_checkpoints(checkpoint) if checkpoint is not None else None
        datamodule, task, trainer = build(cfg, wandb_id=wandb_id)
        if checkpoint is not None:
            step = int(resume.check_checkpoint_fits(checkpoint, task, state)
                       .get("global_step", 0))
            tracking.say(f"rnnlab-train: resuming {output_dir} at step {step} "
                         f"({RunDir.LAST})")
    except ConfigError as error:
        tracking.finish_wandb(exit_code=1)
        if in_multirun():  # one job of a sweep: recorded as failed, and the sweep goes on
            return record.refused(error)
        if distributed.rank() == 0:
            rundir.remove_if_empty_run_dir(output_dir)
            _remove_empty_parents(output_dir, Path(cfg.paths.log_dir))
        _refuse(error)

    if distributed.rank() == 0:
        _record_resume(cfg, output_dir)
    record.training_starts()
    final_metrics: dict[str, float] = {}
    try:
        log_run_metadata(trainer, cfg, task, record.commit)
        _fit_and_test(cfg, datamodule, task, trainer, checkpoint, final_metrics)
    except resume.Stopped as stopped:  # unfinished: no results.json; last.ckpt resumes it
        tracking.finish_wandb(exit_code=stopped.exit_code)
        raise
    except Exception as error:  # recorded in results.json, then re-raised (unless diverged)
        results = record.ended(task, trainer, final_metrics, error)
        if results["status"] == "diverged":
            return results
        if isinstance(error, ConfigError) and not in_multirun():
            _refuse(error)  # a setting found wrong once the run started (ranks, one run dir)
        raise
    return record.ended(task, trainer, final_metrics)


def _remove_empty_parents(output_dir: Path, log_dir: Path) -> None:
    """The folders a refused run's dir was made in (logs/runs/<experiment_name>/), when empty:
    a refusal leaves nothing under the log dir."""
    if output_dir.exists():
        return
    try:
        parents = output_dir.resolve().relative_to(log_dir.resolve()).parents
    except (ValueError, OSError):  # a run dir outside the log dir: its parents are not ours
        return
    for relative in list(parents)[:-1]:  # up to, not including, the log dir itself
        try:
            (log_dir.resolve() / relative).rmdir()
        except OSError:  # not empty (another run), or gone
            return


def _trains_on(finished: dict[str, Any], cfg: DictConfig, output_dir: Path) -> bool:
    """A run that ended as a result is kept, not trained again (a sweep rerun on its sweep dir,
    or resume=, continues only the jobs that did not finish) -- unless it is given a larger
    budget: then it trains on from its last.ckpt. Never a setting ignored silently."""
    kept = f"rnnlab-train: {output_dir} already {finished['status']}: kept"
    try:
        budget = rundir.larger_budget(finished, cfg, output_dir)
    except ConfigError as error:
        if not in_multirun():
            _refuse(error)
        tracking.say(f"{kept} ({error})")  # the job keeps its result; the sweep goes on
        return False
    if budget is None:
        ignored = rundir.ignored_settings(finished, cfg)
        tracking.say(kept + (f"; ignored (a finished run keeps its settings): {ignored}"
                             if ignored else ""))
        return False
    tracking.say(f"rnnlab-train: {output_dir} completed after {finished.get('steps')} steps: "
                 f"training on to {budget}")
    return True


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _record_resume(cfg: DictConfig, output_dir: Path) -> None:
    """``resume=<run dir>`` with settings of its own, accepted (it trains): the run's .hydra/
    (config.yaml, overrides.yaml, hydra.yaml, which Hydra left as they were for a resume) now
    say what it runs with, so a later plain ``resume=`` replays them, and .hydra/resumes.yaml
    keeps what each resume changed and what it was before. A resume that changes nothing, is
    refused or keeps a finished run leaves .hydra/ as it was."""
    import datetime

    import yaml
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from rnnlab.run.atomic import atomic_open

    run_dir = RunDir(output_dir)
    saved = run_dir.hydra
    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:  # not under Hydra (the Python API)
        return
    if hydra_cfg.output_subdir is not None or not run_dir.hydra_yaml.is_file():
        return
    listed = run_dir.overrides
    recorded = [str(o) for o in (yaml.safe_load(listed.read_text()) or [])] \
        if listed.is_file() else []
    merged: dict[str, str] = {}  # the last value of each key, in the order first given
    for override in hydra_cfg.overrides.task:
        merged[_override_key(override)] = str(override)
    before = {_override_key(o): o for o in recorded}
    changed = [o for key, o in merged.items() if before.get(key) != o]
    if not changed:
        return
    overrides = list(merged.values())
    hydra_node = OmegaConf.to_container(hydra_cfg, resolve=False)
    hydra_node["output_subdir"] = saved.name
    hydra_node["overrides"]["task"] = overrides
    hydra_node["overrides"]["hydra"] = [o for o in hydra_node["overrides"]["hydra"]
                                        if o != RESUME_MARK]
    history = run_dir.resumes
    resumes = (yaml.safe_load(history.read_text()) or []) if history.is_file() else []
    resumes.append({"time": datetime.datetime.now().isoformat(timespec="seconds"),
                    "changed": changed,
                    "before": [before.get(_override_key(o)) for o in changed]})
    hydra_yaml = OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_node}))
    for path, text in ((run_dir.hydra_config, OmegaConf.to_yaml(cfg)),
                       (run_dir.overrides, OmegaConf.to_yaml(OmegaConf.create(overrides))),
                       (run_dir.hydra_yaml, hydra_yaml),
                       (history, yaml.safe_dump(resumes, sort_keys=False))):
        with atomic_open(path) as handle:
            handle.write(text)
    tracking.say(f"rnnlab-train: resume= changed {' '.join(changed)}: recorded in {saved} "
                 "(what it was before: resumes.yaml)")


def _fit_and_test(cfg, datamodule, task, trainer, checkpoint, final_metrics) -> None:
    # weights_only=True: a checkpoint is untrusted (a copied run dir); what rnnlab's hold beyond
    # tensors (RNG states, gradflow records: numpy arrays) is allow-listed
    # (rnnlab.config.untrusted).
    with console.resuming() if checkpoint else contextlib.nullcontext():
        trainer.fit(task, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
    # Testing resets callback_metrics: keep the final train/val values first.
    final_metrics.update(floats(trainer.callback_metrics))
    if launch.launched_ranks() is not None:
        distributed.leave_process_group()
    # Under launched ranks rank 0 alone tests, on one device (see distributed.tester_for).
    if cfg.test and distributed.rank() == 0:
        # Loading the best checkpoint would also roll back the best-so-far record.
        fit_record = task.get_extra_state()
        tester = distributed.tester_for(cfg, trainer)
        best = best_checkpoint(trainer)
        tracking.say(f"rnnlab-train: testing {'the best checkpoint' if best else 'the weights'} "
                     "on the test split ...")
        tester.test(task, datamodule=datamodule, ckpt_path=best,
                    weights_only=True, verbose=False)
        task.set_extra_state(fit_record)
        final_metrics.update(floats(tester.callback_metrics))


def best_checkpoint(trainer) -> str | None:
    """The file of the checkpoint callback that monitors a metric (not last.ckpt): what the test
    split runs with, for a run alone or a member of a pack (its view of the trainer)."""
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "best_model_path", "")
        if getattr(callback, "monitor", None) and path and Path(path).exists():
            return path
    return None


def _refuse(error: ConfigError):
    print(f"rnnlab-train: error: {error}", file=sys.stderr)
    raise SystemExit(2) from None


def _stopped(stopped: resume.Stopped, output_dir: Path):
    """The one status line of a run stopped by SIGTERM / SIGINT, then exit 128 + its number
    (a sweep stops too: its finished jobs are kept, resume= continues the others)."""
    checkpoint = RunDir(output_dir).last_checkpoint()
    where = (f"{output_dir} is unfinished, {RunDir.LAST} at step "
             f"{resume.checkpoint_step(checkpoint)}" if checkpoint is not None else
             f"{output_dir} stopped before its first checkpoint")
    if distributed.rank() == 0:
        tracking.say(f"rnnlab-train: stopped by {stopped.name}: {where}; rnnlab-train "
                     f"resume={output_dir} continues it")
    raise SystemExit(stopped.exit_code) from None


def _failed(error: Exception, output_dir: Path):
    """A single run that failed: its traceback into train.log, one status line, exit 1."""
    import traceback

    log = RunDir(output_dir).train_log
    if log.parent.is_dir():
        with log.open("a") as handle:
            traceback.print_exception(error, file=handle)
    if distributed.rank() == 0:
        tracking.say(f"rnnlab-train: failed: {type(error).__name__}: {one_line(error)} "
                     f"(traceback in {log})")
    raise SystemExit(1) from None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    try:
        results = run(cfg)
    except resume.Stopped as stopped:
        _stopped(stopped, Path(cfg.paths.output_dir))
    except Exception as error:
        if not in_multirun():
            _failed(error, Path(cfg.paths.output_dir))
        # run() has recorded the failure in results.json; the sweep goes on with the next job
        # and its summary lists this one (the sweep then exits non-zero).
        run_dir = RunDir(cfg.paths.output_dir)
        results = run_dir.read_results() if run_dir.results.exists() else {
            "status": "failed", "error": f"{type(error).__name__}: {one_line(error)}"}
    if distributed.rank() != 0:  # rank 0 reports for all of them
        return None
    return job_value(cfg, results)


def job_value(cfg: DictConfig, results: dict[str, Any]) -> float:
    """A job's report line (and the line that says why, for one that did not complete) and the
    value it returns to the sweeper -- for a run trained alone or in a pack (rnnlab.run.pack)."""
    tracking.say(console.report_line(results, Path(cfg.paths.output_dir)), file=sys.stdout)
    if results["status"] != "completed":  # the one line that says so, where errors go
        tracking.say(f"rnnlab-train: {results['status']}: {results.get('error')}")
    # The optimised value for hparams_search sweepers; NaN marks a diverged trial.
    value = results["metrics"].get(cfg.monitor.metric) if results["status"] == "completed" else None
    return float("nan") if value is None else value

