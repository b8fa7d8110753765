"""Figures of gradient flow: norm over t (one line per run) and the heatmap (training step x t).

- matplotlib figures (rnnlab-plot-gradflow), built on the object API with the Agg canvas (no
  pyplot, no global backend switch), saved as PNG and PDF.

The W&B custom charts of the same quantities (Vega-Lite specs, their tables, the shared colour
range) are in rnnlab.wandb.charts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .stats import DH, DX, FLOOR

SYMBOL = {DH: r"\partial L/\partial h_t", DX: r"\partial L/\partial x_t"}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def norm_label(quantity: str) -> str:
    return rf"$\|{SYMBOL.get(quantity, quantity)}\|$"


def _positive(values: np.ndarray) -> np.ndarray:
    """Norms to draw on a log scale: 0 (underflowed: below what float32 resolves) and NaN
    (padding) become gaps."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values) & (values >= FLOOR), values, np.nan)


def colour_range(means: Sequence[np.ndarray]) -> tuple[float, float]:
    """One log colour range (vmin, vmax) covering every finite positive value of ``means``: panels
    drawn with it compare by colour."""
    finite = [m[np.isfinite(m)] for m in map(_positive, means)]
    finite = np.concatenate([f.ravel() for f in finite]) if finite else np.array([])
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (1e-3, 1.0)
    if vmax <= vmin:
        vmin, vmax = vmin / 10, vmax * 10
    return float(vmin), float(vmax)


def draw_heatmap(ax, steps: Sequence[int], mean: np.ndarray, quantity: str, title: str = "",
                 vrange: tuple[float, float] | None = None):
    """Rows: records (training step), columns: t; log colour scale over ``vrange`` (default: this
    panel's own values). Returns the image."""
    from matplotlib.colors import LogNorm

    data = _positive(np.atleast_2d(mean))
    records, T = data.shape
    vmin, vmax = vrange or colour_range([data])
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")  # grey: underflow/padding
    image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", origin="lower",
                      interpolation="nearest", cmap=cmap, norm=LogNorm(vmin=vmin, vmax=vmax),
                      extent=(0.5, T + 0.5, -0.5, records - 0.5))
    ticks = np.unique(np.linspace(0, records - 1, min(records, 6)).round().astype(int))
    ax.set_yticks(ticks, [str(int(steps[i])) for i in ticks])
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step")
    if title:
        ax.set_title(title, fontsize=10)
    return image


def pick_record(data: dict[str, Any], record: str | int) -> int:
    """Index of a record: 'first', 'last', an index ('-1') or a training step ('step=500')."""
    steps = np.asarray(data["steps"])
    if record == "first":
        return 0
    if record == "last":
        return len(steps) - 1
    text = str(record)
    if text.startswith("step="):
        step = int(text.split("=", 1)[1])
        return int(np.argmin(np.abs(steps - step)))
    return int(text) % len(steps)


def final_step(data: dict[str, Any]) -> int | None:
    """The last training step the run's record knows of: its gradient-flow records run every
    ``every_n_steps`` on a training batch, so the last one can precede the end of training
    (1,000 of 1,024 steps), which the clipping and dynamics records reach (measured at the end)."""
    known = [int(np.max(data[key])) for key in ("steps", "param_steps", "jacobian_steps")
             if key in data and len(data[key])]
    return max(known) if known else None


def _cadence(shown: set[int], runs: Sequence[dict[str, Any]]) -> str:
    """'' when the records shown are where training ended, else a line saying why not."""
    ends = {final_step(d) for d in runs} - {None}
    if not ends or ends <= shown:
        return ""
    every = sorted({int(d["every_n_steps"]) for d in runs if "every_n_steps" in d})
    cadence = (f"a record every {', '.join(map(str, every))} training steps; "
               if every else "")
    return f"\n({cadence}training ended at step {', '.join(map(str, sorted(ends)))})"


def curves_figure(runs: Sequence[tuple[str, dict[str, Any]]], layer: str = "layer0",
                  records: Sequence[str | int] = ("first", "last"), band: bool = True,
                  note: str | None = None):
    """Norm vs t on a log axis, one line per run, one panel per record choice; each panel's
    title gives its records' training steps (and, where the last record precedes the end of
    training, the record cadence and the last step). ``note``: a line above the panels (e.g.
    which run of each row is drawn)."""
    fig = _figure(5.2 * len(records), 4.0 + (0.3 if note else 0.0))
    axes = fig.subplots(1, len(records), sharey=True, squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(runs))]
    quantities = sorted({data["quantity"] for _, data in runs})
    if note:
        fig.suptitle(note, fontsize=10)
    for ax, record in zip(axes, records):
        shown_steps = set()
        for colour, (label, data) in zip(colours, runs):
            layers = list(data["layers"])
            if layer not in layers:
                continue
            k, i = layers.index(layer), pick_record(data, record)
            mean, p10, p90 = (_positive(data[s][i, k]) for s in ("mean", "p10", "p90"))
            t = np.arange(1, mean.shape[-1] + 1)
            step = int(data["steps"][i])
            shown_steps.add(step)
            ax.semilogy(t, mean, color=colour, lw=1.6, label=f"{label} (step {step})")
            if band:
                ax.fill_between(t, p10, p90, color=colour, alpha=0.15, lw=0)
        which = {"first": "first record", "last": "last record"}.get(str(record), str(record))
        steps_text = ", ".join(str(s) for s in sorted(shown_steps))
        cadence = _cadence(shown_steps, [d for _, d in runs]) if record == "last" else ""
        ax.set_title(f"{which} (training step {steps_text}){cadence}", fontsize=10)
        ax.set_xlabel("time step t")
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    label = " / ".join(norm_label(q) for q in quantities)
    axes[0].set_ylabel(f"{label}, {layer} (batch mean; band p10-p90)")
    return fig


def heatmaps_figure(runs: Sequence[tuple[str, dict[str, Any]]], layer: str = "layer0"):
    """One heatmap per run (training step x t), side by side, each with its colour bar; one colour
    range for all of them (the W&B charts' rule), so a colour means one norm in every panel."""
    columns = min(len(runs), 3)
    rows = -(-len(runs) // columns)
    fig = _figure(5.0 * columns, 3.4 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    vrange = colour_range([data["mean"][:, list(data["layers"]).index(layer)]
                           for _, data in runs if layer in list(data["layers"])])
    for ax, (label, data) in zip(axes, runs):
        layers = list(data["layers"])
        if layer not in layers:
            ax.set_visible(False)
            continue
        k = layers.index(layer)
        image = draw_heatmap(ax, data["steps"], data["mean"][:, k], data["quantity"],
                             f"{label}, {layer}", vrange)
        fig.colorbar(image, ax=ax, label=norm_label(data["quantity"]))
    for ax in axes[len(runs):]:
        ax.set_visible(False)
    return fig
