"""Ranks started by a launcher (torchrun, srun): who they are, the run dir they share, what is
refused. The end-to-end torchrun run is in test_gradflow_run.py (beside the ddp_spawn one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import compose_config
from omegaconf import OmegaConf

import rnnlab.config.schemas  # noqa: F401  (registers the rnnlab_stamp resolver resolved below)
from rnnlab.config import launch
from rnnlab.config.configdir import CONFIG_DIR

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID",
               "SLURM_STEP_ID", "TORCHELASTIC_RUN_ID")


@pytest.fixture
def env(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))

    return set_env


@pytest.mark.parametrize(("values", "expected"), [
    ({}, None),
    ({"RANK": 1, "WORLD_SIZE": 2}, (1, 2)),
    ({"RANK": 0, "WORLD_SIZE": 1}, None),  # one rank: nothing to share
    ({"SLURM_PROCID": 3, "SLURM_NTASKS": 4}, (3, 4)),
    ({"SLURM_NTASKS": 4}, None),  # an salloc shell: no task of srun
    ({"RANK": "x", "WORLD_SIZE": 2}, None),
])
def test_launched_ranks(env, values, expected):
    env(**values)
    assert launch.launched_ranks() == expected


@pytest.mark.parametrize(("values", "expected"), [
    ({}, None),  # the time
    ({"RANK": 0, "WORLD_SIZE": 2, "TORCHELASTIC_RUN_ID": "c927e4c4"}, "torchrun-c927e4c4"),
    ({"RANK": 0, "WORLD_SIZE": 2, "TORCHELASTIC_RUN_ID": "none"}, None),  # not an id
    ({"SLURM_PROCID": 1, "SLURM_NTASKS": 4, "SLURM_JOB_ID": 77, "SLURM_STEP_ID": 2},
     "slurm-77.2"),
    ({"TORCHELASTIC_RUN_ID": "c927e4c4"}, None),  # one process: the time
])
def test_every_rank_of_a_launch_resolves_one_run_dir(env, values, expected):
    env(**values)
    stamp = launch.run_stamp("%Y-%m-%d_%H-%M-%S-%f")
    if expected is None:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}", stamp)
    else:
        assert stamp == expected
    # the run and sweep dirs of the config tree end in that stamp
    hydra_conf = OmegaConf.load(Path(CONFIG_DIR) / "hydra" / "default.yaml")
    for node in (hydra_conf.run, hydra_conf.sweep):
        last = OmegaConf.to_container(node, resolve=False)["dir"].rsplit("/", 1)[-1]
        assert last == "${rnnlab_stamp:%Y-%m-%d_%H-%M-%S-%f}"
        if expected is not None:
            assert OmegaConf.create({"d": last}).d == expected


def test_ddp_spawn_under_launched_ranks_is_refused_with_one_line(env, tmp_path):
    from rnnlab.config.errors import ConfigError
    from rnnlab.run.build import check_run_settings

    cfg = compose_config(["trainer=ddp_cpu"], tmp_path)
    check_run_settings(cfg)  # fine as one process
    env(RANK=1, WORLD_SIZE=2)
    with pytest.raises(ConfigError, match=r"^trainer.strategy=ddp_spawn: this process is rank 1 "
                                          r"of 2 that torchrun started.*use trainer.strategy=ddp"):
        check_run_settings(cfg)
    check_run_settings(compose_config(["trainer=ddp_cpu", "trainer.strategy=ddp"], tmp_path))


def test_a_sweep_inside_one_launch_is_refused_unless_submitit_gives_each_job_its_srun(
    env, tmp_path, monkeypatch
):
    from rnnlab.config import hydra_runtime
    from rnnlab.config.errors import ConfigError
    from rnnlab.run import build

    cfg = compose_config(["trainer=ddp_cpu", "trainer.strategy=ddp"], tmp_path)
    env(RANK=0, WORLD_SIZE=2)
    monkeypatch.setattr(hydra_runtime, "in_multirun", lambda: True)
    monkeypatch.setattr(hydra_runtime, "launcher_target",
                        lambda: "hydra._internal.core_plugins.basic_launcher.BasicLauncher")
    with pytest.raises(ConfigError, match=r"^a sweep \(-m\) under torchrun runs its jobs one after "
                                          r"another.*hydra/launcher=submitit_slurm"):
        build.check_run_settings(cfg)
    monkeypatch.setattr(hydra_runtime, "launcher_target", lambda: (
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"))
    build.check_run_settings(cfg)  # a submitit job is one srun of its own
