"""Loggers and run metadata: the W&B logger that never prompts, the run's temporary files and
log lines, the versions and commit results.json records (written by rnnlab.run.record through
rnnlab.run.rundir.RunDir, atomically: a reader never sees a half-written results.json).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import subprocess
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from rnnlab.run.rundir import RunDir

_VERSIONED = ("rnnlab", "torch", "lightning", "hydra-core", "omegaconf", "wandb", "torchmetrics",
              "datasets", "numpy")


def wandb_logger(save_dir: str, offline: bool = True, project: str = "rnnlab",
                 entity: str | None = None, group: str | None = None,
                 tags: list[str] | None = None, job_type: str = "train", name: str | None = None,
                 id: str | None = None):
    """A Lightning WandbLogger that never prompts.

    Offline unless the user asked for online with ``WANDB_MODE=online`` or
    ``logger.wandb.offline=false``. Online without credentials fails with one line instead of
    wandb's interactive login prompt.
    """
    from lightning.pytorch.loggers import WandbLogger

    online = os.environ.get("WANDB_MODE") == "online" or not offline
    if online and not _wandb_credentials_present():
        raise RuntimeError(
            "logger.wandb: online mode needs W&B credentials: run `wandb login` or set "
            "WANDB_API_KEY (or stay offline: unset WANDB_MODE / logger.wandb.offline=true)"
        )
    if online:
        url, unreachable = _wandb_unreachable()
        if unreachable:
            # W&B itself would retry for ~90 s and then fail the run: log offline instead.
            say(f"rnnlab-train: warning: W&B server {url} unreachable ({unreachable}): logging "
                f"offline; upload later with `wandb sync {RunDir(save_dir).wandb}/offline-run-*`")
            online = False
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    _keep_wandb_files_in(save_dir)
    # id: a resumed run continues its W&B run ("allow": offline, a new file under the same id).
    logger = WandbLogger(
        save_dir=save_dir, offline=not online, project=project, entity=entity, group=group,
        tags=list(tags or []), job_type=job_type, name=name, id=id,
        resume="allow" if id else None, settings=_wandb_settings(),
    )
    # Lightning always passes anonymous=None to wandb.init, which then warns at every run that
    # the setting "has no effect": leave it out (None is wandb's default).
    if logger._wandb_init.get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)
    return logger


def _wandb_unreachable(timeout: float = 5.0) -> tuple[str, str | None]:
    """(the W&B server's URL, why it cannot be reached within ``timeout`` s or None)."""
    import socket
    import threading
    from urllib.parse import urlparse

    url = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: dict[str, str | None] = {}

    def probe() -> None:  # in a thread: a name lookup without a network can hang far longer
        try:
            socket.create_connection((parsed.hostname or "", port), timeout=timeout).close()
            outcome["error"] = None
        except OSError as error:
            outcome["error"] = str(error) or type(error).__name__

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return url, outcome.get("error", f"no answer in {timeout:g} s")


# W&B puts files of a run outside its folder unless told otherwise: artifact staging (W&B Tables
# are logged as artifacts) in ~/.local/share/wandb, its artifact cache in ~/.cache/wandb. Each run
# points them into its own wandb/ folder (where `wandb sync` finds them), unless the user set them.
_WANDB_DIRS = {"WANDB_DIR": lambda run: run.path, "WANDB_DATA_DIR": lambda run: run.wandb / "data",
               "WANDB_CACHE_DIR": lambda run: run.wandb / "cache"}
_USER_WANDB_DIRS = {name for name in _WANDB_DIRS if name in os.environ}


def _keep_wandb_files_in(save_dir: str) -> None:
    for name, folder in _WANDB_DIRS.items():
        if name not in _USER_WANDB_DIRS:
            os.environ[name] = str(folder(RunDir(save_dir)))


@contextmanager
def temp_files_in(run_dir: str | os.PathLike):
    """Temporary files made during a run (W&B's table files, Lightning's ddp_spawn hand-over)
    go to ``<run dir>/.tmp``, removed at the end, instead of leaving folders in /tmp."""
    import getpass
    import shutil
    import tempfile

    # Made before the switch, so they outlive this run: W&B's media folder (made on import, used
    # by every later run of the process) and the torch compile cache (shared between runs).
    if importlib.util.find_spec("wandb") is not None:
        import wandb  # noqa: F401
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(
        tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}"))
    # Inductor fixes its precompiled-header folder from the temp dir when codecache is first
    # imported (not from TORCHINDUCTOR_CACHE_DIR) and caches each header's path for the process:
    # imported inside the first job of a sweep, it put them in that job's .tmp, removed at its
    # end, and every later job's C++ compile failed ("precompiled_headers/....h: No such file"),
    # so its GRU and LSTM ran eager. Imported here (50 ms), the headers stay in the real temp dir.
    if importlib.util.find_spec("torch") is not None:
        import torch._inductor.codecache  # noqa: F401
    tmp = RunDir(run_dir).tmp
    tmp.mkdir(parents=True, exist_ok=True)
    saved_env, saved_dir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(tmp), str(tmp)
    try:
        yield tmp
    finally:
        tempfile.tempdir = saved_dir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- train.log
def _run_log_files() -> list[logging.Handler]:
    """The file handlers Hydra gave the root logger for this job (its ``train.log``)."""
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


def say(message: str, file=None) -> None:
    """Print a line for the user (stderr unless ``file``) and keep it in the job's train.log."""
    print(message, file=file or sys.stderr, flush=True)
    record = logging.LogRecord("rnnlab", logging.INFO, __file__, 0, message, None, None)
    for handler in _run_log_files():
        handler.handle(record)


@contextmanager
def lightning_lines_in_run_log():
    """Lightning logs to its own console handler and not to the root logger (so Hydra's
    train.log stayed empty): hand its lines to the job's log file as well, for this run."""
    handlers = _run_log_files()
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    for logger in loggers:
        for handler in handlers:
            logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            for handler in handlers:
                logger.removeHandler(handler)


def _wandb_settings():
    import wandb

    # No console capture: Hydra and Lightning already log it to the run dir.
    return wandb.Settings(console="off", silent=True)


def _wandb_credentials_present() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def finish_wandb(exit_code: int = 0, summary: dict[str, Any] | None = None,
                 loggers: list | None = None) -> None:
    """Close the W&B run of this job (after adding ``summary``, e.g. its status and error), so
    the next multirun job starts its own: the run of ``loggers``' WandbLogger where one has
    started (a member of a pack, whose pack-mates' runs stay open), else the process's current
    run."""
    if "wandb" not in sys.modules:
        return
    import wandb

    own = next((logger._experiment for logger in wandb_loggers(loggers or ())
                if getattr(logger, "_experiment", None) is not None), None)
    run = own if own is not None else wandb.run
    if run is not None:
        if summary:
            run.summary.update(summary)
        run.finish(exit_code=exit_code)


def wandb_loggers(loggers) -> list:
    """The WandbLoggers among ``loggers`` (by class name: wandb and Lightning's W&B module are
    imported only where a run has one)."""
    return [logger for logger in loggers if type(logger).__name__ == "WandbLogger"]


def start_wandb_run(logger) -> None:
    """Start ``logger``'s (a WandbLogger's) W&B run as a run of its own, beside runs already open
    in this process (the members of a pack), as Lightning's WandbLogger.experiment starts one."""
    import wandb

    if logger._offline:
        os.environ["WANDB_MODE"] = "dryrun"
    run = wandb.init(**logger._wandb_init, reinit="create_new")
    if getattr(run, "define_metric", None):
        run.define_metric("trainer/global_step")
        run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    logger._experiment = run


def start_wandb_runs(loggers: list) -> None:
    """Start several WandbLoggers' runs at once (a pack's members), in threads: ``wandb.init``
    of an offline run waits ~1 s on W&B's service, which a pack of N would pay N times in series
    (6 runs: 6.4 s serial, 2.4 s threaded on this machine). Each init names its own folder
    (``dir``, the run dir), so none reads the folder variables of another member's."""
    from concurrent.futures import ThreadPoolExecutor

    if len(loggers) <= 1:
        for logger in loggers:
            start_wandb_run(logger)
        return
    with ThreadPoolExecutor(len(loggers)) as pool:
        list(pool.map(start_wandb_run, loggers))  # list(): an init's error is raised here


WANDB_DIRS = tuple(_WANDB_DIRS)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit of the checkout rnnlab runs from, with '-dirty' when it has local changes."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        # --no-optional-locks: reading the state must not take .git/index.lock, which would make
        # a user's own git command in that checkout fail while a run starts.
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain",
                                "--untracked-files=no"], cwd=cwd, capture_output=True, text=True,
                               timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")
