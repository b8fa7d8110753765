"""One folder per sweep: the table in three formats, every figure (PNG + PDF), a markdown report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rnnlab.config.naming import label
from rnnlab.results import figures
from rnnlab.results.tables import render
from rnnlab.run.atomic import atomic_path
from rnnlab.run.verdict import VERDICT_METRIC


def write_report(runs: pd.DataFrame, table: pd.DataFrame, out: Path,
                 by: Sequence[str] | None = None, by_name: str = "by") -> Path:
    """Write table.{md,csv,tex}, the figures and report.md into ``out``; return report.md.

    Built in a temporary folder beside ``out`` and moved into place at the end, so a failure
    leaves no half-written report.
    """
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _write(runs, table, tmp, by, by_name)
    return out / "report.md"


def _write(runs: pd.DataFrame, table: pd.DataFrame, out: Path, by, by_name: str) -> None:
    keys, metrics = table.attrs["keys"], table.attrs["metrics"]
    headline = metrics[0] if metrics else None
    md = render(table, "md")
    (out / "table.md").write_text(md)
    (out / "table.csv").write_text(render(table, "csv"))
    (out / "table.tex").write_text(render(table, "latex"))
    intro = (f"{len(runs)} runs; rows = the settings that differ between them "
             f"({', '.join(keys) or 'none'}), seeds pooled; mean ± std over the n completed "
             "runs of each row.")
    lines = ["# Sweep report", "", intro, "", md]
    if by and headline:
        pivoted = render(table, "md", by=by, metric=headline, by_name=by_name)
        (out / "table_by.md").write_text(pivoted)
        lines += ["", f"By {', '.join(by)}:", "", pivoted]

    def figure(fig, stem: str, caption: str) -> None:
        if fig is None:
            return
        figures.save(fig, out, stem)
        lines.extend(["", f"![{caption}]({stem}.png)", "", f"*{caption}* ([PDF]({stem}.pdf))"])

    if headline:
        for key in figures.numeric_keys(table):
            figure(figures.metric_vs(table, key, headline), f"{_stem(headline)}_vs_{_stem(key)}",
                   f"{headline} against {label(key, keys)}, mean ± std over seeds")
    figure(figures.training_curves(runs, table), "training_curves",
           "training curves per row: mean over seeds, band min-max")
    figure(figures.gradflow_per_row(runs, table), "gradflow",
           "gradient flow per row, one run each (the row's lowest seed, named in the legend; "
           "not a mean over seeds): batch-mean norm over t at the first and last record")
    figure(figures.dynamics_per_row(runs, table), "dynamics",
           "why per row, one run each (the row's lowest seed with a dynamics record): "
           "step-Jacobian norms and their products over t, gate means, Lyapunov exponents, "
           "timescales and the textbook cases (first record dashed, last solid)")
    if "solved" in table and len(keys) == 2:
        numeric = figures.numeric_keys(table)
        columns = numeric[0] if numeric else keys[1]
        rows = next(k for k in keys if k != columns)
        figure(figures.success_heatmap(table, rows, columns), "success_rate",
               f"fraction of seeds that solve the task ({VERDICT_METRIC} below 10% of the "
               "baseline)")
    bad = runs[runs["status"] != "completed"]
    if not bad.empty:
        lines += ["", "## Runs not averaged in", ""]
        lines += [f"- `{r.run_dir}`: {r.status}: {r.error or 'no error recorded'}"
                  for r in bad.itertuples()]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _stem(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")
