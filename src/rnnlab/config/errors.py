"""The errors rnnlab reports to the user in one line (no traceback), importable without torch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A setting that composes but makes no sense; its message is one line naming the setting."""


class ResumeError(ConfigError):
    """A resume that cannot be done as asked (one line for the user)."""


class ReproduceError(ConfigError):
    """A reproduce plan or page that cannot be used as asked (one line for the user)."""


def check_choice(setting: str, value: Any, allowed: Iterable[Any], extra: str = "",
                 error: type[Exception] = ValueError) -> None:
    """Raise ``error`` with one line, ``setting='x' is not one of a, b`` (then ``extra``, e.g. the
    forms a prefix allows), unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise error(f"{setting}={value!r} is not one of {', '.join(str(a) for a in allowed)}"
                    f"{' ' + extra if extra else ''}")


def one_line(error: BaseException) -> str:
    """The user's message of ``error`` on one line: Hydra's wrapping of an error raised in a
    ``_target_`` is peeled off, and "Error loading 'x':" keeps its cause from the next line."""
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
