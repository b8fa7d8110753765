"""``rnnlab-compare``: the command line of rnnlab.studies.compare (a fair comparison's plan, its
tuning and evaluation sweeps, the record, the table and its block of docs/results.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlab.studies.compare import CompareError, load_plan, read_json, resolve_param_budget, run

HELP = """\
Compare cells fairly: each arm tuned on its own seeds (validation split, successive halving),
the pick trained on fresh evaluation seeds and judged on the test split, with exact tests and
censored steps-to-solve. The plan is a YAML file (docs/compare/*.yaml; README "Fair comparisons").
A rerun keeps finished jobs and continues the rest.

  rnnlab-compare docs/compare/copy.yaml             run (or continue) it, then print the table
  rnnlab-compare docs/compare/copy.yaml --dry-run   the stages it would run
  rnnlab-compare docs/compare/copy.yaml --table     the table from what has finished
  rnnlab-compare docs/compare/copy.yaml --table --docs   ... and its block of docs/results.md
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnlab-compare", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", type=Path, help="the plan file")
    parser.add_argument("--out", type=Path, help="where the runs go (default: the plan's out)")
    parser.add_argument("--jobs", type=int, help="parallel jobs (default: the plan's)")
    parser.add_argument("--launcher", choices=("joblib", "pack"),
                        help="how a stage's jobs run (default: the plan's; pack: many runs in "
                             "one loop, README \"Packs\")")
    parser.add_argument("--dry-run", action="store_true", help="print the stages only")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: write the record and the table from the runs that "
                             "have finished (an evaluation cut short counts its finished seeds)")
    parser.add_argument("--arm", action="append",
                        help="run only this arm (repeatable; e.g. to spread arms over "
                             "machines); compare.json is written only by a run of every arm")
    parser.add_argument("--table", action="store_true",
                        help="print the table from the finished runs; run nothing")
    parser.add_argument("--docs", action="store_true",
                        help="also rewrite the plan's <!-- compare:NAME --> block (and the "
                             "<!-- compare:standing --> block) of --page from the record")
    parser.add_argument("--page", type=Path, default=Path("docs/results.md"),
                        help="the page --docs rewrites (default docs/results.md)")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.plan, args.out)
        if args.arm:
            # the parameter budget is the whole comparison's, whichever arms run here
            plan.param_budget = resolve_param_budget(plan)
            names = [a.name for a in plan.arms]
            unknown = [a for a in args.arm if a not in names]
            if unknown:
                raise CompareError(f"--arm {unknown[0]}: no such arm (arms: {', '.join(names)})")
            plan.arms = [a for a in plan.arms if a.name in args.arm]
            plan.partial = len(plan.arms) < len(names)
        if args.jobs is not None:
            if args.jobs < 1:
                raise CompareError(f"--jobs must be >= 1, got {args.jobs}")
            plan.jobs = args.jobs
        if args.launcher is not None:
            plan.launcher = args.launcher
        if args.docs and not args.page.is_file():
            raise CompareError(f"--page {args.page}: no such file")
        if args.table:
            record = read_json(plan.dir / "compare.json")
            if record is None:
                raise CompareError(f"{plan.dir / 'compare.json'}: nothing recorded yet; run "
                                   f"rnnlab-compare {args.plan}")
        else:
            record = run(plan, dry_run=args.dry_run, collect=args.collect)
        if args.dry_run:
            return 0
        if plan.partial:
            print(f"[compare] arms {', '.join(a.name for a in plan.arms)} done; a run of every "
                  f"arm (rnnlab-compare {args.plan}) writes the record and the table")
            return 0
        from rnnlab.studies.compare_table import summary_markdown, write_summary

        write_summary(record, plan.dir)
        print(summary_markdown(record, width=_width()))
        if args.docs:
            from rnnlab.studies.compare_page import build_docs

            rebuilt = build_docs(record, str(args.plan), plan.out, args.page,
                                 args.page.parent / "results")
            print(f"[compare] {args.page}: rebuilt {', '.join(rebuilt)}")
    except CompareError as error:
        print(f"rnnlab-compare: error: {error}", file=sys.stderr)
        return 2
    return 0


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


if __name__ == "__main__":
    raise SystemExit(main())
