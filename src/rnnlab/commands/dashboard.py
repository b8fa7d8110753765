"""``rnnlab-dashboard``: the W&B workspace (and report) of an experiment group, built from its
runs or its preset (rnnlab.wandb.dashboard)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlab.commands import refuse


def main(argv: list[str] | None = None) -> int:
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


if __name__ == "__main__":
    raise SystemExit(main())
