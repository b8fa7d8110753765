"""Where rnnlab's Hydra configs live: a bottom module (it imports nothing of rnnlab), so that a
module that needs the path -- the CLI, the sweep and dashboard builders, the tests -- does not
import the training app (torch, Lightning) to read it."""

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")
CONFIG_NAME = "train"
