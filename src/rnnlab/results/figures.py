"""Figures from run directories (no W&B needed), one line or panel per table row.

* metric vs a numeric setting (copy/adding loss against T, one line per cell, baseline dashed);
* training curves per row: mean over seeds with a min-max band, from each run's csv/metrics.csv;
* gradient flow per row: ‖∂L/∂h_t‖ over t (rnnlab.gradflow.plots), first and last record;
* dynamics per row: step-Jacobian norms, gates, Lyapunov exponents (gradflow.dynamics_plots);
* success rate over two settings (e.g. cell × learning rate) as a heatmap.

Legends and titles use the row keys (rnnlab.results.rowkeys), exactly as the tables do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rnnlab.config.naming import label, show
from rnnlab.gradflow.plots import _figure
from rnnlab.results.curves import read_curve
from rnnlab.results.rowkeys import comparable, row_ids, rows_with_runs
from rnnlab.run.rundir import RunDir


def row_label(row: pd.Series, keys: Sequence[str]) -> str:
    return ", ".join(f"{label(k, keys)}={show(k, row[k])}" for k in keys) or "all runs"


def save(fig, out: Path, stem: str) -> list[Path]:
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for path in paths:
        # tight: the legend sits outside the axes and is kept in the file
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return paths


_LINE_STYLES = ("-", "--", "-.", ":")
# after the four line styles, markers ("o" is kept for a curve of a single point)
_MARKERS = ("s", "^", "v", "D", "P", "X", "*")


def row_styles(rows: pd.DataFrame, keys: Sequence[str]) -> list[dict]:
    """A matplotlib style per row: the cell (else the first key) by colour, the other settings by
    line style (then marker), so 15 rows of 3 cells x 5 settings are 15 distinct lines, and the
    rows of one cell share its colour."""
    keys = list(keys)
    colour_key = "model.cell" if "model.cell" in keys else (keys[0] if keys else None)
    others = [k for k in keys if k != colour_key]
    colours: dict = {}
    styles: dict = {}
    out = []
    for _, row in rows.iterrows():
        c = colours.setdefault(comparable(row[colour_key]) if colour_key else None, len(colours))
        s = styles.setdefault(tuple(comparable(row[k]) for k in others), len(styles))
        style = {"color": f"C{c % 10}", "ls": _LINE_STYLES[s % len(_LINE_STYLES)]}
        if s >= len(_LINE_STYLES):
            style["marker"] = _MARKERS[(s // len(_LINE_STYLES) - 1) % len(_MARKERS)]
        out.append(style)
    return out


def _legend_outside(ax) -> None:
    """The legend right of the axes: with many rows it would hide the data inside."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _spans_decades(values) -> bool:
    """Positive numbers spanning at least two decades (learning rates, sizes swept by factors)."""
    values = np.asarray([float(v) for v in values], dtype=float)
    values = values[np.isfinite(values)]
    return bool(values.size >= 2 and (values > 0).all() and values.max() / values.min() >= 100)


