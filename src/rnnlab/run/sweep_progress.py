"""One progress line per finished job of every multirun: jobs done / total, elapsed, ETA.

A Hydra callback. With the joblib launcher the jobs end in worker processes, so the state lives
in the sweep dir, not in memory: ``on_multirun_start`` (the launching process) writes the start
time and the number of jobs the sweep will run to ``<sweep dir>/.progress.json``; each job's
``on_job_end`` (wherever it runs) counts the jobs that have a results.json and prints::

    [sweep] 3/8 jobs done, elapsed 1m12s, ETA 2m00s

The ETA assumes the remaining jobs take the mean time of the finished ones, ``n_jobs`` at a
time. The total is the basic sweeper's grid (the product of the sweep overrides) or the Optuna
sweeper's ``n_trials``; for another sweeper the line gives the count without a total.

At the end of the multirun (after the sweep's table and report), when its jobs recorded gradient
flow: the one command that plots it, for every job or one (the jobs' report lines leave it out)::

    gradient flow, every job (one job: its run dir): rnnlab-plot-gradflow \\
      /abs/logs/multiruns/quickstart/2026-12-08_01-26-37-861503
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from rnnlab.run.rundir import finished_jobs

STATE = ".progress.json"


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return (f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600
            else f"{seconds // 60}m{seconds % 60:02d}s")


def total_jobs(config) -> int | None:
    """How many jobs the multirun launches: the basic sweeper's grid, Optuna's n_trials."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = str(config.hydra.sweeper.get("_target_", ""))
    if "optuna" in sweeper.lower():
        trials = config.hydra.sweeper.get("n_trials")
        return int(trials) if trials else None
    if not sweeper.endswith("BasicSweeper"):
        return None
    params = {str(k): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
    parser = OverridesParser.create()
    for override in parser.parse_overrides(list(config.hydra.overrides.task)):
        key = override.get_key_element()
        if override.is_sweep_override():
            params[key] = override.input_line.partition("=")[2]
        else:
            params.pop(key, None)
    if not params:
        return 1
    parsed = parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    sizes = [len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1
             for o in parsed]
    return math.prod(sizes)


def line(sweep_dir: Path, now: float | None = None) -> str | None:
    """The progress line of a sweep dir, from its state file and its jobs' results.json."""
    try:
        state = json.loads((sweep_dir / STATE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    walls = [float(record.get("wall_time_s") or 0.0)
             for record in finished_jobs(sweep_dir).values()]
    done, total = len(walls), state.get("total")
    elapsed = (now or time.time()) - float(state["start"])
    text = f"[sweep] {done}/{total} jobs done" if total else f"[sweep] {done} jobs done"
    text += f", elapsed {clock(elapsed)}"
    if total and walls and done < total:
        eta = sum(walls) / len(walls) * (total - done) / max(1, int(state.get("n_jobs") or 1))
        text += f", ETA {clock(eta)}"
    return text


class SweepProgress(Callback):
    def on_multirun_start(self, config, **kwargs: Any) -> None:
        from rnnlab.run.atomic import atomic_open

        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        try:
            total = total_jobs(config)
        except Exception:  # noqa: BLE001 - a sweeper we cannot read: count without a total
            total = None
        n_jobs = config.hydra.launcher.get("n_jobs") or 1
        # A resumed sweep keeps its first start, so elapsed counts the whole sweep.
        start = time.time()
        try:
            start = float(json.loads((sweep_dir / STATE).read_text())["start"])
        except (OSError, ValueError, KeyError):
            pass
        with atomic_open(sweep_dir / STATE, "w") as handle:
            json.dump({"start": start, "total": total, "n_jobs": int(n_jobs)}, handle)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        from rnnlab.run.console import command_lines, plot_command
        from rnnlab.run.rundir import RunDir

        sweep_dir = Path(config.hydra.sweep.dir)
        if any(RunDir(sweep_dir / job).gradflow.exists() for job in finished_jobs(sweep_dir)):
            print(command_lines(plot_command(sweep_dir), "gradient flow, every job (one job: its "
                                "run dir): ", indent="", more="  "), flush=True)

    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        if not str(config.hydra.get("mode", "")).endswith("MULTIRUN"):
            return  # a single run has its own report line
        text = line(Path(config.hydra.sweep.dir))
        if text:
            print(text, flush=True)
