"""``rnnlab-train``'s entry point: what can be refused is refused before torch and Lightning load.

1. ``resume=<run dir or sweep dir>`` becomes the command line that started the run or sweep,
   pointed at its own directory (rnnlab.run.resume continues it from its last checkpoint);
2. a command line that does not compose is refused in one line, exit 2 (rnnlab.config.composition);
3. only then is the Hydra app (rnnlab.run.train) imported and run.

This module imports Hydra and OmegaConf only: a typo is refused in about a second, not after the
10+ s that importing Lightning takes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.config.configdir import CONFIG_DIR, CONFIG_NAME
from rnnlab.config.errors import ResumeError
from rnnlab.run.rundir import KEPT, RunDir

RESUME_KEY = "resume"


HELP_FLAGS = ("--help", "-h")
# One line per config group on the --help page (a group missing here shows its options only).
GROUP_HELP = {
    "callbacks": "checkpoints, resume state, the gradient-flow monitor, early stopping",
    "data": "the task (synthetic memory tasks and real datasets)",
    "debug": "quick checks: a few batches, overfitting, profiling",
    "experiment": "a paper's comparison, preset (run with -m)",
    "hparams_search": "a search space for -m (grid or optuna)",
    "logger": "where metrics go (W&B offline + CSV by default)",
    "model": "the recurrent cell; model.<setting> as in its schema",
    "optimizer": "optimizer and learning rate",
    "paths": "where runs and data caches live",
    "scheduler": "learning-rate schedule (none by default)",
    "trainer": "Lightning Trainer: device, epochs, precision, clipping",
}


def main():
    """``rnnlab-train``: Hydra's command line, plus ``resume=<run dir or sweep dir>``."""
    if any(flag in sys.argv[1:] for flag in HELP_FLAGS):
        print(help_text([a for a in sys.argv[1:] if a not in HELP_FLAGS]))
        return 0
    try:
        argv, restart = _restart_requested(sys.argv[1:])
        sys.argv[1:] = resume_argv(argv)
        _refuse_dir_in_use(sys.argv[1:])
        if restart:
            start_over_unreadable(Path(_resume_target(argv)).expanduser())
    except ResumeError as error:
        print(f"rnnlab-train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    import rnnlab.config.schemas  # noqa: F401  (the schemas and resolvers the check composes with)
    from rnnlab.config.composition import refuse_bad_command_line
    from rnnlab.config.folders import folders_to_make, remove_made_folders

    log_dir = refuse_bad_command_line(CONFIG_DIR, CONFIG_NAME)
    # A run refused once torch has loaded (exit 2: a data source that cannot be read, ...) has
    # already had its run dir made by Hydra; the run removes that and the empty folders above it
    # up to the log dir, and this the log dir and its parents, if this command made them.
    made = folders_to_make(log_dir) if log_dir is not None else []
    from rnnlab.run.train import hydra_main

    try:
        return hydra_main()
    except SystemExit as exit_:
        if exit_.code == 2:
            remove_made_folders(made)
        raise


def help_text(overrides: list[str]) -> str:
    """``rnnlab-train [overrides] --help``: the config groups and their options (read from the
    conf folder and, for model, the cell registry, so the page never lags behind them), then the
    config these overrides compose.
    (Hydra's own page, which also lists the internal schema groups: ``--hydra-help``.)"""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import rnnlab.config.schemas  # noqa: F401  (schemas and resolvers)

    conf = Path(CONFIG_DIR)
    # model has no folder: its options are the cells of rnnlab.config.cellspecs (stored, not YAML)
    groups = sorted({p.name for p in conf.iterdir() if p.is_dir() and p.name != "hydra"}
                    | {"model"})
    lines = [
        "rnnlab-train: train recurrent cells and compare them (README.md has the whole guide)",
        "",
        "  rnnlab-train [group=option ...] [key=value ...]      one run",
        "  rnnlab-train -m model=rnn,gru,lstm seed=0,1,2        a sweep (comma lists)",
        "  rnnlab-train -m experiment=<preset>                  a paper's comparison",
        "  rnnlab-train resume=<run dir or sweep dir>           continue what was stopped",
        "  rnnlab-train resume=<dir> restart=true               ... starting over the runs whose "
        "checkpoints cannot be read",
        "  rnnlab-train [overrides] --help                      this page, for those overrides",
        "",
        "Config groups (group=option):",
    ]
    for group in groups:
        options = ", ".join(sorted(p.stem for p in (conf / group).glob("*.yaml")))
        if group == "model":  # one line per cell, from its registry entry
            from rnnlab.config.cellspecs import SPECS

            lines.append(f"  {group:<15} {GROUP_HELP[group]}")
            lines += [f"  {'':<15}   {n:<8} {SPECS[n].summary}" for n in sorted(SPECS)]
        elif group in GROUP_HELP:
            lines += [f"  {group:<15} {GROUP_HELP[group]}", f"  {'':<15}   {options}"]
        else:
            lines.append(f"  {group:<15} {options}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=CONFIG_NAME, overrides=overrides)
    except Exception as error:  # noqa: BLE001 - the page still helps; say why there is no config
        from rnnlab.config.composition import command_line_error

        reason = command_line_error(overrides, CONFIG_DIR, CONFIG_NAME) or str(error)
        return "\n".join([*lines, "", f"(no config: {reason})"])
    finally:
        GlobalHydra.instance().clear()
    title = "The config" + (f" of {' '.join(overrides)}" if overrides else " (the defaults)")
    lines += ["", f"{title}; every key can be set with key=value:", "",
              OmegaConf.to_yaml(cfg, resolve=False).rstrip()]
    return "\n".join(lines)


RESTART_KEY = "restart"


def _resume_target(argv: list[str]) -> str | None:
    given = [a.split("=", 1)[1] for a in argv if a.startswith(f"{RESUME_KEY}=")]
    return given[0] if given else None


def _restart_requested(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``restart=true|false`` (a word of ``resume=`` only), and whether it asks
    to start over the runs whose checkpoints cannot be read."""
    given = [a for a in argv if a.startswith(f"{RESTART_KEY}=")]
    if not given or _resume_target(argv) is None:
        return argv, False
    value = given[-1].split("=", 1)[1].strip().lower()
    if value not in ("true", "false"):
        raise ResumeError(f"restart={value!r} is not one of true, false")
    return [a for a in argv if a not in given], value == "true"


def start_over_unreadable(target: Path) -> None:
    """``resume=<dir> restart=true``: each unfinished run of ``target`` (a run dir, or the job
    dirs of a sweep dir) whose last.ckpt cannot be read and has no readable previous.ckpt loses
    both, so it starts over from step 0 (a run with a readable one resumes as usual).
    ResumeError when no run needed it: restart=true never discards a readable checkpoint."""
    from rnnlab.config.untrusted import CorruptCheckpoint, load_checkpoint
    from rnnlab.run.dirlock import hold

    runs = [RunDir(target)] if RunDir(target).is_run() else sorted(
        (RunDir(p) for p in target.iterdir() if RunDir(p).is_run()), key=lambda r: r.path)
    started_over = []
    for run_dir in runs:
        run = run_dir.path
        last, previous = run_dir.checkpoint("last"), run_dir.checkpoint("previous")
        if run_dir.status() in KEPT or not last.is_file():
            continue
        readable = False
        for path in (last, previous):
            try:
                load_checkpoint(path)  # UntrustedContent: refused, nothing removed
                readable = True
                break
            except (CorruptCheckpoint, FileNotFoundError):
                continue
        if readable:
            continue
        with hold(run):
            for path in (last, previous):
                path.unlink(missing_ok=True)
        started_over.append(run)
        print(f"rnnlab-train: restart=true: {last} cannot be read: {run} starts over",
              file=sys.stderr)
    if not started_over:
        raise ResumeError(f"restart=true: every unfinished run of {target} has a readable "
                          "checkpoint (restart=true starts over only those that have none); "
                          "leave it out to resume")


def _refuse_dir_in_use(argv: list[str]) -> None:
    """A run dir or sweep dir the command line names (hydra.run.dir=, hydra.sweep.dir=, as
    resume= gives them) that another process holds is refused now, before anything loads
    (rnnlab.run.dirlock; the Hydra callback DirLock takes the lock itself)."""
    from rnnlab.run.dirlock import InUse, check_free, check_sweep_not_in_use

    multirun = any(a in ("-m", "--multirun") for a in argv)
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    named = [a.split("=", 1)[1] for a in argv if a.startswith(key)]
    if not named or "${" in named[-1]:
        return
    try:
        directory = Path(named[-1]).expanduser()
        if not multirun:
            check_sweep_not_in_use(directory)
        check_free(directory, "sweep dir" if multirun else "run dir")
    except InUse as error:
        raise ResumeError(str(error)) from None


def resume_argv(argv: list[str]) -> list[str]:
    """Turn ``rnnlab-train resume=<dir> [extra overrides]`` into the command line that started
    the run (or sweep), pointed at its own directory; ``argv`` without ``resume=`` is returned as
    is. Raises ResumeError with one line."""
    from rnnlab.config.hydra_runtime import RESUME_MARK

    given = [a for a in argv if a.startswith(f"{RESUME_KEY}=")]
    if not given:
        return argv
    if len(given) > 1:
        raise ResumeError("resume= given twice: name one run dir or sweep dir")
    target = Path(given[0].split("=", 1)[1]).expanduser()
    extra = [a for a in argv if a not in given and a not in ("-m", "--multirun")]
    if not target.is_dir():
        raise ResumeError(f"resume={target}: no such directory (give a run dir or a sweep dir "
                          "under logs/)")
    sweep_file = RunDir.sweep_config(target)
    if sweep_file.is_file():
        task, hydra = _saved_overrides(sweep_file)
        from rnnlab.run.rundir import sweep_resume_error

        refused = sweep_resume_error(target, extra)
        if refused is not None:
            raise ResumeError(refused)
        # RESUME_MARK: Hydra leaves the jobs' .hydra/ as they are, as for a run (below)
        return ["--multirun", *task, *hydra, f"hydra.sweep.dir={target.resolve()}",
                RESUME_MARK, *extra]
    saved = RunDir(target).hydra_yaml
    if not saved.is_file():
        raise ResumeError(f"resume={target}: not a run dir or sweep dir of rnnlab-train (it has "
                          "neither .hydra/hydra.yaml nor multirun.yaml)")
    task, hydra = _saved_overrides(saved)
    _refuse_untrusted_checkpoints(target)
    # Hydra leaves the run's .hydra/ as it is (it would rewrite it before the run could refuse
    # or keep anything): the run records there what an accepted resume changed
    # (rnnlab.run.train._record_resume), and a refused or kept one writes nothing.
    return [*task, *hydra, f"hydra.run.dir={target.resolve()}", RESUME_MARK, *extra]


def _refuse_untrusted_checkpoints(run_dir: Path) -> None:
    """A run dir's checkpoints that hold more than rnnlab writes are refused here, before Hydra
    writes anything into the run dir (the run checks them again; a damaged one is left to it)."""
    from rnnlab.config.untrusted import CorruptCheckpoint, load_checkpoint

    for path in sorted(RunDir(run_dir).checkpoints.glob("*.ckpt")):
        try:
            load_checkpoint(path)
        except (CorruptCheckpoint, OSError):
            continue


def _saved_overrides(path: Path) -> tuple[list[str], list[str]]:
    """The task and hydra overrides a run or sweep was started with, as Hydra recorded them.
    A run dir is untrusted: what it recorded is refused (ResumeError, one line) where it names
    code rnnlab's config groups do not (rnnlab.config.untrusted.check_config), here and in the run's
    .hydra/overrides.yaml."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rnnlab.config.untrusted import check_config, check_overrides

    try:
        recorded = OmegaConf.load(path)
        saved = recorded.hydra.overrides
        check_config(recorded, path)
        run = RunDir(path.parent.parent)  # path: a run's .hydra/hydra.yaml, or multirun.yaml
        listed = run.overrides  # a run's task overrides, again
        if path == run.hydra_yaml and listed.is_file():
            check_overrides([str(o) for o in OmegaConf.load(listed)], listed)
    except (OmegaConfBaseException, ValueError, OSError, yaml.YAMLError) as error:
        if isinstance(error, ResumeError):
            raise
        from rnnlab.config.errors import one_line

        raise ResumeError(f"resume: {path} cannot be read ({one_line(error)})") from None
    hydra = [o for o in saved.hydra
             if o.split("=", 1)[0].lstrip("+~") not in ("hydra.mode", "hydra.run.dir",
                                                        "hydra.sweep.dir", "hydra.output_subdir")]
    return [_renamed(o) for o in saved.task], hydra


# Settings renamed since a run could have recorded them: monitor=<metric> (before monitor
# became {metric, mode}) is monitor.metric=<metric>, so such a run still resumes.
RENAMED = {"monitor": "monitor.metric"}


def _renamed(override: str) -> str:
    key, eq, value = override.partition("=")
    return f"{RENAMED[key]}={value}" if eq and key in RENAMED else override
