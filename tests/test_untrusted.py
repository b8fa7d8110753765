"""A run directory is untrusted (DESIGN.md section 2): a pickle payload in its checkpoints, a
``_target_`` or Hydra callback it recorded, a payload given to the music loader -- every command
that loads a run refuses them in one line, and nothing runs (rnnlab.config.untrusted)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import cli

from rnnlab.config import untrusted
from rnnlab.config.errors import ResumeError
from rnnlab.run import resume

# One tiny finished run (a step-classification task on a scratch cell, so that every analysis
# command can load it), made once for the module as the CLI makes it (.hydra/ included).
RUN = ["data=parity", "data.seq_len=8", "model=gru", "model.hidden_size=4", "debug=fast",
       "logger=csv", "callbacks.gradflow.every_n_steps=1"]


class Payload:
    """What a malicious checkpoint or pickle holds: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("untrusted")
    run = base / "run"
    done = cli([*RUN, f"hydra.run.dir={run}"], cwd=base)
    assert done.returncode == 0, done.stderr[-2000:]
    return run


def _rnnlab_train(args, cwd):
    """``rnnlab-train ARGS`` through its console entry point (rnnlab.commands.train.main), which
    refuses before torch and Lightning load (``python -m rnnlab.train`` now runs it too)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_SERVICE")}
    return subprocess.run([sys.executable, "-c", "import sys; from rnnlab.commands.train "
                           "import main; sys.exit(main())", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def _copy(run, tmp_path, name="copied"):
    copied = tmp_path / name
    shutil.copytree(run, copied)
    return copied


def _poison_checkpoints(run_dir, marker):
    """Insert the payload into best.ckpt and last.ckpt (torch.save, as an attacker would)."""
    for name in ("best.ckpt", "last.ckpt"):
        path = run_dir / "checkpoints" / name
        state = torch.load(path, map_location="cpu", weights_only=False)  # our own test file
        state["callbacks"]["evil"] = Payload(marker)
        torch.save(state, path)


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_rnnlab_checkpoints_load_weights_only(finished):
    for name in ("best.ckpt", "last.ckpt"):
        state = untrusted.load_checkpoint(finished / "checkpoints" / name)
        assert "state_dict" in state and "rnnlab.RunState" in state


def test_a_pickle_payload_in_a_copied_runs_checkpoints_runs_nowhere(finished, tmp_path, capsys):
    from rnnlab.commands.by_position import main as by_position
    from rnnlab.commands.lyapunov import main as lyapunov
    from rnnlab.run.trained import load_trained

    run = _copy(finished, tmp_path)
    marker = tmp_path / "PWNED"
    _poison_checkpoints(run, marker)

    for command, argv in ((lyapunov, [str(run)]), (lyapunov, [str(run), "--checkpoint", "last"]),
                          (by_position, [str(run)]),
                          (by_position, [str(run), "--checkpoint", "last"])):
        assert command(argv) == 2
        line = _one_line(capsys.readouterr().err)
        assert "posix.system" in line and "refused" in line, line
    for checkpoint in ("best", "last"):
        with pytest.raises(untrusted.UntrustedContent, match="could run code"):
            load_trained(run, checkpoint)
    # what rnnlab-train reads before it builds anything (the Python API's runs too)
    with pytest.raises(untrusted.UntrustedContent, match="last.ckpt holds posix.system"):
        resume.read_checkpoints(run / "checkpoints" / "last.ckpt")

    # resume= of an unfinished run: refused before anything trains, nothing of the run touched
    (run / "results.json").unlink()
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    resumed = _rnnlab_train([f"resume={run}"], cwd=tmp_path)
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    line = _one_line(resumed.stderr)
    assert line.startswith("rnnlab-train: error: ") and ".ckpt holds posix.system" in line
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    assert not marker.exists()


def _record_override(run_dir, section, override):
    path = run_dir / ".hydra" / "hydra.yaml"
    saved = yaml.safe_load(path.read_text())
    saved["hydra"]["overrides"][section].append(override)
    path.write_text(yaml.safe_dump(saved))


EVIL = ["+callbacks.evil._target_=builtins.open", "+callbacks.evil.file=PWNED",
        "+callbacks.evil.mode=w"]


@pytest.mark.parametrize("section,overrides,reason", [
    ("task", EVIL, "_target_=builtins.open is not one of rnnlab's config groups"),
    ("hydra", ["+hydra.callbacks.evil._target_=builtins.open"], "hydra.callbacks may only"),
    ("hydra", ["hydra.searchpath=[file:///tmp]"], "hydra.searchpath adds config groups"),
    ("hydra", ["hydra.job.env_set.LD_PRELOAD=/tmp/evil.so"], "hydra.job.env_set"),
])
def test_recorded_overrides_that_name_code_are_refused_on_resume(finished, tmp_path, section,
                                                                 overrides, reason):
    from rnnlab.commands.train import resume_argv

    run = _copy(finished, tmp_path)
    for override in overrides:
        _record_override(run, section, override)
    with pytest.raises(ResumeError, match=reason.replace("(", r"\(")):
        resume_argv([f"resume={run}"])


def test_the_packaged_settings_still_resume(finished, tmp_path):
    from rnnlab.commands.train import resume_argv

    run = _copy(finished, tmp_path)
    _record_override(run, "hydra", "hydra.callbacks.sweep_summary.figures=false")
    argv = resume_argv([f"resume={run}"])
    assert "hydra.callbacks.sweep_summary.figures=false" in argv


def test_a_sweeps_recorded_target_is_refused_in_one_line(finished, tmp_path, monkeypatch,
                                                          capsys):
    from rnnlab.commands.train import main

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    recorded = yaml.safe_load((finished / ".hydra" / "hydra.yaml").read_text())
    recorded["hydra"]["overrides"]["task"] += EVIL
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(recorded))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["rnnlab-train", f"resume={sweep}"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "multirun.yaml records the override +callbacks.evil._target_=builtins.open" in line
    assert not (tmp_path / "PWNED").exists()


def test_a_recorded_config_target_is_refused_by_the_loaders(finished, tmp_path, capsys):
    from rnnlab.commands.by_position import main as by_position
    from rnnlab.commands.lyapunov import main as lyapunov

    run = _copy(finished, tmp_path)
    results = json.loads((run / "results.json").read_text())
    results["config"]["data"]["_target_"] = "builtins.open"
    results["config"]["data"]["file"] = str(tmp_path / "PWNED")
    (run / "results.json").write_text(json.dumps(results))
    for command in (lyapunov, by_position):
        assert command([str(run)]) == 2
        assert "_target_=builtins.open" in _one_line(capsys.readouterr().err)
    (run / "results.json").unlink()  # the loaders read .hydra/config.yaml then: the same check
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    config["callbacks"]["evil"] = {"_target_": "os.system", "command": "touch PWNED"}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    assert lyapunov([str(run)]) == 2
    assert "_target_=os.system" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "PWNED").exists()


def test_the_allow_list_is_the_config_trees_targets():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rnnlab.config.configdir import CONFIG_DIR

    allowed = untrusted.allowed_targets()
    assert "rnnlab.run.resume.RunState" in allowed  # conf/callbacks
    assert "rnnlab.data.music.MusicDataModule" in allowed  # a registered structured config
    assert "torch.optim.SGD" in allowed and "builtins.open" not in allowed
    # a run dir recorded before the modules moved into packages names them by their old paths
    assert "rnnlab.resume.RunState" in allowed and "rnnlab.dirlock.DirLock" in allowed
    assert "rnnlab.os.system" not in allowed
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for overrides in (["data=music", "optimizer=sgd", "scheduler=plateau",
                           "logger=many"], ["data=sentiment", "scheduler=cosine"]):
            untrusted.check_config(compose("train", overrides, return_hydra_config=True),
                                   "composed")
    GlobalHydra.instance().clear()


def test_a_pickle_payload_for_the_music_loader_is_refused(tmp_path, data_dir):
    from rnnlab.data.music import MusicDataModule

    marker = tmp_path / "PWNED"
    path = tmp_path / "JSB Chorales.pickle"
    path.write_bytes(pickle.dumps({"train": [Payload(marker)], "valid": [], "test": []},
                                  protocol=2))
    module = MusicDataModule(source="jsb_pickle", pickle_path=str(path), data_dir=str(data_dir))
    with pytest.raises(ValueError, match="names posix.system") as error:
        module.setup()
    assert "\n" not in str(error.value) and not marker.exists()
