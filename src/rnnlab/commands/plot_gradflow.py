"""rnnlab-plot-gradflow: gradient flow through time from run directories (their gradflow.npz),
no W&B needed.

    rnnlab-plot-gradflow logs/multiruns/quickstart/<time>/*  [--out DIR]

Writes, as PNG and PDF:
- gradflow_curves: batch-mean norm vs t on a log axis (band: 10th-90th percentile), one line per
  run, one panel per chosen record (default: the first record, i.e. at initialisation for the
  fixed probe, and the last);
- gradflow_heatmap: per run, the norm over training step x t on a log colour scale, one colour
  range shared by every panel (as the W&B charts), so panels compare;
- gradflow_dynamics (runs with a dynamics record, scratch cells): step-Jacobian norms and their
  products over t, gate means, Lyapunov exponents, timescales and the textbook cases
  (rnnlab.gradflow.dynamics_plots).

into --out, by default the run dir (one run) or the folder that holds all the runs (a sweep dir).

Runs are labelled by their cell, the settings that differ between them (the row keys of
rnnlab's tables) and their seed, read from their results.json; runs without one are labelled
from .hydra/config.yaml, else gradflow.npz itself. A directory
that holds several runs (a multirun sweep) is searched for every gradflow.npz below it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rnnlab.gradflow.dynamics_plots import dynamics_figure
from rnnlab.gradflow.labels import row_key_labels, run_dirs, run_label
from rnnlab.gradflow.plots import curves_figure, heatmaps_figure
from rnnlab.gradflow.stats import load_gradflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnlab-plot-gradflow",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run or sweep directories")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the run dir for one run, else the folder "
                             "that holds them all)")
    parser.add_argument("--layer", default="layer0", help="layer to plot (default: layer0)")
    parser.add_argument("--records", default="first,last",
                        help="records to draw, one panel each: first, last, an index, or "
                             "step=N (nearest record); default: first,last")
    parser.add_argument("--no-band", action="store_true", help="no p10-p90 band")
    args = parser.parse_args(argv)

    missing: list[str] = []
    dirs = run_dirs(args.runs, missing)
    if not dirs:  # bad input: one line, exit 2, as every rnnlab command
        print(f"rnnlab-plot-gradflow: error: no gradflow.npz at or under {' '.join(missing)} "
              "(a run dir of rnnlab-train with callbacks.gradflow on?)", file=sys.stderr)
        return 2
    for path in missing:
        print(f"rnnlab-plot-gradflow: warning: no gradflow.npz in {path}, skipped",
              file=sys.stderr)
    runs, kept = [], []  # kept[i] is the folder of runs[i]: folders without records are dropped
    for run_dir in dirs:
        data = load_gradflow(run_dir)
        if len(data["steps"]) == 0:
            print(f"rnnlab-plot-gradflow: {run_dir}: no records yet, skipped", file=sys.stderr)
            continue
        runs.append((run_label(run_dir, data), data))
        kept.append(run_dir)
    if not runs:
        return 1
    dirs = kept
    runs = row_key_labels(runs, dirs)
    labels = [label for label, _ in runs]
    if len(set(labels)) < len(labels):  # same setting, e.g. seeds: tell them apart
        runs = [(f"{label} [{d.name}]", data) for (label, data), d in zip(runs, dirs)]
    out = args.out or Path(os.path.commonpath([d.resolve() for d in dirs]))
    out.mkdir(parents=True, exist_ok=True)
    records = [r.strip() for r in args.records.split(",") if r.strip()]
    figures = {"gradflow_curves": curves_figure(runs, args.layer, records, band=not args.no_band),
               "gradflow_heatmap": heatmaps_figure(runs, args.layer),
               "gradflow_dynamics": dynamics_figure(runs, args.layer)}
    for name, fig in figures.items():
        if fig is None:  # no run has a dynamics record (torch.nn cells, jacobian_rows=0)
            continue
        for suffix in ("png", "pdf"):
            path = out / f"{name}.{suffix}"
            fig.savefig(path, dpi=150 if suffix == "png" else None)
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
