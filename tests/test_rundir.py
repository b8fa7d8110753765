"""One owner of the run directory (rnnlab.run.rundir.RunDir): it names every file of a run's
layout, the config tree puts the checkpoints and logs where it says, nothing else in the package
names those files, and gradflow.npz is written and read by one class, with its version."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
from conftest import REPO, compose_config

import rnnlab.config.schemas  # noqa: F401  (the structured configs compose_config needs)
from rnnlab.gradflow.stats import GradflowFile, load_gradflow
from rnnlab.run.rundir import KEPT, STATUSES, RunDir, finished_jobs

SRC = REPO / "src" / "rnnlab"
# The names a run dir's files go by: only rnnlab/run/rundir.py may spell them out.
OWNED = ("results.json", "gradflow.npz", "metrics.csv", "best.ckpt", "last.ckpt",
         "previous.ckpt", "train.log", "overrides.yaml", ".rnnlab.lock", "multirun.yaml")


def test_a_run_dir_names_every_file_of_its_layout(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.results == tmp_path / "run" / "results.json"
    assert run.gradflow == tmp_path / "run" / "gradflow.npz"
    assert run.metrics_csv == tmp_path / "run" / "csv" / "metrics.csv"
    assert [run.checkpoint(n) for n in ("best", "last", "previous")] == [
        tmp_path / "run" / "checkpoints" / f"{n}.ckpt" for n in ("best", "last", "previous")]
    assert run.path / RunDir.LAST == run.checkpoint("last")
    assert run.path / RunDir.PREVIOUS == run.checkpoint("previous")
    assert run.wandb == tmp_path / "run" / "wandb"
    assert (run.hydra_config, run.overrides, run.hydra_yaml, run.resumes) == tuple(
        tmp_path / "run" / ".hydra" / n
        for n in ("config.yaml", "overrides.yaml", "hydra.yaml", "resumes.yaml"))
    assert run.train_log == tmp_path / "run" / "train.log"
    assert (run.lock.name, run.holder.name) == (".rnnlab.lock", ".rnnlab.lock.holder")
    assert STATUSES == ("completed", "diverged", "failed") and KEPT == STATUSES[:2]


def test_the_config_tree_puts_checkpoints_and_logs_where_the_run_dir_says(tmp_path):
    cfg = compose_config(["logger=csv"], tmp_path)
    run = RunDir(tmp_path)
    for name, file in (("model_checkpoint", "best"), ("last_checkpoint", "last")):
        callback = cfg.callbacks[name]
        assert Path(callback.dirpath) / f"{callback.filename}.ckpt" == run.checkpoint(file)
    csv = cfg.logger.csv
    assert Path(csv.save_dir) / csv.name / csv.version / "metrics.csv" == run.metrics_csv


def test_many_run_dirs_in_one_process_are_independent_values(tmp_path):
    runs = [RunDir(tmp_path / "sweep" / str(i)) for i in range(3)]
    for i, run in enumerate(runs):
        run.write_results({"status": STATUSES[i], "wall_time_s": i})
    assert [r.read_results()["status"] for r in runs] == list(STATUSES)
    assert [r.finished() is not None for r in runs] == [True, True, False]
    assert RunDir(str(runs[0].path)) == runs[0] and len(set(runs + [RunDir(runs[1].path)])) == 3
    assert sorted(finished_jobs(tmp_path / "sweep")) == ["0", "1", "2"]
    (runs[2].results).write_text("{half")  # being written: not finished yet
    assert sorted(finished_jobs(tmp_path / "sweep")) == ["0", "1"]


def test_gradflow_npz_is_written_and_read_by_one_class_with_its_version(tmp_path):
    run = RunDir(tmp_path)
    arrays = {"prefix": np.str_("gradflow"), "layers": np.array(["layer0"]),
              "mean": np.ones((1, 1, 3), dtype=np.float32)}
    assert GradflowFile(run.gradflow).write(arrays) == run.gradflow
    saved = GradflowFile(tmp_path).read()  # the run dir, or the file itself
    assert list(saved)[0] == "version" and int(saved["version"]) == GradflowFile.VERSION
    assert saved["prefix"] == "gradflow" and saved["layers"] == ["layer0"]
    assert load_gradflow(run.gradflow).keys() == saved.keys()


def _code_strings(path: Path):
    """The string constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            yield node.lineno, node.value


def test_only_the_run_dir_module_names_a_run_dirs_files():
    owner = SRC / "run" / "rundir.py"
    named = [f"{path.relative_to(SRC)}:{line}: {text!r}"
             for path in sorted(SRC.rglob("*.py")) if path != owner
             for line, text in _code_strings(path)
             if any(text == name or text.endswith(("/" + name, "*" + name)) for name in OWNED)]
    assert not named, "\n".join(named)


def test_runs_recorded_before_the_modules_moved_pool_with_todays(tmp_path):
    """A run dir written before [house] moved the modules into packages names its callbacks by
    their old paths: the same settings, so its seeds pool with today's runs (one row), and the
    allow-list of recorded targets still takes it (it resumes and loads)."""
    from test_results import write_run

    from rnnlab.config import untrusted
    from rnnlab.results import aggregate, load_runs

    for seed, target in enumerate(("rnnlab.solved.SolvedStop", "rnnlab.run.solved.SolvedStop")):
        write_run(tmp_path, str(seed), {"callbacks.solved_stop._target_": target,
                                        "callbacks.solved_stop.consecutive": 3}, seed=seed,
                  metrics={"test/loss": 0.1 + seed})
    table = aggregate(load_runs([tmp_path]))
    assert len(table) == 1 and int(table["n"].iloc[0]) == 2
    untrusted.check_config({"callbacks": {"solved_stop": {"_target_": "rnnlab.solved.SolvedStop"},
                                          "run_state": {"_target_": "rnnlab.resume.RunState"}},
                            "logger": {"wandb": {"_target_": "rnnlab.tracking.wandb_logger"}}},
                           "recorded")
