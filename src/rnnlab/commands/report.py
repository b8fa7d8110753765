"""``rnnlab-report``: the table and every figure of a sweep in one folder, with a markdown
report (rnnlab.results.report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlab.commands import refuse
from rnnlab.commands.aggregate import add_run_arguments, load_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnlab-report",
        description="The table and every figure of a sweep in one folder, with a markdown report "
                    "that embeds them: table.md/.csv/.tex, metric vs each numeric swept setting, "
                    "training curves per row (mean and band over seeds), gradient flow per row, "
                    "and a success-rate heatmap when two settings are swept.")
    add_run_arguments(parser)
    parser.add_argument("--out", type=Path,
                        help="output folder (default: <first path>/report)")
    args = parser.parse_args(argv)
    runs, table = load_table(parser.prog, args)
    from rnnlab.results.report import write_report

    out = args.out or Path(args.paths[0]) / "report"
    try:
        report = write_report(runs, table, out, by=args.by, by_name="--by")
    except KeyError as error:
        raise refuse(parser.prog, str(error).strip(chr(39))) from None
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
