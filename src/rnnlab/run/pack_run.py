"""Train a pack of runs (rnnlab.run.pack) from their configs: what rnnlab.run.train does for one
run -- lock the run dir, build, fit, test with the best checkpoint, write results.json -- done for
each member, with one trainer for all of them."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.config.errors import ConfigError
from rnnlab.run import console, dirlock, resume, rundir, tracking
from rnnlab.run.record import RunRecord, floats


def _set_hydra_config(hydra_cfg: DictConfig | None) -> None:
    """Hydra's config of the member's job (its overrides name its W&B run and table row)."""
    if hydra_cfg is None:
        return
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(hydra_cfg)


def run_pack(cfgs: list[DictConfig], hydra_cfgs: list[DictConfig] | None = None,
             batched: bool | None = None) -> list[dict[str, Any]]:
    """Train ``cfgs`` as one pack; each member's results.json payload, in order. Every member's
    run dir must be new (no results, no checkpoint): the launcher runs the others solo.
    ``batched``: the members' forward as one computation over a member dimension where they
    stack (rnnlab.run.pack.PackTask; None: on a GPU only -- on the CPU each member's own
    forward is bit-exact and as fast)."""
    import lightning as L  # noqa: F401  (after the config's refusals, as rnnlab-train)
    from hydra.utils import instantiate

    from rnnlab.cells import announce  # the cells' slow first steps (a native build, a compile)
    from rnnlab.run import pack
    from rnnlab.run.build import build_parts, log_run_metadata

    console.quiet_third_party()
    announce.set_printer(lambda line: tracking.say(f"rnnlab-train: {line}"))
    hydra_cfgs = hydra_cfgs or [None] * len(cfgs)
    for cfg, hydra_cfg in zip(cfgs, hydra_cfgs):
        # ${hydra:runtime.output_dir} and the like are each job's own: resolved now, while
        # Hydra's config is that job's, the config no longer depends on which job's is set
        _set_hydra_config(hydra_cfg)
        OmegaConf.resolve(cfg)
    results: list[dict[str, Any] | None] = [None] * len(cfgs)
    dirs = [Path(cfg.paths.output_dir) for cfg in cfgs]
    with contextlib.ExitStack() as stack:
        for output_dir in dirs:  # each run dir is this pack's alone
            dirlock.acquire(output_dir)
            stack.callback(dirlock.release, output_dir)
        stack.enter_context(tracking.temp_files_in(dirs[0]))
        stack.enter_context(resume.stop_on_signals())
        tracking.finish_wandb()
        records, members, wandb_mode = [], [], os.environ.get("WANDB_MODE")
        to_start: list = []  # the members' W&B loggers, started together once all are built
        for index, (cfg, hydra_cfg) in enumerate(zip(cfgs, hydra_cfgs)):
            _set_hydra_config(hydra_cfg)
            rundir.clear_unfinished_attempt(dirs[index])
            record = RunRecord(cfg)
            try:
                datamodule, task, loggers, callbacks = build_parts(cfg)
            except ConfigError as error:  # this member is refused; the others train
                results[index] = record.refused(error)
                continue
            # the pack draws no bar per member (a sweep's jobs have none either)
            callbacks = [c for c in callbacks
                         if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
            trainer_cfg = cfg.trainer
            members.append(pack.Member(len(members), dirs[index], datamodule, task, callbacks,
                                       loggers, trainer_cfg.get("gradient_clip_val"),
                                       trainer_cfg.get("gradient_clip_algorithm"), job=index))
            wandb_loggers = tracking.wandb_loggers(loggers)
            if wandb_loggers:
                # its W&B run, a run of its own beside its pack-mates', in its own folders
                members[-1].env = {name: os.environ.get(name) for name in tracking.WANDB_DIRS}
                to_start += wandb_loggers
            records.append(record)
        if not members:
            return results
        tracking.start_wandb_runs(to_start)
        first = cfgs[members[0].job]
        trainer = instantiate(first.trainer, logger=[pack.PackLogger(members)],
                              callbacks=[pack.PackHooks()],
                              plugins=[resume.AtomicCheckpointIO()], gradient_clip_val=None,
                              enable_checkpointing=False, enable_progress_bar=False,
                              enable_model_summary=False, default_root_dir=str(dirs[0]))
        if batched is None:
            batched = str(first.trainer.get("accelerator")) in ("gpu", "cuda")
        task = pack.PackTask(members, batched=batched)
        pack_id = uuid.uuid4().hex[:12]
        for member, record in zip(members, records):
            # the loop it shared: a member's wall_time_s is its pack's time, not its own CPU time
            record.extra["pack"] = {"id": pack_id, "members": len(members),
                                    "index": member.index}
            _set_hydra_config(hydra_cfgs[member.job])
            member.view = pack.MemberTrainer(trainer, member)
            member.train_loader = member.datamodule.train_dataloader()
            record.training_starts()
            log_run_metadata(member.view, cfgs[member.job], member.task, record.commit)
        tracking.say(f"rnnlab-train: a pack of {len(members)} runs in one loop: "
                     + ", ".join(str(dirs[m.job]) for m in members))
        trainer.fit(task, train_dataloaders=pack.Zipped([m.train_loader for m in members]),
                    val_dataloaders=pack.Zipped([m.datamodule.val_dataloader()
                                                 for m in members]),
                    weights_only=True)
        _test(trainer, task, members, cfgs)
        for member, record in zip(members, records):
            final = dict(member.fit_metrics)
            if member in task.testing:
                final.update(floats(member.view.callback_metrics))
            results[member.job] = record.ended(member.task, member.view, final, member.error)
        if wandb_mode is None:
            os.environ.pop("WANDB_MODE", None)
    return results


def _test(trainer, task, members, cfgs) -> None:
    """The test split, each member with its best checkpoint (its solo run's rule)."""
    from rnnlab.run import pack
    from rnnlab.run.train import best_checkpoint

    tested = [m for m in members if m.error is None and cfgs[m.job].test]
    if not tested:
        return
    fit_records = {}
    for member in tested:
        best = best_checkpoint(member.view)
        # loading the best checkpoint would also roll back the best-so-far record
        fit_records[member.index] = member.task.get_extra_state()
        if best:
            from lightning.fabric.utilities.cloud_io import _load

            # weights_only: a checkpoint is untrusted (rnnlab.config.untrusted allow-lists
            # what rnnlab's hold beyond tensors)
            member.task.load_state_dict(_load(best, weights_only=True)["state_dict"])
    task.testing = tested
    tracking.say(f"rnnlab-train: testing the best checkpoints of {len(tested)} runs on the test "
                 "split ...")
    trainer.test(task, dataloaders=pack.Zipped([m.datamodule.test_dataloader()
                                                if m in tested else None for m in members]),
                 verbose=False)
    for member in tested:
        member.task.set_extra_state(fit_records[member.index])


def run_pack_job(cfgs: list[DictConfig], hydra_cfgs: list[DictConfig], where: dict[str, Any],
                 singleton_state: Any = None) -> list[dict[str, Any]]:
    """One pack in a worker process of ``hydra/launcher=pack``: Hydra's state as the launcher
    had it, then ``where`` (rnnlab.run.pack_plan.placement): a GPU index, or a thread count."""
    from omegaconf import open_dict

    if singleton_state is not None:
        from hydra.core.singleton import Singleton
        from hydra.core.utils import setup_globals

        setup_globals()
        Singleton.set_state(singleton_state)
    if "threads" in where:
        import torch

        torch.set_num_threads(int(where["threads"]))
    if "device" in where:
        for cfg in cfgs:
            with open_dict(cfg):
                cfg.trainer.devices = [int(where["device"])]
    return run_pack(cfgs, hydra_cfgs, where.get("batched"))
