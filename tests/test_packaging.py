"""The wheel carries the config tree, so a non-editable install finds conf/, and the native
loops' C++ source, which it builds on first use. conf/ lives at the top level and is copied into
the wheel at build time (setup.py): no symlink in the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_wheel_contains_every_config_and_installed_copy_is_found(tmp_path):
    conf = REPO / "conf"
    assert not (REPO / "src" / "rnnlab" / "conf").is_symlink()
    # Built from a copy of the checkout's files (what git sees): the checkout's own build/ may
    # hold modules that have since moved, and setuptools never empties it.
    source = tmp_path / "source"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        path = REPO / name
        if path.is_file() and not path.is_symlink():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", str(source), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, text=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("rnnlab-*.whl"))
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    expected = {f"rnnlab/conf/{p.relative_to(conf).as_posix()}" for p in conf.rglob("*.yaml")}
    assert "rnnlab/conf/train.yaml" in expected
    assert expected <= names, sorted(expected - names)
    assert "rnnlab/run/train.py" in names and "rnnlab/cells/gru.py" in names
    # every package of the house (a folder without __init__.py would be left out)
    assert {f"rnnlab/{package}/__init__.py" for package in (
        "config", "run", "model", "cells", "data", "gradflow", "results", "wandb", "studies",
        "commands")} <= names
    assert "rnnlab/train.py" in names  # python -m rnnlab.train
    assert "rnnlab/cells/native_loops.cpp" in names
    assert {"rnnlab/wandb/charts.py", "rnnlab/wandb/dashboard.py", "rnnlab/wandb/sweep.py"} <= names
    assert not any(n.startswith(("rnnlab/wandb_offline", "rnnlab/conf/conf")) for n in names)

    # Imported from the unpacked wheel (cwd elsewhere), configdir finds the packaged copy.
    site = tmp_path / "site"
    archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c",
                          "import rnnlab.config.configdir as c; print(c.CONFIG_DIR)"],
                         cwd=elsewhere, env=env, check=True, capture_output=True, text=True,
                         timeout=60).stdout.strip()
    assert Path(out) == site / "rnnlab" / "conf", out
    assert (Path(out) / "train.yaml").read_text() == (conf / "train.yaml").read_text()


def test_checkout_reads_top_level_conf():
    import rnnlab.config.configdir as c

    assert Path(c.CONFIG_DIR) == REPO / "conf"


def test_the_wandb_package_leaves_import_wandb_to_the_real_client():
    import wandb

    import rnnlab.wandb.gradflow  # noqa: F401  (its `import wandb` is absolute)

    assert wandb.__name__ == "wandb" and hasattr(wandb, "Table")
    assert "site-packages" in wandb.__file__ or "dist-packages" in wandb.__file__
