"""``hydra/launcher=pack``: a multirun's compatible jobs trained in packs (rnnlab.run.pack), each
job still its own run with its own JobReturn -- so sweepers, the sweep summary, ``make
reproduce`` and ``rnnlab-compare`` see ordinary jobs.

    rnnlab-train -m experiment=quickstart seed=0,1,2,3,4,5,6,7 hydra/launcher=pack

Options (conf/hydra/launcher/pack.yaml): ``size``, the most members of one pack, and
``parallel``, how many packs run at once (null: one per GPU with trainer=gpu, else one per CPU
core, one thread each). A job that cannot join a pack -- one with a result or a checkpoint (kept,
or resumed alone), a scheduler, several devices -- runs alone, as the basic launcher runs it, and
the launcher says why in one line.

Hydra imports every module under hydra_plugins when it starts: this one imports neither torch nor
rnnlab until it launches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def _resolved(task_cfg: DictConfig) -> dict[str, Any]:
    """The task function of the launcher's first pass: the job's resolved config (its run dir
    made, its .hydra/ written, as for any job), nothing trained. Resolved in place, while Hydra's
    config is the job's (its run dir is ${hydra:runtime.output_dir})."""
    from rnnlab.run.rundir import record_new_job

    record_new_job(task_cfg.paths.output_dir, task_cfg)  # a resumed sweep's new job: its .hydra/
    OmegaConf.resolve(task_cfg)
    return OmegaConf.to_container(task_cfg)


class PackLauncher(Launcher):
    def __init__(self, size: int = 8, parallel: int | None = None,
                 batched: bool | None = None) -> None:
        super().__init__()
        self.size, self.parallel, self.batched = size, parallel, batched
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def _job(self, sweep_config: DictConfig, hydra_context: HydraContext,
             task_function: TaskFunction, **options) -> JobReturn:
        return run_job(hydra_context=hydra_context, task_function=task_function,
                       config=sweep_config, job_dir_key="hydra.sweep.dir",
                       job_subdir_key="hydra.sweep.subdir", **options)

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra.core.singleton import Singleton
        from hydra.core.utils import JobReturn as Return

        from rnnlab.run import pack_plan

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally, in packs of at most {self.size}")
        # First pass: each job's dir and resolved config, with no callback told (the sweep's
        # progress counts the jobs that ended, below).
        from hydra._internal.callbacks import Callbacks

        quiet = HydraContext(config_loader=self.hydra_context.config_loader,
                             callbacks=Callbacks())
        configs, prepared, keys = [], [], []
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            ret = self._job(sweep_config, quiet, _resolved, configure_logging=False)
            configs.append(sweep_config)
            prepared.append(ret)
            key = None
            if ret.status == JobStatus.COMPLETED:
                resolved = ret.return_value
                reason = pack_plan.solo_reason(resolved, resolved["paths"]["output_dir"])
                if reason is not None:
                    print(f"[pack] job #{idx} runs alone: {reason}", flush=True)
                else:
                    key = pack_plan.pack_key(resolved)
            keys.append(key)

        first = next((r.return_value for r in prepared if r.status == JobStatus.COMPLETED), {})
        accelerator = str((first.get("trainer") or {}).get("accelerator", "cpu"))
        gpus = 0
        if accelerator in ("gpu", "cuda", "auto"):
            import torch

            gpus = torch.cuda.device_count()
        packs = pack_plan.plan(keys, self.size, self.parallel or (gpus if gpus and accelerator
                                                                  != "cpu" else
                                                                  pack_plan.cpu_count()))
        several = [p for p in packs if len(p) > 1]
        at_once, where = pack_plan.placement(len(several), accelerator, gpus,
                                             pack_plan.cpu_count(), self.parallel)
        runs: list[JobReturn | None] = [None] * len(job_overrides)
        callbacks = self.hydra_context.callbacks

        def finished(members: list[int], results: list[dict[str, Any]]) -> None:
            from rnnlab.run.train import job_value

            for index, result in zip(members, results):
                ret = prepared[index]
                value = job_value(ret.cfg, result)
                done = Return(overrides=ret.overrides, cfg=ret.cfg, hydra_cfg=ret.hydra_cfg,
                              working_dir=ret.working_dir, task_name=ret.task_name,
                              status=JobStatus.COMPLETED, _return_value=value)
                runs[index] = done
                callbacks.on_job_end(config=configs[index], job_return=done)

        def alone(index: int) -> None:
            runs[index] = self._job(configs[index], self.hydra_context, self.task_function)
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)

        for members in several:
            for index in members:
                callbacks.on_job_start(config=configs[index], task_function=self.task_function)
        for place in where:
            place["batched"] = self.batched
        arguments = [([prepared[i].cfg for i in members], [prepared[i].hydra_cfg for i in members])
                     for members in several]
        from rnnlab.run.pack_run import run_pack_job

        if at_once > 1:
            from joblib import Parallel, delayed

            state = Singleton.get_state()
            outcomes = Parallel(n_jobs=at_once, backend="loky", return_as="generator")(
                delayed(_guarded)(run_pack_job, cfgs, hydra_cfgs, place, state)
                for (cfgs, hydra_cfgs), place in zip(arguments, where))
        else:
            outcomes = (_guarded(run_pack_job, cfgs, hydra_cfgs, place)
                        for (cfgs, hydra_cfgs), place in zip(arguments, where))
        for members, outcome in zip(several, outcomes):
            if isinstance(outcome, BaseException):
                jobs = ", #".join(str(initial_job_idx + i) for i in members)
                print(f"[pack] the pack of jobs #{jobs} failed ({type(outcome).__name__}: "
                      f"{outcome}): they run alone", flush=True)
                for index in members:
                    alone(index)
            else:
                finished(members, outcome)
        for members in packs:
            if len(members) == 1:
                alone(members[0])
        return runs  # type: ignore[return-value]


def _guarded(fn, *args):
    """A pack that failed as a whole (not one member: that is recorded in its run) comes back
    as its exception, so its jobs can run alone."""
    try:
        return fn(*args)
    except Exception as error:  # noqa: BLE001
        return error

