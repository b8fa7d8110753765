"""The console script of an install made before rnnlab-train's entry point moved to
rnnlab.commands.train: its bin/rnnlab-train still says ``from rnnlab.cli import main``.
Reinstalling (``make install``) writes the new script; then this module can go."""

from rnnlab.commands.train import main  # noqa: F401