def numeric_keys(table: pd.DataFrame) -> list[str]:
    """Row keys whose values are all numbers (some may be missing), at least two of them."""
    found = []
    for key in table.attrs["keys"]:
        values = [v for v in table[key] if comparable(v) != comparable(None)]
        if (len({comparable(v) for v in values}) >= 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            found.append(key)
    return found


def metric_vs(table: pd.DataFrame, key: str, metric: str):
    """``metric`` (mean ± std over seeds) against the numeric setting ``key``, a line per row
    group."""
    keys = table.attrs["keys"]
    others = [k for k in keys if k != key]
    fig = _figure(6.0, 4.2)
    ax = fig.subplots()
    groups = list(table.groupby(row_ids(table, others), sort=False))
    styles = row_styles(pd.DataFrame([g.iloc[0] for _, g in groups]), others) if groups else []
    positive = True
    has_x = table[key].map(lambda v: comparable(v) != comparable(None))
    for (_, group), style in zip(groups, styles):
        colour = style["color"]
        name = row_label(group.iloc[0], others) if others else metric
        # A row without a value of the key (e.g. forget_bias left at the default) has no x:
        # it is drawn as a dotted level across the axis.
        for _, row in group[~has_x.loc[group.index]].iterrows():
            ax.axhline(float(row[metric]), color=colour, ls=":", lw=1.2,
                       label=f"{name + ', ' if others else ''}{label(key, keys)} unset")
        group = group[has_x.loc[group.index]].sort_values(key)
        x = group[key].astype(float).to_numpy()
        y = group[metric].astype(float).to_numpy()
        err = group[f"{metric} std"].astype(float).fillna(0).to_numpy()
        ax.errorbar(x, y, yerr=err, capsize=3, label=name,
                    **{"marker": "o", **style})
        positive &= bool(np.all(y[~np.isnan(y)] > 0))
    if "baseline" in table and table["baseline"].notna().any():
        with_x = table[has_x]
        base = with_x.groupby(with_x[key].astype(float), sort=True)["baseline"].mean()
        ax.plot(base.index.to_numpy(), base.to_numpy(), "k--", lw=1.2, label="baseline")
    values = table[metric].astype(float).dropna()
    if "baseline" in table:  # the baseline is drawn too: the scale must show both
        values = pd.concat([values, table["baseline"].astype(float).dropna()])
    if positive and not values.empty and values.max() / max(values.min(), 1e-300) > 30:
        ax.set_yscale("log")
    if _spans_decades(table.loc[has_x, key]):  # e.g. a learning rate swept 1e-4 ... 1e-1
        ax.set_xscale("log")
    ax.set_xlabel(label(key, keys))
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    _legend_outside(ax)
    return fig


def training_curves(runs: pd.DataFrame, table: pd.DataFrame,
                    metrics: Sequence[str] = ("train/loss", "val/loss")):
    """Per row, each metric against the optimizer step: mean over seeds, band min-max."""
    keys = table.attrs["keys"]
    fig = _figure(5.5 * len(metrics), 4.0)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    drawn = False
    styles = row_styles(table, keys)
    for ax, metric in zip(axes, metrics):
        for i, row, members in rows_with_runs(runs, table):
            curves = [c for c in (read_curve(d, metric) for d in members["run_dir"])
                      if c is not None]
            if not curves:
                continue
            joined = pd.concat(curves, axis=1).sort_index().interpolate(limit_area="inside")
            mean = joined.mean(axis=1)
            style = dict(styles[i])
            colour = style["color"]
            if mean.notna().sum() < 2:  # one validation: a line of one point draws nothing
                style["marker"] = style.get("marker", "o")
            ax.plot(mean.index, mean.to_numpy(), label=f"{row_label(row, keys)} (n={len(curves)})",
                    **style)
            if len(curves) > 1:
                ax.fill_between(joined.index, joined.min(axis=1), joined.max(axis=1),
                                color=colour, alpha=0.15, lw=0)
            drawn = True
        if "baseline" in table and table["baseline"].notna().any() and metric.endswith("loss"):
            bases = table["baseline"].astype(float)
            if bases.dropna().nunique() == 1:
                ax.axhline(float(bases.dropna().iloc[0]), color="k", ls="--", lw=1,
                           label="baseline")
            else:  # rows of different tasks (e.g. copy at several T): each row its own baseline
                said = False
                for base, style in zip(bases, styles):
                    if not math.isnan(base):
                        ax.axhline(base, color=style["color"], ls=(0, (1, 2)), lw=0.9,
                                   label=None if said else "baseline of each row (its colour)")
                        said = True
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"{metric} (mean over seeds; band min-max)")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    if drawn:
        _legend_outside(axes[-1])  # one legend, the same rows in every panel
    return fig if drawn else None


