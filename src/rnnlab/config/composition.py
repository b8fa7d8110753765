"""Refuse a command line Hydra cannot compose in one line, exit 2, before anything runs.

Hydra reports composition errors itself in 5-13 lines with exit 1, after the sweep has started
(a typo in the second value of a sweep ends the sweep half-way). ``rnnlab-train`` composes the
command line first (a sweep: every value of every swept setting, up to ``MAX_JOBS``
compositions; search sweepers such as optuna: their fixed overrides) and turns the first failure
into one line naming the setting and what is allowed. ``HYDRA_FULL_ERROR=1`` skips this and lets
Hydra report as it does.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from rnnlab.config.accelerator import accelerator_error, runs_here
from rnnlab.config.errors import one_line
from rnnlab.config.folders import write_error
from rnnlab.config.model_checks import model_error
from rnnlab.config.schemas import bound_error, check_monitor, setting_error, unknown_model_setting

MAX_JOBS = 256


def command_line_error(argv: list[str], config_dir: str, config_name: str) -> str | None:
    """The one-line reason ``argv`` does not compose, or None when every job composes (or when
    Hydra is asked for something else: --help, --cfg, shell completion, ...)."""
    return check_command_line(argv, config_dir, config_name)[0]


def check_command_line(argv: list[str], config_dir: str, config_name: str
                       ) -> tuple[str | None, Path | None]:
    """:func:`command_line_error`, and the log dir (``paths.log_dir``) of the first job that
    composed (None where none did, or it does not resolve yet)."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return None, None  # --help, --cfg job, --info, -c: Hydra's own business
    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    try:
        jobs = _jobs(overrides, multirun)
    except OverrideParseException as error:
        return f"cannot read the command line: {one_line(error)}", None
    log_dir = None
    refused_jobs: list[str] = []  # the multirun's jobs the model would refuse, each one line
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            for job in jobs:
                try:
                    cfg = compose(config_name=config_name, overrides=job)
                except (HydraException, OmegaConfBaseException, ValueError) as error:
                    return _explain(error, job, config_name), log_dir
                if log_dir is None:
                    log_dir = _log_dir(cfg)
                try:
                    check_monitor(cfg)
                except ValueError as error:
                    return str(error), log_dir
                reason = unknown_model_setting(cfg) or bound_error(cfg) or setting_error(cfg)
                if reason is None and (refused := model_error(cfg, job)) is not None:
                    if not multirun:
                        return refused, log_dir
                    # a form one cell of the sweep lacks (model=lstm,gru model.variant=mgu) is
                    # that job's failure, recorded by it, while the others train (README: a bad
                    # job never stops a sweep); a sweep none of whose jobs could train is refused
                    refused_jobs.append(refused)
                    continue
                reason = reason or accelerator_error(cfg, job) or (
                    _data_error(cfg) if runs_here(job) else None)
                if reason is not None:
                    return reason, log_dir
    finally:
        GlobalHydra.instance().clear()
    if refused_jobs and len(refused_jobs) == len(jobs):
        return refused_jobs[0], log_dir
    return None, log_dir


def _log_dir(cfg) -> Path | None:
    try:
        value = OmegaConf.select(cfg, "paths.log_dir", throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        return None
    return Path(value).expanduser().absolute() if isinstance(value, str) and value else None


def _data_error(cfg) -> str | None:
    """A synthetic task's data that would not fit in memory (rnnlab.data.memory), or a real
    dataset not prepared in a data root that cannot be written (rnnlab.data.root), refused here,
    before torch loads, rather than by the data module after the 10 s that importing it takes
    (only where the jobs run on this machine: a SLURM sweep's nodes have their own memory and
    folders, and the data module checks them there)."""
    from rnnlab.data.memory import config_memory_error
    from rnnlab.data.root import config_data_root_error

    try:
        data = OmegaConf.to_container(cfg.data, resolve=True) if "data" in cfg else None
    except OmegaConfBaseException:  # an interpolation that does not resolve: the run says so
        return None
    if not isinstance(data, dict):
        return None
    return config_memory_error(data) or config_data_root_error(data)


def _jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists to compose: the sweep's first job, then that job with each other value
    of each swept setting (a typo in any value shows, without composing the whole grid)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    if not multirun or not any(o.is_sweep_override() for o in parsed):
        return [overrides]
    search = any(o.key_or_group in ("hydra/sweeper", "hparams_search")
                 or o.get_key_element().startswith("hydra.sweeper") for o in parsed)
    if search:  # a search sweeper draws its own values: check what is fixed
        return [[o.input_line for o in parsed if not o.is_sweep_override()]]
    choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
               if o.is_sweep_override() else [o.input_line] for o in parsed]
    first = [values[0] for values in choices]
    jobs = [first]
    for i, values in enumerate(choices):
        jobs += [first[:i] + [value] + first[i + 1:] for value in values[1:]]
    return jobs[:MAX_JOBS]


