"""The end-of-sweep summary: a Hydra callback that aggregates the sweep's own run directories."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from rnnlab.results.aggregate import aggregate
from rnnlab.results.runs import load_runs
from rnnlab.results.tables import print_rich, render


def write_summary(sweep_dir: Path) -> Path | None:
    """Aggregate every run under ``sweep_dir`` into summary.csv / summary.md; print it."""
    runs = load_runs([sweep_dir])
    if runs.empty:
        return None
    table = aggregate(runs)
    (sweep_dir / "summary.csv").write_text(render(table, "csv"))
    (sweep_dir / "summary.md").write_text(render(table, "md"))
    keys = ", ".join(table.attrs["keys"]) or "none"
    print_rich(table, title=f"{len(runs)} runs in {sweep_dir} (rows: {keys}; seeds pooled)")
    print(f"summary: {sweep_dir / 'summary.md'}  (figures and report: rnnlab-report {sweep_dir})",
          file=sys.stderr)
    return sweep_dir / "summary.md"


class SweepSummary(Callback):
    """After a multirun, print and save one table of the sweep's results."""

    def on_multirun_end(self, config, **kwargs) -> None:
        write_summary(Path(config.hydra.sweep.dir))
