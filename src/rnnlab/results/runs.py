"""Run directories -> one pandas row per run: flat config columns, metrics, status.

Scripts and tables read run directories (``results.json`` and ``.hydra/overrides.yaml``), never
live objects, so any table can be rebuilt from any sweep at any later time.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from rnnlab.config.naming import current_target, flatten
from rnnlab.run.rundir import RunDir

# Columns every frame from load_runs has, whatever the runs hold.
RUN_COLUMNS = ("run_dir", "status", "error", "seed", "num_params", "hidden_size", "steps",
               "wall_time_s", "overrides", "reference")


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Every results.json under the given run or sweep directories (or the files themselves)."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_file() and path.name == RunDir.RESULTS:
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for p in path.rglob(RunDir.RESULTS))
        elif path.is_file():
            continue  # a sweep's own files (multirun.yaml, summary.csv), which SWEEP/* names too
        else:
            raise FileNotFoundError(f"no run directory or results.json at {path}")
    return sorted(found, key=_natural)


def _natural(path: Path) -> list:
    # Job 10 after job 9: numeric path parts compare as numbers.
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def read_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides of the run (Hydra's ``.hydra/overrides.yaml``), if saved."""
    return RunDir(run_dir).read_overrides()


def run_record(results_path: Path) -> dict[str, Any]:
    """One run as a flat dict: RUN_COLUMNS, ``config`` keys dotted, metrics under their names."""
    record = json.loads(results_path.read_text())
    run_dir = results_path.parent
    row: dict[str, Any] = {
        "run_dir": str(run_dir),
        "status": record.get("status"),
        "error": record.get("error"),
        "seed": record.get("seed"),
        "num_params": record.get("num_params"),
        "hidden_size": record.get("hidden_size"),
        "steps": record.get("steps"),
        "wall_time_s": record.get("wall_time_s"),
        "overrides": read_overrides(run_dir),
        "reference": record.get("reference"),
    }
    # targets recorded before their module moved read as today's: the same setting
    config = {key: current_target(value) if key.endswith("._target_") else value
              for key, value in flatten(record.get("config") or {}).items()}
    for key, value in config.items():
        row.setdefault(key, value)
    row["_config_keys"] = [k for k in config if k not in RUN_COLUMNS]
    for name, value in (record.get("metrics") or {}).items():
        if name in row:  # a metric named like a setting: keep the setting, label the metric
            name = f"metrics/{name}"
        row[name] = float("nan") if value is None else float(value)
    return row


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run found under ``paths`` (run dirs, sweep dirs, or results.json files).

    Columns: ``run_dir``, ``status`` (completed | diverged | failed), ``error``, ``seed``,
    ``num_params``, ``hidden_size``, ``steps``, ``wall_time_s``, ``overrides`` (list),
    ``reference`` (the preset's published numbers), every config key dotted (``model.cell``,
    ``data.seq_len``, ``optimizer.lr``, ...) and every metric (``test/loss``, ``val/loss_best``,
    ``baseline/loss``, ...). A run that lacks a key has NaN/None there. A results.json that
    cannot be read is skipped with a warning naming it, and listed in ``frame.attrs["skipped"]``.
    """
    rows, config_keys, skipped = [], {}, []
    for path in find_results(paths):
        try:
            row = run_record(path)
        except (OSError, ValueError, TypeError, AttributeError) as error:
            # one damaged results.json (truncated, not JSON, not a record) does not stop the
            # others: it is named, skipped and counted (frame.attrs["skipped"])
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"warning: skipped {path}: not a readable results.json ({reason})",
                  file=sys.stderr)
            skipped.append(str(path))
            continue
        config_keys.update(dict.fromkeys(row.pop("_config_keys")))
        rows.append(row)
    frame = pd.DataFrame(rows)
    # Which columns are settings (metric names such as "lr-Adam" need not carry a slash).
    frame.attrs["config_keys"] = list(config_keys)
    frame.attrs["skipped"] = skipped
    for column in RUN_COLUMNS:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    return frame


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
