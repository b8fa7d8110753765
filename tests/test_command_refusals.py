"""Every command that reads run directories refuses bad input the same way (issue 42, item 8): a
missing or an empty run dir is one line on stderr naming the command, exit 2, and nothing
written. The commands are called in-process through their console-script entry points as
pyproject.toml names them, so the table follows them wherever the code moves."""

from __future__ import annotations

import importlib
import re

import pytest
from conftest import REPO

# [project.scripts] of pyproject.toml (no tomllib before Python 3.11): name = "module:function"
_SECTION = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
SCRIPTS = dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.:]+)"', _SECTION, re.MULTILINE))

# (command, its arguments before the run dir)
READERS = [
    ("rnnlab-aggregate", []),
    ("rnnlab-report", []),
    ("rnnlab-lyapunov", []),
    ("rnnlab-by-position", []),
    ("rnnlab-plot-gradflow", []),
    ("rnnlab-dashboard", ["--entity", "e", "--group", "g", "--dry-run", "--runs"]),
]
CASES = [(command, before, kind) for command, before in READERS for kind in ("missing", "empty")]


def _main(command: str):
    module, function = SCRIPTS[command].split(":")
    return getattr(importlib.import_module(module), function)


@pytest.mark.parametrize("command,before,kind", CASES,
                         ids=[f"{c}-{k}" for c, _, k in CASES])
def test_a_missing_or_empty_run_dir_is_exit_2_in_one_line(command, before, kind, tmp_path,
                                                          capsys):
    run_dir = tmp_path / "runs"
    if kind == "empty":
        run_dir.mkdir()
    try:
        code = _main(command)([*before, str(run_dir)])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2, (command, kind, code)
    said = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith(f"{command}: error: "), said
    assert str(run_dir) in said[0] or command == "rnnlab-dashboard", said
    left = sorted(p.name for p in tmp_path.rglob("*"))
    assert left == (["runs"] if kind == "empty" else []), left


# ------------------------------------------------------------ data that would not fit in memory


def test_the_memory_estimate_by_hand():
    from rnnlab.data.memory import MEMORY_SHARE, check_data_memory, example_bytes

    # copy, T = 10, K = 10: x and y int64 and a bool mask over 30 steps
    assert example_bytes("copy", 10, 10) == 17 * 30
    assert example_bytes("adding", 50) == 16 * 50 and example_bytes("parity", 32) == 24 * 32
    assert example_bytes("selective_copy", 64, 4) == 4 * 64 + 17 * 68
    sizes = {"train": 100, "val": 10, "test": 10}
    need = 120 * example_bytes("adding", 1000)
    check_data_memory("adding", 1000, sizes, memory=int(need / MEMORY_SHARE))  # just fits
    with pytest.raises(ValueError, match=r"^data\.seq_len=1000: the adding data would take "
                                         r"about 1\.9 MB \(100 \+ 10 \+ 10 sequences\), more "
                                         r"than 50% of this machine's"):
        check_data_memory("adding", 1000, sizes, memory=int(need / MEMORY_SHARE) - 1)


def test_a_seq_len_whose_data_would_not_fit_is_refused_before_it_is_made(tmp_path):
    """issue 42: data.seq_len=100000000 tried to allocate 409 GB and died in a traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    train = Path(sys.executable).with_name("rnnlab-train")
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_SERVICE")}
    done = subprocess.run([str(train), "data=copy", "data.seq_len=100000000",
                           f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(said) == 1, said
    assert said[0].startswith("rnnlab-train: error: data.seq_len=100000000: the copy data would "
                              "take about "), said
    assert "of this machine's" in said[0] and "lower data.seq_len" in said[0]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no run dir, nothing written
    assert not (tmp_path / "logs").exists() or list((tmp_path / "logs").iterdir()) == []


def test_the_same_check_on_a_composed_config_without_torch():
    from rnnlab.data.memory import config_memory_error

    node = {"_target_": "rnnlab.data.synthetic.CopyDataModule", "seq_len": 100_000_000,
            "train_size": 10000, "val_size": 1000, "test_size": 1000, "copy_length": 10}
    assert config_memory_error(node).startswith("data.seq_len=100000000: the copy data would")
    assert config_memory_error({**node, "seq_len": 10}) is None
    assert config_memory_error({"_target_": "rnnlab.data.music.MusicDataModule"}) is None
