"""The W&B sweep path: `rnnlab-wandb-sweep` writes the config `wandb sweep` takes, and the
command line `wandb agent` builds from it composes and runs as one rnnlab run."""

from __future__ import annotations

import itertools

import pytest
import yaml
from conftest import CONF
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
from wandb_offline import read_finished_run

from rnnlab.commands.wandb_sweep import main
from rnnlab.config.composition import command_line_error
from rnnlab.run.rundir import RunDir
from rnnlab.wandb.sweep import sweep_spec


def _agent_command(spec: dict, point: dict) -> list[str]:
    """What `wandb agent` runs for one parameter point (wandb_agent.py, non-function agents)."""
    sweep_vars = create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})
    sweep_vars["env"] = ["/usr/bin/env"]
    command = []
    for chunk in spec["command"]:
        if chunk.startswith("${") and chunk.endswith("}"):
            command += sweep_vars.get(chunk[2:-1]) or []
        else:
            command.append(chunk)
    return command


def test_a_preset_becomes_a_grid_sweep_of_its_own_settings(capsys):
    assert main(["experiment=gru_variants", "seed=0,1"]) == 0
    spec = yaml.safe_load(capsys.readouterr().out)
    assert spec["method"] == "grid"
    assert spec["metric"] == {"name": "val/loss", "goal": "minimize"}
    assert spec["parameters"] == {"model.variant": {"values": ["gru", "no_reset", "mgu"]},
                                  "model.reset": {"values": ["after", "before"]},
                                  "seed": {"values": [0, 1]}}
    assert spec["command"] == ["${env}", "rnnlab-train", "experiment=gru_variants",
                               "logger.wandb.offline=false", "${args_no_hyphens}"]
    assert spec["project"] == "rnnlab"
    # every point of the grid composes as the agent will write it
    grid = [dict(zip(spec["parameters"], values)) for values in
            itertools.product(*(p["values"] for p in spec["parameters"].values()))]
    assert len(grid) == 12
    for point in grid:
        assert command_line_error(_agent_command(spec, point)[2:], str(CONF), "train") is None


def test_the_metric_follows_monitor_and_the_command_line_wins_over_the_preset():
    spec = sweep_spec(["experiment=lr_robustness", "monitor.metric=val/acc",
                       "optimizer.lr=0.001,0.01"])
    assert spec["metric"] == {"name": "val/acc", "goal": "maximize"}
    assert spec["parameters"]["optimizer.lr"] == {"values": [0.001, 0.01]}
    assert spec["parameters"]["model"] == {"values": ["rnn", "gru", "lstm"]}
    spec = sweep_spec(["model=rnn,gru", "monitor.metric=gradflow/layer0/horizon",
                       "monitor.mode=max"])
    assert spec["metric"] == {"name": "gradflow/layer0/horizon", "goal": "maximize"}


@pytest.mark.parametrize(("argv", "message"), [
    (["model=gru,gruu"], "no such option in 'model'"),
    (["model=gru"], "nothing to sweep"),
    (["model=rnn,gru", "--method", "annealing"],
     "--method='annealing' is not one of grid, random, bayes"),
])
def test_bad_sweeps_are_one_line_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_an_agent_run_is_one_rnnlab_run(run_training, monkeypatch):
    # the agent's runs log online; without a network they fall back to offline (one warning)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    spec = sweep_spec(["model=rnn,gru", "seed=3", "data=adding"])
    argv = _agent_command(spec, {"model": "gru"})
    assert argv[:2] == ["/usr/bin/env", "rnnlab-train"]
    results, run_dir = run_training([*argv[2:], "debug=fast", "model.hidden_size=8"])
    assert results["status"] == "completed"
    assert results["config"]["model"]["cell"] == "gru" and results["seed"] == 3
    run = read_finished_run(run_dir)
    assert run.summary["status"] == "completed" and run.config["model"]["cell"] == "gru"
    assert RunDir(run_dir).read_results() == results


def test_the_hint_names_the_project_and_puts_this_environment_first_on_path(tmp_path, capsys):
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "sweep.yaml"
    assert main(["model=rnn,gru", "logger.wandb.project=mine", f"--out={out}"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"rnnlab-wandb-sweep: wrote {out}; next:"
    bin_dir = Path(sys.executable).parent
    assert f"sweep --project mine {out}" in lines[1]
    agent = lines[2].strip()
    assert (agent.startswith(f"PATH={bin_dir}:$PATH ")
            and agent.endswith(" agent ENTITY/mine/SWEEP_ID"))
    assert yaml.safe_load(out.read_text())["project"] == "mine"
    # what the agent's runs find under that PATH, from a shell that has no venv on it
    lookup = f"PATH={shlex.quote(str(bin_dir))}:/usr/bin:/bin command -v rnnlab-train"
    found = subprocess.run(["sh", "-c", lookup], capture_output=True, text=True, check=False)
    assert found.stdout.strip() == str(bin_dir / "rnnlab-train")
