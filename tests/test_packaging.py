"""The wheel carries the config tree, so a non-editable install finds conf/, and the native
loops' C++ source, which it builds on first use."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import CONF, REPO


def test_wheel_contains_every_config(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", str(REPO), "-w", str(tmp_path)],
                   check=True, capture_output=True, text=True, timeout=300)
    wheel = next(tmp_path.glob("rnnlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"rnnlab/conf/{p.relative_to(CONF).as_posix()}" for p in CONF.rglob("*.yaml")}
    assert expected, "no configs found"
    assert expected <= names, sorted(expected - names)
    assert "rnnlab/train.py" in names and "rnnlab/cells/gru.py" in names
    assert "rnnlab/cells/native_loops.cpp" in names