def _explain(error: BaseException, job: list[str], config_name: str) -> str:
    if isinstance(error, MissingConfigException):
        return _missing_option(error, job)
    cause = error.__cause__ if isinstance(error, ConfigCompositionException) else error
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and getattr(cause, "full_key",
                                                                             None):
        return _unknown_key(cause, job, config_name)
    lines = [one_line(error).removeprefix("Error merging override ")]
    if cause is not None and cause is not error:
        lines.append(one_line(cause))
    return ": ".join(line.rstrip(".") for line in lines if line)


def _missing_option(error: MissingConfigException, job: list[str]) -> str:
    missing = (error.missing_cfg_file or "").strip("/")
    group, _, name = missing.rpartition("/")
    options = list(error.options or [])
    if not group:  # the primary config or a defaults entry that names nothing
        return one_line(error)
    text = f"{group}={name}: no such option in '{group}'"
    close = difflib.get_close_matches(name, options, n=1)
    if close:
        text += f" (did you mean {group}={close[0]}?)"
    return text + (f"; available: {', '.join(options)}" if options else "")


def _unknown_key(error: OmegaConfBaseException, job: list[str], config_name: str) -> str:
    key = str(error.full_key)
    parent, _, leaf = key.rpartition(".")
    setting = next((o for o in job if o.lstrip("+~").split("=", 1)[0] == key), key)
    allowed, structured = _keys_under(parent, [o for o in job if o is not setting], config_name)
    text = f"{key} is not a setting"
    if parent:
        text += f" of {parent}"
    close = difflib.get_close_matches(leaf, allowed, n=1)
    if close:
        text += f" (did you mean {parent + '.' if parent else ''}{close[0]}?)"
    if allowed:
        text += f"; its settings: {', '.join(allowed)}"
    if structured:  # a schema's node: a "+" key would be refused as well
        return text
    return text + f" (to add a new key: +{setting.lstrip('+~')})"


def _keys_under(parent: str, job: list[str], config_name: str) -> tuple[list[str], bool]:
    """The keys of the node ``parent`` and whether a schema types it (then no key can be added)."""
    try:
        cfg = compose(config_name=config_name, overrides=job)
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:  # noqa: BLE001 - the suggestion is a courtesy; the refusal stands
        return [], False
    if not OmegaConf.is_dict(node):
        return [], False
    typed = OmegaConf.get_type(node)
    return sorted(str(k) for k in node), typed not in (None, dict)


def refuse_bad_command_line(config_dir: str, config_name: str) -> Path | None:
    """Exit 2 with one line when ``sys.argv`` does not compose (``rnnlab-train``'s first step);
    else the log dir of its (first) run, where known."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return None
    reason, log_dir = check_command_line(sys.argv[1:], config_dir, config_name)
    if reason is None and log_dir is not None and not any(
            a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in sys.argv[1:]):
        reason = log_dir_error(log_dir)
    if reason is not None:
        print(f"rnnlab-train: error: {reason}", file=sys.stderr)
        raise SystemExit(2)
    return log_dir


def log_dir_error(log_dir: Path) -> str | None:
    """The one-line refusal of a log dir that cannot be written (a read-only file system, no
    permission, a file in the way; :func:`rnnlab.config.folders.write_error`), None when it can
    be."""
    why = write_error(log_dir)
    if why is None:
        return None
    return (f"paths.log_dir={log_dir} (RNNLAB_LOGS) cannot be written ({why}); set "
            "RNNLAB_LOGS or paths.log_dir to a writable folder")
