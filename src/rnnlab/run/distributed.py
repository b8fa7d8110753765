"""The workarounds a run needs under DDP (spawned workers, or ranks that torchrun/srun started),
beside rnnlab.config.launch, which says who started the ranks."""

from __future__ import annotations

import math
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from rnnlab.config import launch
from rnnlab.config.errors import ConfigError
from rnnlab.run import resume
from rnnlab.run.rundir import RunDir


class SharedRunDir:
    """Under ranks a launcher started (torchrun, srun): stop every rank at setup, with the reason,
    unless all of them resolved rank 0's run dir (they resume from, and rank 0 writes to, one
    place). A Lightning callback, made on demand (only launched runs use it)."""

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


def rank() -> int:
    """This process's global rank among the ranks a launcher started (0 without one)."""
    ranks = launch.launched_ranks()
    return 0 if ranks is None else ranks[0]


def leave_process_group() -> None:
    """After a fit under launched ranks the ranks part: rank 0 then tests alone on one device, and
    a metric that synced over the group would wait forever for ranks that have left."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def tester_for(cfg: DictConfig, trainer):
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
    rnnlab.run.resume.adopt_csv_header)."""
    from lightning.pytorch.loggers import CSVLogger

    if isinstance(logger, CSVLogger):
        resume.adopt_csv_header(logger.experiment)


def last_logged(output_dir: Path) -> dict[str, float]:
    """The last finite value of every metric in the run's CSV log: what a spawned DDP worker
    logged before it stopped, which this process never saw."""
    path = RunDir(output_dir).metrics_csv
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
