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
from typing import Any

from rnnlab.config.cellspecs import SPECS
from rnnlab.gradflow.dynamics_plots import dynamics_figure
from rnnlab.gradflow.plots import curves_figure, heatmaps_figure
from rnnlab.gradflow.stats import load_gradflow
from rnnlab.run.rundir import RunDir


def run_dirs(paths: list[str], missing: list[str] | None = None) -> list[Path]:
    """The run dirs holding a gradflow.npz at or under ``paths``; the paths that hold none are
    appended to ``missing``."""
    found: list[Path] = []
    for path in map(Path, paths):
        if RunDir(path).gradflow.exists():
            here = [path]
        elif path.is_file() and path.name == RunDir.GRADFLOW:
            here = [path.parent]
        elif path.is_dir():
            here = sorted(p.parent for p in path.rglob(RunDir.GRADFLOW))
        else:
            here = []
        found.extend(here)
        if not here and missing is not None:
            missing.append(str(path))
    return list(dict.fromkeys(found))


def run_label(run_dir: Path, data: dict[str, Any]) -> str:
    model = RunDir(run_dir).config().get("model") or {}
    cell = model.get("cell") or data.get("cell") or run_dir.name
    parts = []
    impl = model.get("impl") or data.get("impl")
    if impl == "fused":
        parts.append("fused")
    if model.get("init") not in (None, "default"):
        parts.append(f"init={model['init']}")
    if model.get("forget_bias") is not None:
        parts.append(f"forget_bias={model['forget_bias']:g}")
    parts.extend(_form_words(str(cell), model))
    if model.get("layer_norm"):
        parts.append("layer_norm")
    if model.get("zoneout"):
        parts.append(f"zoneout={model['zoneout']:g}")
    if model.get("recurrent_max") is not None:
        parts.append(f"recurrent_max={model['recurrent_max']:g}")
    return f"{cell} ({', '.join(parts)})" if parts else str(cell)


def _form_words(cell: str, model: dict[str, Any]) -> list[str]:
    """The words that name the run's form of its cell (``relu``, ``mgu``, ``reset=before``,
    ``mode=log``): its variant settings from the registry, each unless it is the own form. A
    cell the registry does not know is read by every cell's variant settings."""
    specs = [SPECS[cell]] if cell in SPECS else list(SPECS.values())
    words = []
    for setting in dict.fromkeys(s for spec in specs for s in spec.variants):
        said = [spec.variants[setting].label(setting, model.get(setting)) for spec in specs
                if setting in spec.variants]
        if all(said):  # not the own form of any cell that has the setting
            words.append(said[0])
    return words


def _row_key_labels(runs, dirs):
    """Label runs by what differs between them (the tables' row keys) and their seed."""
    from rnnlab.results import load_runs, row_keys
    from rnnlab.results.figures import row_label

    with_results = [d for d in dirs if RunDir(d).results.exists()]
    if len(with_results) != len(runs) or len(runs) < 2:
        return runs
    frame = load_runs(with_results).set_index("run_dir")
    keys = [k for k in row_keys(frame.reset_index()) if k != "model.cell"]
    labelled = []
    for (fallback, data), run_dir in zip(runs, dirs):
        row = frame.loc[str(run_dir.resolve())]
        cell = row.get("model.cell", fallback)
        text = ", ".join(p for p in (str(cell), row_label(row, keys) if keys else "") if p)
        labelled.append((f"{text}, seed {row['seed']}", data))
    return labelled


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
    runs = _row_key_labels(runs, dirs)
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
