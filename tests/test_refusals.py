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
    # the model's own refusals, made before torch loads (rnnlab.config.model_checks)
    (["model.param_budget=3"], "model.param_budget=3 is below the smallest model (at least "),
    (["seed=abc"], "seed must be an integer, got 'abc'"),
    (["model.impl=fused", "model.zoneout=0.1"],
     "model.impl=fused has only torch.nn's cells: model.zoneout=0.1 needs model.impl=scratch"),
    (["model=indrnn", "model.impl=fused"], "model.impl=fused: model=indrnn has no torch.nn kernel"),
    (["model.dropout=0.2"], "model.dropout=0.2 acts between layers"),
    (["model=rnn", "model.init=chrono"], "model.init=chrono does not apply to model=rnn"),
    (["data=adding", "model.encoder=onehot"], "model.encoder=onehot needs token inputs"),
    (["model=lstm", "model.variant=foo"], "model.variant='foo' is not one of torch, vanilla"),
    (["model=gru", "model.reset=sideways"], "model.reset='sideways' is not one of after, before"),
    (["model.param_budget=5000", "model.hidden_size=8"],
     "model.hidden_size and model.param_budget are both set"),
    (["callbacks.early_stopping.patience=0"], "callbacks.early_stopping.patience must be an "
                                               "integer >= 1"),
    (["divergence_factor=1"], "divergence_factor must be a number > 1 or null, got 1"),
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


def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_before_torch(monkeypatch):
    from rnnlab.config import accelerator

    trainer = "ddp"  # (trainer=gpu, the same check: the command rows below run both)

    monkeypatch.setattr(accelerator, "clearly_no_gpu", lambda: True)
    assert command_line_error([f"trainer={trainer}"], CONFIG_DIR, CONFIG_NAME) == (
        "trainer.accelerator=gpu (trainer=gpu, trainer=ddp) needs a CUDA GPU and none is "
        "available here; use trainer=cpu (or trainer=ddp_cpu)")
    # a SLURM sweep started from a login node without a GPU: its jobs run where there are GPUs
    assert command_line_error(["-m", "hydra/launcher=submitit_slurm", f"trainer={trainer}"],
                              CONFIG_DIR, CONFIG_NAME) is None
    assert command_line_error(["-m", "hydra/launcher=submitit_local", f"trainer={trainer}"],
                              CONFIG_DIR, CONFIG_NAME) is not None
    # (so is this machine's memory: the data module checks the node's)
    assert command_line_error(["-m", "hydra/launcher=submitit_slurm", "data=copy",
                               "data.seq_len=100000000"], CONFIG_DIR, CONFIG_NAME) is None
    monkeypatch.setattr(accelerator, "clearly_no_gpu", lambda: False)  # a driver: torch decides
    assert command_line_error([f"trainer={trainer}"], CONFIG_DIR, CONFIG_NAME) is None


def test_no_gpu_is_clear_only_without_any_trace_of_a_driver(tmp_path):
    from rnnlab.config.accelerator import clearly_no_gpu

    empty = {"PATH": str(tmp_path / "bin")}
    assert clearly_no_gpu(empty, "linux", str(tmp_path))
    assert clearly_no_gpu({**empty, "CUDA_VISIBLE_DEVICES": "-1"}, "darwin", str(tmp_path))
    assert not clearly_no_gpu(empty, "darwin", str(tmp_path))  # another OS: torch says
    for trace in ("proc/driver/nvidia", "dev/nvidia0", "dev/dxg", "dev/kfd", "bin/nvidia-smi"):
        (tmp_path / trace).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / trace).touch(mode=0o755)
        assert not clearly_no_gpu(empty, "linux", str(tmp_path)), trace
        (tmp_path / trace).unlink()


