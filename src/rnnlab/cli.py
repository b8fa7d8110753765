"""``rnnlab-train``'s entry point: what can be refused is refused before torch and Lightning load.

1. ``resume=<run dir or sweep dir>`` becomes the command line that started the run or sweep,
   pointed at its own directory (rnnlab.resume continues it from its last checkpoint);
2. a command line that does not compose is refused in one line, exit 2 (rnnlab.composition);
3. only then is the Hydra app (rnnlab.train) imported and run.

This module imports Hydra and OmegaConf only: a typo is refused in about a second, not after the
10+ s that importing Lightning takes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.errors import ResumeError

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")
CONFIG_NAME = "train"
RESUME_KEY = "resume"


def main():
    """``rnnlab-train``: Hydra's command line, plus ``resume=<run dir or sweep dir>``."""
    try:
        sys.argv[1:] = resume_argv(sys.argv[1:])
    except ResumeError as error:
        print(f"rnnlab-train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    import rnnlab.schemas  # noqa: F401  (the schemas and resolvers the check composes with)
    from rnnlab.composition import refuse_bad_command_line

    refuse_bad_command_line(CONFIG_DIR, CONFIG_NAME)
    from rnnlab.train import hydra_main

    return hydra_main()


def resume_argv(argv: list[str]) -> list[str]:
    """Turn ``rnnlab-train resume=<dir> [extra overrides]`` into the command line that started
    the run (or sweep), pointed at its own directory; ``argv`` without ``resume=`` is returned as
    is. Raises ResumeError with one line."""
    given = [a for a in argv if a.startswith(f"{RESUME_KEY}=")]
    if not given:
        return argv
    if len(given) > 1:
        raise ResumeError("resume= given twice: name one run dir or sweep dir")
    target = Path(given[0].split("=", 1)[1]).expanduser()
    extra = [a for a in argv if a not in given and a not in ("-m", "--multirun")]
    if not target.is_dir():
        raise ResumeError(f"resume={target}: no such directory (give a run dir or a sweep dir "
                          "under logs/)")
    sweep_file = target / "multirun.yaml"
    if sweep_file.is_file():
        task, hydra = _saved_overrides(sweep_file)
        return ["--multirun", *task, *hydra, f"hydra.sweep.dir={target.resolve()}", *extra]
    saved = target / ".hydra" / "hydra.yaml"
    if not saved.is_file():
        raise ResumeError(f"resume={target}: not a run dir or sweep dir of rnnlab-train (it has "
                          "neither .hydra/hydra.yaml nor multirun.yaml)")
    task, hydra = _saved_overrides(saved)
    return [*task, *hydra, f"hydra.run.dir={target.resolve()}", *extra]


def _saved_overrides(path: Path) -> tuple[list[str], list[str]]:
    """The task and hydra overrides a run or sweep was started with, as Hydra recorded them."""
    from omegaconf import OmegaConf

    saved = OmegaConf.load(path).hydra.overrides
    hydra = [o for o in saved.hydra
             if not o.split("=", 1)[0].lstrip("+~") in ("hydra.mode", "hydra.run.dir",
                                                        "hydra.sweep.dir")]
    return list(saved.task), hydra
