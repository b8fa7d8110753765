"""Writes a reader never sees half-done: results.json, gradflow.npz, metrics.csv cuts,
checkpoints, the data cache.

Everything is written under a hidden temporary name next to its target and renamed onto it on
success (``os.replace`` is atomic within a folder). Files get the usual modes (0666 less the
umask), as any ``open()`` gives: readable by the group that shares the results.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Marks a temporary name (the data cache sweeps leftovers of killed writers by it).
PARTIAL = ".partial-"


def remove(path: Path) -> None:
    """Delete a file, link or folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` only on success.

    Works for a file or a folder written at the yielded path. The temporary name is hidden and
    never matches the target, so a reader never takes an interrupted write for a finished one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{PARTIAL}{os.getpid()}-{os.urandom(3).hex()}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written at {tmp}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        remove(tmp)


@contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "w", durable: bool = True,
                **options) -> Iterator[IO]:
    """``open(target, mode)`` whose content appears at ``target`` only once it is complete.
    ``durable`` also fsyncs before the rename (survives a power cut; 10-30 ms on a busy disk)."""
    with atomic_path(target) as tmp, open(tmp, mode, **options) as handle:
        yield handle
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


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
