"""The errors rnnlab reports to the user in one line (no traceback), importable without torch."""


class ConfigError(ValueError):
    """A setting that composes but makes no sense; its message is one line naming the setting."""


class ResumeError(ConfigError):
    """A resume that cannot be done as asked (one line for the user)."""
