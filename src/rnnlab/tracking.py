"""Loggers, run metadata and results.json.

Everything a run leaves behind for scripts/ to read is written here, atomically: a reader never
sees a half-written results.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from rnnlab.atomic import atomic_open

RESULT_STATUSES = ("completed", "diverged", "failed")
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
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    # id: a resumed run continues its W&B run ("allow": offline, a new file under the same id).
    return WandbLogger(
        save_dir=save_dir, offline=not online, project=project, entity=entity, group=group,
        tags=list(tags or []), job_type=job_type, name=name, id=id,
        resume="allow" if id else None, settings=_wandb_settings(),
    )


def _wandb_settings():
    import wandb

    # No console capture: Hydra and Lightning already log it to the run dir.
    return wandb.Settings(console="off", silent=True)


def _wandb_credentials_present() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def finish_wandb(exit_code: int = 0) -> None:
    """Close the W&B run of this job, so the next multirun job starts its own."""
    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)


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


def write_json_atomic(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write JSON so that a reader sees the old file or the new one, never half of one."""
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=False, default=_jsonable)
        handle.write("\n")
    return Path(path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_results(run_dir: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "results.json").read_text())
