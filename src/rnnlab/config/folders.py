"""The folders a command writes into: whether one can be written (checked before a run starts,
leaving nothing behind), and, after a refusal, removing the folders the command itself made.
Imports nothing heavy."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

# The errnos of a folder that cannot be written: a read-only file system, no permission, no room.
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


def write_error(path: Path) -> str | None:
    """Why ``path`` (a folder, made if missing) cannot be written, in a few words ("<folder>:
    Read-only file system", "<folder> is a file"); None when it can. Tried by making and
    removing a file in the nearest folder of it that exists: nothing is left, nothing is made
    on the way."""
    folder = next((p for p in (path, *path.parents) if p.exists()), None)
    if folder is None:
        return None
    if not folder.is_dir():
        return f"{folder} is a file"
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".rnnlab-write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        if error.errno not in NOT_WRITABLE:  # something else (a race): the run finds out
            return None
        return f"{folder}: {error.strerror}"
    return None


def folders_to_make(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first: what a run made
    in it made (and what a refused run may remove again, :func:`remove_made_folders`)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def remove_made_folders(made: list[Path]) -> None:
    """After a refusal: the folders of ``made`` (from :func:`folders_to_make`, before the run)
    that are empty now, and the empty folders under them -- each made by this run, since none
    existed before it. A folder holding anything (another process's files) stays."""
    if not made:
        return
    for folder, _, _ in sorted(os.walk(made[0]), key=lambda e: -len(Path(e[0]).parts)):
        try:
            Path(folder).rmdir()
        except OSError:  # not empty
            pass
    for folder in made[1:]:
        try:
            folder.rmdir()
        except OSError:
            return
