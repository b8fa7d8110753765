"""One line before a slow step of the cells' own, so that a first run is not silent: building the
native loops (backends/native.py, seconds, once per machine) and compiling a cell's per-step
graphs (compile_cache.py, seconds per cell on first use).

By default the line goes to stderr as ``rnnlab: <what> ...``; a run hands its own printer to
:func:`set_printer` (rnnlab.run.train: ``rnnlab-train: <what> ...`` through tracking.say, which
also keeps it in the run's train.log). Only the standard library is imported here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["announce", "set_printer"]

_PRINTER: list[Callable[[str], None]] = []


def set_printer(printer: Callable[[str], None] | None) -> None:
    """Where :func:`announce` sends its lines from now on: ``printer(what)`` (``what`` without
    a prefix), or stderr again with None."""
    _PRINTER[:] = [printer] if printer is not None else []


def announce(what: str) -> None:
    """Say ``what`` is about to happen (one line, no trailing ellipsis: it is added)."""
    line = f"{what} ..."
    if _PRINTER:
        _PRINTER[0](line)
    else:
        print(f"rnnlab: {line}", file=sys.stderr, flush=True)