def success_heatmap(table: pd.DataFrame, rows: str, columns: str):
    """Fraction of seeds that solved the task, ``rows`` × ``columns`` (e.g. cell × lr)."""
    keys = table.attrs["keys"]
    frame = table.assign(rate=[s / n if n else math.nan for s, n in zip(table["solved"],
                                                                         table["n"])])
    grid = frame.pivot_table(index=frame[rows].map(lambda v: show(rows, v)),
                             columns=frame[columns].map(lambda v: show(columns, v)),
                             values="rate", aggfunc="mean", sort=False)
    counts = frame.pivot_table(index=frame[rows].map(lambda v: show(rows, v)),
                               columns=frame[columns].map(lambda v: show(columns, v)),
                               values="n", aggfunc="sum", sort=False).reindex_like(grid)
    present = pd.Series([v for v in table[columns] if v is not None])
    # numbers in their order (lr, T); booleans (data.permute) are labels, not numbers to sort
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        order = sorted(grid.columns, key=float)
        grid, counts = grid[order], counts[order]
    fig = _figure(1.2 * len(grid.columns) + 2.5, 0.6 * len(grid.index) + 1.8)
    ax = fig.subplots()
    image = ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (r, c), rate in np.ndenumerate(grid.to_numpy(dtype=float)):
        if not math.isnan(rate):
            n = int(counts.iat[r, c])
            ax.text(c, r, f"{round(rate * n)}/{n}", ha="center", va="center",
                    color="white" if rate < 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(grid.columns)), grid.columns)
    ax.set_yticks(range(len(grid.index)), grid.index)
    ax.set_xlabel(label(columns, keys))
    ax.set_ylabel(label(rows, keys))
    ax.set_title("fraction of seeds that solve the task (test loss < 10% of baseline)",
                 fontsize=9)
    fig.colorbar(image, ax=ax, label="success rate")
    return fig


def gradflow_per_row(runs: pd.DataFrame, table: pd.DataFrame):
    """‖∂L/∂h_t‖ over t per row (its lowest-seed run, as the figure says), first and last
    record; None without data."""
    from rnnlab.gradflow.plots import curves_figure
    from rnnlab.gradflow.stats import load_gradflow

    keys = table.attrs["keys"]
    chosen, pooled = [], 0
    for _, row, members in rows_with_runs(runs, table):
        members = members[[RunDir(d).gradflow.exists() for d in members["run_dir"]]]
        if members.empty:
            continue
        first = members.sort_values("seed").iloc[0]
        pooled = max(pooled, len(members))
        chosen.append((f"{row_label(row, keys)}, seed {first['seed']}",
                       load_gradflow(first["run_dir"])))
    return curves_figure(chosen, note=one_run_per_row(pooled)) if chosen else None


def one_run_per_row(most_seeds: int) -> str:
    """What a per-row gradient-flow figure draws: one run of each row, not the seeds' mean."""
    if most_seeds > 1:
        return (f"one run per row: its lowest seed (in the legend), not a mean over its "
                f"{most_seeds} seeds")
    return "one run per row (its seed in the legend)"


def dynamics_per_row(runs: pd.DataFrame, table: pd.DataFrame):
    """Step Jacobians, gates and Lyapunov exponents per row (its lowest-seed run with a dynamics
    record, rnnlab.gradflow.dynamics_plots); None without one."""
    from rnnlab.gradflow.dynamics_plots import dynamics_figure, has_dynamics
    from rnnlab.gradflow.stats import load_gradflow

    keys = table.attrs["keys"]
    chosen, pooled = [], 0
    for _, row, members in rows_with_runs(runs, table):
        pooled = max(pooled, len(members))
        for member in members.sort_values("seed").itertuples():
            path = RunDir(member.run_dir).gradflow
            data = load_gradflow(member.run_dir) if path.exists() else {}
            if has_dynamics(data):
                chosen.append((f"{row_label(row, keys)}, seed {member.seed}", data))
                break
    return dynamics_figure(chosen, note=one_run_per_row(pooled)) if chosen else None
