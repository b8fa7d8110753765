"""Read run directories back into tables: what `make run` prints and scripts/aggregate.py builds on.

Scripts read run directories (results.json), never live objects, so a table can be rebuilt from
any sweep at any later time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

# (column title, results.json path) for the comparison table; missing values print as "-".
DEFAULT_COLUMNS = (
    ("cell", "config.model.cell"),
    ("impl", "config.model.impl"),
    ("data", "config.data.name"),
    ("T", "config.data.seq_len"),
    ("hidden", "hidden_size"),
    ("params", "num_params"),
    ("test loss", "metrics.test/loss"),
    ("baseline", "metrics.baseline/loss"),
    ("test acc", "metrics.test/acc"),
    ("test mse", "metrics.test/mse"),
    ("best val loss", "metrics.val/loss_best"),
    ("steps", "steps"),
    ("wall s", "wall_time_s"),
    ("status", "status"),
)


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Every results.json under the given run or sweep directories, sorted by path."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_file() and path.name == "results.json":
            found.add(path)
        elif path.is_dir():
            found.update(path.rglob("results.json"))
    return sorted(found)


def _get(record: dict[str, Any], dotted: str) -> Any:
    head, _, rest = dotted.partition(".")
    if head == "metrics":
        return record.get("metrics", {}).get(rest)
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def load_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    runs = []
    for path in find_results(paths):
        record = json.loads(path.read_text())
        record["run_dir"] = str(path.parent)
        runs.append(record)
    return runs


def runs_table(runs: list[dict[str, Any]], columns=DEFAULT_COLUMNS) -> pd.DataFrame:
    """One row per run; columns that no run has are dropped."""
    rows = [{title: _get(run, key) for title, key in columns} for run in runs]
    frame = pd.DataFrame(rows, columns=[title for title, _ in columns])
    return frame.dropna(axis=1, how="all")


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(frame: pd.DataFrame, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(column, justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(_format(v) for v in row))
    Console(width=max(120, 14 * len(frame.columns))).print(table)


def write_table(frame: pd.DataFrame, directory: Path) -> None:
    frame.to_csv(directory / "summary.csv", index=False)
    (directory / "summary.md").write_text(frame.to_markdown(index=False) + "\n")


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra always has it from 1.1
    _HydraCallback = object


class SweepSummary(_HydraCallback):
    """Hydra callback: after a multirun, print and save one table of every job's results."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = load_runs([sweep_dir])
        if not runs:
            return
        frame = runs_table(runs)
        write_table(frame, sweep_dir)
        print_table(frame, title=f"{len(runs)} runs in {sweep_dir}")
