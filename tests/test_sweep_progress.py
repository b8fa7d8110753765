"""The multirun progress line: counts from the sweep dir, the grid's total, the ETA."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from rnnlab.run.sweep_progress import STATE, line, total_jobs


def _config(task, params=None, target="hydra._internal.core_plugins.basic_sweeper.BasicSweeper"):
    return OmegaConf.create({"hydra": {"sweeper": {"_target_": target, "params": params or {}},
                                       "overrides": {"task": task}}})


def test_the_total_is_the_grid_the_command_line_wins_over_the_presets_params():
    assert total_jobs(_config(["model=rnn,gru,lstm", "seed=0,1"])) == 6
    assert total_jobs(_config(["seed=0,1"], {"model": "rnn,gru,lstm"})) == 6
    assert total_jobs(_config(["model=gru", "seed=0,1"], {"model": "rnn,gru,lstm"})) == 2
    assert total_jobs(_config(["optimizer.lr=range(1,4)"])) == 3
    optuna = _config([], target="hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    optuna.hydra.sweeper.n_trials = 20
    assert total_jobs(optuna) == 20
    assert total_jobs(_config([], target="some.OtherSweeper")) is None


def test_the_line_counts_finished_jobs_and_estimates_the_rest(tmp_path):
    (tmp_path / STATE).write_text(json.dumps({"start": 1000.0, "total": 6, "n_jobs": 2}))
    for job, status in enumerate(["completed", "diverged", "running"]):
        (tmp_path / str(job)).mkdir()
        (tmp_path / str(job) / "results.json").write_text(
            json.dumps({"status": status, "wall_time_s": 30.0}))
    # 2 done at 30 s each; 4 left, 2 at a time: 60 s
    assert line(tmp_path, now=1075.0) == "[sweep] 2/6 jobs done, elapsed 1m15s, ETA 1m00s"
    assert line(tmp_path / "nowhere") is None
