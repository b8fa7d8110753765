"""What the Hydra run in progress says about itself: its command line, the settings it sweeps,
its launcher and mode. (Empty answers when not under Hydra: a caller composed the config.)"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.config.naming import flatten, is_setting, swept_keys

# The override resume= of a run dir adds (rnnlab.commands.train.resume_argv): Hydra writes no
# .hydra/ for it, and the run records there what an accepted resume changed (rnnlab.run.train).
RESUME_MARK = "hydra.output_subdir=null"


def command_line() -> list[str]:
    """The overrides this run's command line gave (empty when not under Hydra: a caller composed
    the config itself)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def swept_settings(cfg: DictConfig) -> tuple[dict[str, Any], list[str]]:
    """The run's flat settings and the config keys its command line set (what a sweep varies)."""
    settings = flatten(OmegaConf.to_container(cfg, resolve=True))
    swept = [k for k in swept_keys([command_line()]) if k in settings and is_setting(k)]
    return settings, swept


def launcher_target() -> str:
    """The Hydra launcher's class path ("" when not under Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    return str(HydraConfig.get().launcher.get("_target_", ""))


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