def test_the_smallest_model_bound_is_below_the_model_counted_by_torch(tmp_path):
    """The budget refused before torch loads is below what the model really has at
    hidden_size=1 (so no budget the model would take is refused), for each cell and its
    forms, each encoder, one and two layers, on a token task and a real-valued one; and the
    synthetic tasks' shapes it reads are the data modules' own."""
    import dataclasses

    from conftest import compose_config
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from rnnlab.config.cellspecs import SPECS
    from rnnlab.config.model_checks import smallest_model_bound
    from rnnlab.data.shapes import synthetic_shape
    from rnnlab.model.models import count_params

    for data in ("copy", "selective_copy", "adding", "parity"):
        cfg = compose_config([f"data={data}"], tmp_path)
        data_node = OmegaConf.to_container(cfg.data, resolve=True)
        spec = instantiate(cfg.data).spec
        shape = synthetic_shape(data_node)
        assert (shape.output_size, shape.vocab_size, shape.input_size) == (
            spec.output_size, spec.vocab_size, spec.input_size), data
        if data not in ("copy", "adding"):
            continue
        other = "embedding" if spec.vocab_size else "linear"
        for cell, cell_spec in SPECS.items():
            forms = cell_spec.forms()  # each form as it is; the own form with each encoder, deeper
            tries = [(form, "auto", 1) for form in forms] + [
                (forms[0], encoder, layers) for encoder, layers in ((other, 1), ("auto", 2))]
            for form, encoder, layers in tries:
                model = {**dataclasses.asdict(cell_spec.schema()), **form,
                         "encoder": encoder, "num_layers": layers, "embedding_dim": 3}
                options = {k: v for k, v in model.items()
                           if k not in ("cell", "hidden_size", "param_budget")}
                real = count_params(spec, 1, cell=cell, **options)
                bound = smallest_model_bound(model, data_node)
                assert 0 < bound <= real, (data, cell, form, encoder, layers, bound, real)


