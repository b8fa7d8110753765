"""Bad settings are refused in one line, exit 2, and nothing is written (issue 42, item 8): the
command line is checked before torch loads, so each refusal is quick."""

from __future__ import annotations

import pytest

from rnnlab.config.composition import command_line_error
from rnnlab.config.configdir import CONFIG_DIR, CONFIG_NAME

# (the command line, what its one line says)
REFUSED = [
    (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer.momentum must be >= 0, got -1"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay must be >= 0, got -1"),
    (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size must be >= 1, got 0"),
    (["optimizer.lr=inf"], "optimizer.lr must be a finite number, got inf"),
    (["test=maybe"], "test must be true or false, got 'maybe'"),
    (["experiment_name=../../escaped"], "experiment_name='../../escaped' must be one folder name"),
    # estimated before torch loads (rnnlab.data.memory), not a 409 GB allocation
    (["data=copy", "data.seq_len=100000000"], "data.seq_len=100000000: the copy data would take"),
]


@pytest.mark.parametrize("argv,said", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_bad_setting_is_refused_in_one_line_before_anything_runs(argv, said):
    reason = command_line_error(argv, CONFIG_DIR, CONFIG_NAME)
    assert reason is not None and reason.startswith(said), reason
    assert "\n" not in reason


def test_the_refusal_is_exit_2_one_line_and_writes_nothing(tmp_path):
    from conftest import cli

    done = cli(["experiment_name=../../escaped", f"paths.log_dir={tmp_path / 'logs'}"],
               cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "rnnlab-train: error: experiment_name='../../escaped' must be one folder name (no '/', "
        "not '.' or '..'): it names the folder under paths.log_dir"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("trainer", ["gpu", "ddp"])
def test_a_gpu_asked_for_where_there_is_none_is_refused_naming_the_setting(trainer, run_training,
                                                                           capfd, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_training([f"trainer={trainer}", "debug=fast", "model.hidden_size=8"], name="run")
    assert exit_info.value.code == 2
    said = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert said == ["rnnlab-train: error: trainer.accelerator=gpu (trainer=gpu, trainer=ddp) "
                    "needs a CUDA GPU and none is available here; use trainer=cpu (or "
                    "trainer=ddp_cpu)"], said
    assert not (tmp_path / "run").exists()


def test_a_run_refused_once_torch_loads_leaves_no_empty_folders(tmp_path, capfd):
    """model.param_budget=3 is refused after the run dir logs/runs/adhoc/<stamp> was made: the
    run dir goes, and the folders made for it too."""
    from conftest import compose_config
    from omegaconf import open_dict

    from rnnlab.run.train import run

    logs = tmp_path / "logs"
    run_dir = logs / "runs" / "adhoc" / "2026-01-01_00-00-00-000000"
    run_dir.mkdir(parents=True)
    cfg = compose_config(["debug=fast", "model.param_budget=3"], run_dir)
    with open_dict(cfg):
        cfg.paths.log_dir = str(logs)
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    said = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("rnnlab-train: error: "), said
    assert list(logs.iterdir()) == []
