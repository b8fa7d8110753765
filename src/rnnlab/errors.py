"""The errors rnnlab reports to the user in one line (no traceback), importable without torch."""


class ConfigError(ValueError):
    """A setting that composes but makes no sense; its message is one line naming the setting."""


class ResumeError(ConfigError):
    """A resume that cannot be done as asked (one line for the user)."""


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
