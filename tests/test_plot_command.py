"""The command a run's report prints (``gradient flow: ...``) works from any folder: the bare
console script where PATH finds this install's, else an absolute path (issue 39, item 10)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from rnnlab.run.console import plot_command

REPO = Path(__file__).resolve().parents[1]


def _words(run_dir: Path) -> list[str]:
    return shlex.split(plot_command(run_dir))


def test_the_command_is_absolute_when_the_venv_is_not_on_path(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # where a relative .venv/bin/... would have been printed
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    words = _words(Path("logs/runs/x"))
    assert os.path.isabs(words[0]) and Path(words[0]).is_file()
    assert os.path.isabs(words[-1]) and words[-1] == str(REPO / "logs/runs/x")
    # ... and it runs from another folder, with no venv on PATH
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run([*words[:-1], "--help"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0 and "rnnlab-plot-gradflow" in done.stdout, done.stderr[-2000:]


def test_the_bare_command_when_path_finds_this_install(tmp_path, monkeypatch):
    bindir = Path(sys.executable).parent
    if not (bindir / "rnnlab-plot-gradflow").is_file():  # pragma: no cover - not a venv install
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin:/bin")
    assert _words(Path("run"))[:1] == ["rnnlab-plot-gradflow"]
    # another install's script of the same name on PATH first: the absolute path instead
    other = tmp_path / "bin"
    other.mkdir()
    (other / "rnnlab-plot-gradflow").write_text("#!/bin/sh\nexit 1\n")
    (other / "rnnlab-plot-gradflow").chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{bindir}")
    assert _words(Path("run"))[0] == str(bindir / "rnnlab-plot-gradflow")
