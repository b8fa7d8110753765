"""``rnnlab-aggregate``: run directories -> a paper-style table (rnnlab.results). The run-dir
arguments and their loading are shared with rnnlab-report (rnnlab.commands.report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlab.commands import refuse

HELP = """\
Aggregate run directories into a paper-style table: one row per setting, mean ± std over seeds.

Rows are every setting that differs between the runs except `seed` (read from each run's
results.json and .hydra/overrides.yaml): runs that differ in a setting are never pooled. `--by`
chooses which of those settings stay rows; the others become columns. `n` counts the completed
runs averaged in a cell; diverged and failed runs are counted beside it, never averaged in. The
preset's published numbers sit beside ours ("published"), and tasks with a baseline get a verdict.

  rnnlab-aggregate logs/multiruns/forget_bias_jozefowicz2015/*
  rnnlab-aggregate logs/multiruns/copy_arjovsky2016 --by model.cell --metric test/loss
  rnnlab-aggregate SWEEP --format latex --out table.tex
"""


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The run dirs, ``--metric`` and ``--by`` (rnnlab-aggregate and rnnlab-report)."""
    parser.add_argument("paths", nargs="+", help="run or sweep directories (searched recursively)")
    parser.add_argument("--metric", action="append",
                        help="metric column(s), e.g. test/loss (default: the test metrics the runs "
                             "have)")
    parser.add_argument("--by", action="append",
                        help="setting(s) kept as rows; the other differing settings become "
                             "columns (default: all of them are rows)")


def load_table(prog: str, args) -> tuple:
    """The runs under ``args.paths`` and their aggregate table; bad input is refused (exit 2)."""
    from rnnlab.results.aggregate import aggregate
    from rnnlab.results.runs import load_runs

    try:
        runs = load_runs(args.paths)
    except FileNotFoundError as error:
        raise refuse(prog, str(error)) from None
    skipped = len(runs.attrs.get("skipped", []))
    if skipped:  # each was named on its own line as it was skipped
        print(f"{prog}: warning: {skipped} unreadable results.json skipped", file=sys.stderr)
    if runs.empty:
        raise refuse(prog, f"no {'readable ' if skipped else ''}results.json under "
                         f"{' '.join(args.paths)}")
    try:
        table = aggregate(runs, metrics=args.metric)
    except (KeyError, ValueError) as error:
        raise refuse(prog, str(error).strip(chr(39))) from None
    missing = [m for m in args.metric or [] if m not in runs]
    if missing:
        raise refuse(prog, f"--metric {', '.join(missing)}: no run has it (they have "
                         f"{', '.join(c for c in runs.columns if '/' in c)})")
    return runs, table


def main(argv: list[str] | None = None) -> int:
    from rnnlab.results.tables import FORMATS, render

    parser = argparse.ArgumentParser(prog="rnnlab-aggregate", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="md")
    parser.add_argument("--out", type=Path, help="write the table here instead of stdout")
    args = parser.parse_args(argv)
    _, table = load_table(parser.prog, args)
    try:
        text = render(table, args.format, by=args.by, metric=(args.metric or [None])[0],
                      by_name="--by")
    except (KeyError, ValueError) as error:
        raise refuse(parser.prog, str(error).strip(chr(39))) from None
    if args.out:
        from rnnlab.run.atomic import atomic_open

        with atomic_open(args.out) as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
