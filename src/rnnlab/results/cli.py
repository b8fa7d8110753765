"""Console scripts: ``rnnlab-aggregate`` (a table) and ``rnnlab-report`` (table + figures)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

AGGREGATE_HELP = """\
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


def refuse(prog: str, message: str) -> SystemExit:
    """Bad input (a missing or empty run dir, an unknown metric or setting): one line on stderr
    and exit 2, as every rnnlab command does (rnnlab-lyapunov, rnnlab-by-position, rnnlab-train).
    Raise what it returns."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return SystemExit(2)


def _parser_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="run or sweep directories (searched recursively)")
    parser.add_argument("--metric", action="append",
                        help="metric column(s), e.g. test/loss (default: the test metrics the runs "
                             "have)")
    parser.add_argument("--by", action="append",
                        help="setting(s) kept as rows; the other differing settings become "
                             "columns (default: all of them are rows)")


def _load(prog: str, args) -> tuple:
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


def aggregate_main(argv: list[str] | None = None) -> int:
    from rnnlab.results.tables import FORMATS, render

    parser = argparse.ArgumentParser(prog="rnnlab-aggregate", description=AGGREGATE_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _parser_common(parser)
    parser.add_argument("--format", choices=FORMATS, default="md")
    parser.add_argument("--out", type=Path, help="write the table here instead of stdout")
    args = parser.parse_args(argv)
    _, table = _load(parser.prog, args)
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


def report_main(argv: list[str] | None = None) -> int:
    from rnnlab.results.report import write_report

    parser = argparse.ArgumentParser(
        prog="rnnlab-report",
        description="The table and every figure of a sweep in one folder, with a markdown report "
                    "that embeds them: table.md/.csv/.tex, metric vs each numeric swept setting, "
                    "training curves per row (mean and band over seeds), gradient flow per row, "
                    "and a success-rate heatmap when two settings are swept.")
    _parser_common(parser)
    parser.add_argument("--out", type=Path,
                        help="output folder (default: <first path>/report)")
    args = parser.parse_args(argv)
    runs, table = _load(parser.prog, args)
    out = args.out or Path(args.paths[0]) / "report"
    try:
        report = write_report(runs, table, out, by=args.by, by_name="--by")
    except KeyError as error:
        raise refuse(parser.prog, str(error).strip(chr(39))) from None
    print(report)
    return 0


def dashboard_main(argv: list[str] | None = None) -> int:
    import json
    import os

    parser = argparse.ArgumentParser(
        prog="rnnlab-dashboard",
        description="Build the W&B workspace (and with --report a report) of an experiment "
                    "group, with sections chosen from what the group sweeps: the headline "
                    "metric per row beside the baseline, metric against each numeric swept "
                    "setting, training curves per row, gradient-flow curves, heatmaps and "
                    "scalars, and a runs table with the swept settings as columns.")
    parser.add_argument("--entity", required=True, help="W&B entity (user or team)")
    parser.add_argument("--project", default="rnnlab", help="W&B project (default: rnnlab)")
    parser.add_argument("--group", required=True,
                        help="the experiment group (experiment_name), e.g. gru_variants")
    parser.add_argument("--runs", nargs="+", type=Path,
                        help="its run or sweep directories (default: logs/multiruns/<group> "
                             "and logs/runs/<group> when they exist, else the preset's sweep)")
    parser.add_argument("--report", action="store_true", help="also build a report")
    parser.add_argument("--dry-run", action="store_true",
                        help="build offline and print the spec as JSON instead of saving to W&B")
    parser.add_argument("--out", type=Path, help="with --dry-run: write the JSON here")
    args = parser.parse_args(argv)
    prog = parser.prog

    from rnnlab.results.runs import load_runs
    from rnnlab.wandb import dashboard

    logs = Path(os.environ.get("RNNLAB_LOGS", "logs"))
    paths = args.runs or [p for p in (logs / "multiruns" / args.group, logs / "runs" / args.group)
                          if p.is_dir()]
    try:
        runs = load_runs(paths) if paths else None
        table_md = None
        if runs is not None and not runs.empty:
            runs = runs[runs["experiment_name"] == args.group] if args.runs is None else runs
        if runs is not None and not runs.empty:
            from rnnlab.results.aggregate import aggregate
            from rnnlab.results.tables import render

            layout = dashboard.layout_from_runs(args.group, runs)
            table_md = render(aggregate(runs), "md")
        else:
            layout = dashboard.layout_from_preset(args.group)
        objects = [dashboard.build_workspace(layout, args.entity, args.project)]
        if args.report:
            objects.append(dashboard.build_report(layout, args.entity, args.project, table_md))
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise refuse(prog, str(error).strip(chr(39))) from None
    if args.dry_run:
        text = json.dumps({"group": args.group, "swept": layout.swept, "numeric": layout.numeric,
                           "headline": layout.headline, "objects": dashboard.spec(objects)},
                          indent=1)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
            print(args.out)
        else:
            print(text)
        return 0
    for obj in objects:
        try:
            obj.save()
        except Exception as error:  # noqa: BLE001 - network/auth: one line, not a traceback
            raise SystemExit(f"{prog}: error: could not save the {type(obj).__name__} to W&B "
                             f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                             "`wandb login` first, or use --dry-run") from None
        print(getattr(obj, "url", "") or f"saved {type(obj).__name__}")
    return 0
