"""``rnnlab-reproduce`` (``make reproduce``): the command line of rnnlab.studies.reproduce (the
plan docs/reproduce.yaml, its sweeps and the page docs/results.md they rebuild)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlab.config.errors import ReproduceError
from rnnlab.studies.reproduce import PLAN, load_plan, rebuild_page, run_sections

HELP = """\
Run the CPU-scale sweeps behind docs/results.md (the plan: docs/reproduce.yaml) on all cores,
one thread per job, and rebuild the page's tables and figures from the run directories.
A rerun keeps finished jobs and resumes the rest.

  rnnlab-reproduce                    every section, then the page
  rnnlab-reproduce --only copy        one section (a quick check), then its part of the page
  rnnlab-reproduce --docs-only        rebuild the page from the runs already there
  rnnlab-reproduce --dry-run          print what would run
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnlab-reproduce", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=Path, default=PLAN,
                        help="the plan (default: the checkout's docs/reproduce.yaml)")
    parser.add_argument("--page", type=Path,
                        help="the page (default: the plan's page, docs/results.md)")
    parser.add_argument("--only", action="append", help="section(s) to run, e.g. --only copy")
    parser.add_argument("--jobs", type=int, help="parallel jobs (default: the plan's)")
    parser.add_argument("--docs-only", action="store_true", help="rebuild the page only")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.plan)
        if args.page is not None:
            plan.page = args.page
        if args.jobs is not None:
            if args.jobs < 1:
                raise ReproduceError(f"--jobs must be >= 1, got {args.jobs}")
            plan.jobs = args.jobs
        sections = plan.select(args.only)
        status = 0 if args.docs_only else run_sections(plan, sections, args.dry_run)
        if not args.dry_run:
            rebuilt = rebuild_page(plan, sections)
            print(f"[reproduce] {shown(plan.page)}: rebuilt {', '.join(rebuilt)}")
    except ReproduceError as error:
        print(f"rnnlab-reproduce: error: {error}", file=sys.stderr)
        return 2
    return status


def shown(path: Path) -> str:
    """A path as messages print it: relative to the working directory when under it."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