# ------------------------------------------------------------------- the command, run for real
# Each bad command line as a user types it: exit 2, one line on stderr, the file tree as it was
# (no logs/, no data/, no .lock-* file), and -- where it is refused before torch loads -- quick:
# run with a torch that cannot be imported, it is refused all the same, within FAST_S (about 1 s
# on an idle machine; the bound leaves room for a busy one: importing torch takes longer).
FAST_S = 6.0
# ro: "logs" or "data": that folder is read-only (paths.log_dir, RNNLAB_DATA)
COMMANDS = [
    # (command line, environment, read-only folder, refused before torch, what the line says)
    (["model.param_budget=3"], {}, None, True, "model.param_budget=3 is below the smallest"),
    (["seed=abc"], {}, None, True, "seed must be an integer, got 'abc'"),
    (["model.impl=fused", "model.zoneout=0.1"], {}, None, True,
     "model.impl=fused has only torch.nn's cells: model.zoneout=0.1"),
    (["trainer=gpu"], {"CUDA_VISIBLE_DEVICES": "-1"}, None, True,
     "trainer.accelerator=gpu (trainer=gpu, trainer=ddp) needs a CUDA GPU"),
    (["trainer=ddp"], {"CUDA_VISIBLE_DEVICES": "-1"}, None, True,
     "trainer.accelerator=gpu (trainer=gpu, trainer=ddp) needs a CUDA GPU"),
    (["paths.log_dir={ro}/logs"], {}, "logs", True,
     "paths.log_dir={ro}/logs (RNNLAB_LOGS) cannot be written"),
    # nothing prepared in a read-only data root (rnnlab.data.root; one with some of it prepared
    # is refused by the data module for an entry it lacks: tests/test_data_readonly.py)
    (["data=sentiment"], {"RNNLAB_DATA": "{ro}"}, "data", True,
     "paths.data_dir={ro} (RNNLAB_DATA): the sentiment data is not prepared there (no "
     "sentiment/manifest.json) and the folder cannot be written"),
    # after torch loads: the data module's refusal, offline (one line, no retries, no .lock-*
    # file; the run dir and the logs/ this command made go: rnnlab.commands.train)
    (["data=sentiment", "data.source=hf:nonexistent/zzz"], {"HF_HUB_OFFLINE": "1"}, None, False,
     "data.source=hf:nonexistent/zzz: the Hugging Face Hub cannot be reached"),
]
SHARED = ["debug=fast", "logger=csv"]


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _read_only(folder):
    """The command prefix that runs a command with ``folder`` read-only (chmod, or for root,
    whom permissions do not stop, a read-only bind mount in a user namespace); skip if neither
    can be had here."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    script = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"')
    prefix = ["unshare", "-rm", "sh", "-c", script, str(folder)]
    if shutil.which("unshare") is None or subprocess.run(
            [*prefix, "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no way to make a read-only folder here (root, no user namespaces)")
    return prefix


@pytest.mark.parametrize("argv,env,ro,fast,said", COMMANDS,
                         ids=[" ".join(c[0]) for c in COMMANDS])
def test_a_bad_command_is_exit_2_one_line_and_leaves_the_tree_as_it_was(tmp_path, argv, env, ro,
                                                                       fast, said):
    import os
    import subprocess
    import sys
    import time

    work = tmp_path / "work"  # the cwd: ./logs and ./data would land here
    work.mkdir()
    prefix = []
    folder = tmp_path / "ro"
    if ro is not None:
        folder.mkdir()
        prefix = _read_only(folder)
    full_env = {k: v for k, v in os.environ.items() if k not in (
        "HYDRA_FULL_ERROR", "WANDB_SERVICE", "RNNLAB_LOGS", "RNNLAB_DATA")}
    full_env.update({k: v.format(ro=folder) for k, v in env.items()})
    if fast:  # a torch that cannot be imported: the refusal must come before it
        fake = tmp_path / "notorch"
        for name in ("torch", "lightning"):
            (fake / name).mkdir(parents=True)
            (fake / name / "__init__.py").write_text(
                f"raise ImportError('{name} imported before the refusal')\n")
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(fake), *filter(None, [full_env.get("PYTHONPATH")])])
    before = _tree(tmp_path)
    started = time.monotonic()
    done = subprocess.run([*prefix, sys.executable, "-m", "rnnlab.train",
                           *(a.format(ro=folder) for a in argv), *SHARED],
                          cwd=work, env=full_env, capture_output=True, text=True, timeout=300,
                          check=False)
    took = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(
        "rnnlab-train: error: " + said.format(ro=folder)), lines
    assert _tree(tmp_path) == before
    if fast:
        assert took < FAST_S, f"{took:.1f} s"


def test_a_refused_run_removes_only_the_folders_its_command_made(tmp_path):
    """rnnlab-train notes which folders of the log dir do not exist before the run; after a
    refusal it removes those that are empty -- never one that was there (the user's), nor one
    holding anything."""
    from rnnlab.config.folders import folders_to_make, remove_made_folders

    (tmp_path / "mine").mkdir()  # the user's, empty
    log_dir = tmp_path / "mine" / "a" / "logs"
    made = folders_to_make(log_dir)
    assert made == [log_dir, log_dir.parent]
    (log_dir / "runs" / "adhoc").mkdir(parents=True)  # what the refused run made
    remove_made_folders(made)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine"]

    made = folders_to_make(log_dir)
    (log_dir / "multiruns" / "x").mkdir(parents=True)
    (log_dir / "runs").mkdir()
    (log_dir / "multiruns" / "x" / "other.txt").write_text("another process's")
    remove_made_folders(made)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "mine", "mine/a", "mine/a/logs", "mine/a/logs/multiruns", "mine/a/logs/multiruns/x",
        "mine/a/logs/multiruns/x/other.txt"]


def test_a_sweep_is_refused_for_a_cell_form_only_when_none_of_its_jobs_could_train():
    # mgu is a GRU form: the LSTM job fails on its own and the GRU job trains
    # (tests/test_multirun.py runs that sweep); a form no job's cell has refuses the sweep
    assert command_line_error(["-m", "model=lstm,gru", "model.variant=mgu"],
                              CONFIG_DIR, CONFIG_NAME) is None
    assert "model.variant='mgux' is not one of" in command_line_error(
        ["-m", "model=lstm,gru", "model.variant=mgux"], CONFIG_DIR, CONFIG_NAME)
    assert command_line_error(["model=lstm", "model.variant=mgu"], CONFIG_DIR, CONFIG_NAME)
