#!/usr/bin/env python
"""Aggregate run directories into a paper-style table: mean ± std over seeds.

    python scripts/aggregate.py logs/multiruns/quickstart/2026-...            # one sweep
    python scripts/aggregate.py logs/multiruns/chung2014_music --by model.cell \
        --metric test/nll --metric test/acc --format latex --out table.tex

Rows are the distinct values of the --by config keys (default: the cell and its implementation);
each metric column shows mean ± std over the runs in that row (seeds), and `n` counts them.
Diverged and failed runs are counted in their own column, never averaged in. When the runs carry
published numbers (results.json `reference`), a `paper` column shows them beside ours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from rnnlab.summary import load_runs

DEFAULT_METRICS = ("test/loss", "test/acc", "test/mse", "test/nll", "baseline/loss")


def _config_value(run: dict, dotted: str):
    value = run.get("config", {})
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _reference(run: dict, metric: str, cell: str | None):
    published = (run.get("reference") or {}).get(metric)
    if isinstance(published, dict):
        return published.get(cell)
    return published if isinstance(published, (int, float)) else None


def aggregate(runs: list[dict], by: list[str], metrics: list[str]) -> pd.DataFrame:
    rows = []
    for run in runs:
        row = {key: _config_value(run, key) for key in by}
        row["status"] = run.get("status")
        row["num_params"] = run.get("num_params")
        for metric in metrics:
            row[metric] = run.get("metrics", {}).get(metric)
            row[f"paper {metric}"] = _reference(run, metric, _config_value(run, "model.cell"))
        rows.append(row)
    frame = pd.DataFrame(rows)
    completed = frame[frame["status"] == "completed"]
    table = []
    for keys, group in frame.groupby(by, dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        done = completed.loc[completed.index.intersection(group.index)]
        entry = dict(zip(by, keys))
        entry["params"] = int(group["num_params"].median()) if group["num_params"].notna().any() else None
        entry["n"] = len(done)
        entry["not completed"] = len(group) - len(done)
        for metric in metrics:
            values = pd.to_numeric(done[metric], errors="coerce").dropna()
            if values.empty:
                continue
            std = f" ± {values.std(ddof=1):.3g}" if len(values) > 1 else ""
            entry[metric] = f"{values.mean():.4g}{std}"
            published = group[f"paper {metric}"].dropna()
            if not published.empty:
                entry[f"paper {metric}"] = f"{published.iloc[0]:.4g}"
        table.append(entry)
    return pd.DataFrame(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="run or sweep directories (searched recursively)")
    parser.add_argument("--by", action="append", help="config key(s) that make a row "
                        "(default: model.cell, model.impl)")
    parser.add_argument("--metric", action="append", help=f"metric columns (default: those of "
                        f"{', '.join(DEFAULT_METRICS)} that the runs have)")
    parser.add_argument("--format", choices=("md", "csv", "latex"), default="md")
    parser.add_argument("--out", type=Path, help="write the table here instead of stdout")
    args = parser.parse_args(argv)

    runs = load_runs(args.paths)
    if not runs:
        print(f"aggregate: no results.json under {' '.join(args.paths)}", file=sys.stderr)
        return 2
    by = args.by or ["model.cell", "model.impl"]
    metrics = args.metric or [m for m in DEFAULT_METRICS
                              if any(m in r.get("metrics", {}) for r in runs)]
    table = aggregate(runs, by, metrics)
    text = {"md": lambda t: t.to_markdown(index=False), "csv": lambda t: t.to_csv(index=False),
            "latex": lambda t: t.to_latex(index=False)}[args.format](table)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
