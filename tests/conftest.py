"""Shared fixtures: compose rnnlab's real config tree and run it in-process or as the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from rnnlab.config.configdir import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]
CONF = Path(CONFIG_DIR)

# Two xdist workers on two cores: one thread each, or OpenMP's spinning threads oversubscribe
# the cores and every step gets many times slower (subprocesses inherit the variable).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Keep the scratch cells' compile out of the general suite; the cell tests exercise it.
os.environ.setdefault("RNNLAB_COMPILE", "0")
# ... and the native loops, which run whatever RNNLAB_COMPILE: tests/test_cells_native.py opts in
os.environ.setdefault("RNNLAB_NATIVE", "0")


def compose_config(overrides: list[str], run_dir: Path) -> DictConfig:
    """The config `rnnlab-train <overrides>` would run, writing into ``run_dir``."""
    import rnnlab.config.schemas  # noqa: F401  (the schemas and resolvers the tree composes with)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.runtime.cwd = str(run_dir)
        cfg.hydra.job.num = 0
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir / "logs")
        cfg.paths.data_dir = os.environ.get("RNNLAB_DATA", str(run_dir / "data"))
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, request):
    """One data cache for the whole session (shared by pytest-xdist workers)."""
    base = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):
        base = base.parent
    path = base / "rnnlab-data"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def run_training(tmp_path):
    """Run one configuration in-process; returns (results, run_dir)."""
    from rnnlab.run.train import run

    def _run(overrides: list[str], name: str = "run"):
        run_dir = tmp_path / name
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = compose_config(overrides, run_dir)
        return run(cfg), run_dir

    return _run


def cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600):
    """Run `python -m rnnlab.train ARGS` as a user would; returns the CompletedProcess."""
    # WANDB_SERVICE: the runs start their own W&B service, as from a shell (not this process's).
    full_env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR",
                                                                  "WANDB_SERVICE")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "rnnlab.train", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)
