"""The end-of-sweep summary: a Hydra callback that aggregates the sweep's own run directories."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from rnnlab.config.launch import launched_ranks
from rnnlab.results.aggregate import aggregate
from rnnlab.results.runs import load_runs
from rnnlab.results.tables import print_rich, render


def write_summary(sweep_dir: Path, figures: bool = True):
    """Aggregate every run under ``sweep_dir`` into summary.csv / summary.md and print it; with
    ``figures``, also write the sweep's report folder (rnnlab-report) and say where it is.
    Returns the runs (one row each), or None when the sweep left none."""
    runs = load_runs([sweep_dir]) if sweep_dir.exists() else None
    if runs is None or runs.empty:
        return None
    table = aggregate(runs)
    (sweep_dir / "summary.csv").write_text(render(table, "csv"))
    (sweep_dir / "summary.md").write_text(render(table, "md"))
    from rnnlab.run.console import shown_path, wrap

    keys = ", ".join(table.attrs["keys"]) or "none"
    where = shown_path(sweep_dir)  # the paths printed fit the terminal: relative under the cwd
    print(wrap([f"{len(runs)} runs in", where]))
    print(f"rows: {keys} (every setting that differs, except seed; seeds pooled)")
    print_rich(table, title="")
    print(wrap(["summary:", shown_path(sweep_dir / "summary.md")]))
    if figures:
        print(wrap(["rnnlab-train: writing the sweep's report (table and figures) into",
                    f"{shown_path(sweep_dir / 'report')} ..."]), flush=True)
        from rnnlab.results.report import write_report

        try:
            report = write_report(runs, table, sweep_dir / "report")
        except Exception as error:  # noqa: BLE001 - the table is saved; a figure must not fail the sweep
            print(f"report: not written ({type(error).__name__}: {error}); the table is in "
                  f"summary.md", file=sys.stderr)
        else:
            print(wrap(["report: ", shown_path(report), "(table, figures as PNG and PDF)"]))
            if (report.parent / "gradflow.png").exists():
                print(wrap(["gradient flow:", shown_path(report.parent / "gradflow.png")]))
    return runs


class SweepSummary(Callback):
    """After a multirun, print and save one table of the sweep's results (and its figures)."""

    def __init__(self, figures: bool = True) -> None:
        self.figures = figures

    def on_multirun_end(self, config, **kwargs) -> None:
        ranks = launched_ranks()
        if ranks is not None and ranks[0] != 0:  # a sweep every rank of a launch ran: rank 0 sums
            return
        runs = write_summary(Path(config.hydra.sweep.dir), figures=self.figures)
        if runs is None:
            return
        for status in ("diverged", "failed"):
            for run in runs[runs["status"] == status].itertuples():
                print(f"{status}: {run.run_dir}: {run.error}", file=sys.stderr)
        failed = int((runs["status"] == "failed").sum())
        if failed:  # diverged runs are results; a failed job makes the sweep exit non-zero
            print(f"rnnlab-train: {failed} of {len(runs)} jobs failed (listed above)",
                  file=sys.stderr)
            raise SystemExit(1)
