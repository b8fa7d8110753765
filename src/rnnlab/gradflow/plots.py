"""Figures of gradient flow: norm over t (one line per run) and the heatmap (training step x t).

- matplotlib figures (rnnlab-plot-gradflow), built on the object API with the Agg canvas (no
  pyplot, no global backend switch), saved as PNG and PDF;
- the two W&B custom charts the monitor logs and rnnlab-dashboard shows (docs/gradflow.md): their
  Vega-Lite specs (stored in W&B as chart presets), the long-format heatmap table and the curve
  table, and the fixed colour range shared by every run of a group.
"""

from __future__ import annotations

import math
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


def curves_figure(runs: Sequence[tuple[str, dict[str, Any]]], layer: str = "layer0",
                  records: Sequence[str | int] = ("first", "last"), band: bool = True):
    """Norm vs t on a log axis, one line per run, one panel per record choice."""
    fig = _figure(5.2 * len(records), 4.0)
    axes = fig.subplots(1, len(records), sharey=True, squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(runs))]
    quantities = sorted({data["quantity"] for _, data in runs})
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
        ax.set_title(f"{which} (training step {steps_text})", fontsize=10)
        ax.set_xlabel("time step t")
        ax.grid(True, which="major", alpha=0.3)
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


# ------------------------------------------------------------------------ W&B custom charts
# A W&B custom chart is a logged table plus the name of a Vega-Lite spec stored in W&B as a chart
# preset ("<entity>/<name>"); `${field:x}` in the spec is replaced by the table column mapped to
# x, `${string:x}` by a string setting. rnnlab-dashboard registers these two presets under its
# --entity (wandb.Api().create_custom_chart); their names carry a version, so a changed spec gets
# a new name instead of redrawing old panels differently.
HEATMAP_CHART = "rnnlab-gradflow-heatmap-v1"
CURVES_CHART = "rnnlab-gradflow-curves-v1"
# The heatmap's colour range in log10 units, the same for every run whatever the cell, so colours
# compare across runs: 1e-40 (below the smallest normal float32, 1.2e-38: every resolved
# vanishing gradient) to 1e10 (exploding). Outside values are clamped to the end colours and
# flagged (subtitle, tooltip); `callbacks.gradflow.heatmap_range` sets another range.
DEFAULT_HEATMAP_RANGE = (-40.0, 10.0)
# At most this many cells (table rows) per logged heatmap: W&B advises <= 10k points per key and
# the table is logged again at every epoch end. Larger heatmaps keep evenly spaced records (the
# first and the last always) and average log10 over bins of consecutive time steps.
HEATMAP_MAX_ROWS = 4096
HEATMAP_COLUMNS = ("step", "t", "t_end", "log10_norm", "status")
CURVE_COLUMNS = ("t", "mean", "p10", "p90")
# Spec field -> table column. "name" is the run's display name, which W&B's query adds to every
# row of a custom chart's table (one facet / one colour per run when a panel shows several runs).
HEATMAP_FIELDS = {"step": "step", "t": "t", "t_end": "t_end", "value": "log10_norm",
                  "status": "status", "run": "name"}
CURVE_FIELDS = {"t": "t", "mean": "mean", "p10": "p10", "p90": "p90", "run": "name"}
UNICODE = {DH: "∂L/∂h_t", DX: "∂L/∂x_t"}
_VEGA_LITE = "https://vega.github.io/schema/vega-lite/v5.json"
_VALUE = "datum['${field:value}']"
_STATUS = "datum['${field:status}']"

HEATMAP_VEGA: dict[str, Any] = {
    "$schema": _VEGA_LITE,
    "description": "rnnlab gradient flow: log10 of the batch-mean gradient norm per training step "
                   "(rows) and time step t (columns) on a fixed colour range; one facet per run",
    "data": {"name": "wandb"},
    "title": {"text": "${string:title}", "subtitle": "${string:subtitle}"},
    "transform": [
        {"calculate": "datum['${field:t}'] - 0.5", "as": "t_from"},
        {"calculate": "datum['${field:t_end}'] + 0.5", "as": "t_to"},
        {"calculate": f"{_STATUS} !== 'ok' ? {_STATUS} : {_VALUE} < ${{string:lo}} ? "
                      f"'below the colour range: clamped' : {_VALUE} > ${{string:hi}} ? "
                      "'above the colour range: clamped' : 'in range'", "as": "colour"},
    ],
    "facet": {"field": "${field:run}", "type": "nominal", "title": None},
    "columns": 2,
    "resolve": {"scale": {"y": "independent"}, "axis": {"y": "independent"}},
    "spec": {
        "width": 360,
        "height": 200,
        "mark": {"type": "rect", "invalid": None},
        "encoding": {
            "x": {"field": "t_from", "type": "quantitative", "title": "time step t",
                  "scale": {"zero": False, "nice": False}},
            "x2": {"field": "t_to"},
            "y": {"field": "${field:step}", "type": "ordinal", "sort": "descending",
                  "title": "training step", "axis": {"labelOverlap": True}},
            "color": {
                "condition": [
                    {"test": f"{_STATUS} === 'underflow'", "value": "#d9d9d9"},
                    {"test": f"{_STATUS} === 'overflow'", "value": "#b2182b"},
                ],
                "field": "${field:value}", "type": "quantitative",
                "title": "log10 ‖${string:quantity}‖ (clamped to [${string:lo}, ${string:hi}])",
                "scale": {"scheme": "viridis", "domainMin": {"expr": "${string:lo}"},
                          "domainMax": {"expr": "${string:hi}"}, "clamp": True, "nice": False,
                          "zero": False},
                "legend": {"titleLimit": 400, "gradientLength": 160},
            },
            "tooltip": [
                {"field": "${field:run}", "type": "nominal", "title": "run"},
                {"field": "${field:step}", "type": "quantitative", "title": "training step"},
                {"field": "${field:t}", "type": "quantitative", "title": "t from"},
                {"field": "${field:t_end}", "type": "quantitative", "title": "t to"},
                {"field": "${field:value}", "type": "quantitative", "format": ".2f",
                 "title": "log10 ‖${string:quantity}‖"},
                {"field": "colour", "type": "nominal", "title": "colour"},
            ],
        },
    },
}

_POSITIVE = "isValid(datum['${{field:{0}}}']) && datum['${{field:{0}}}'] > 0"
CURVES_VEGA: dict[str, Any] = {
    "$schema": _VEGA_LITE,
    "description": "rnnlab gradient flow: batch-mean gradient norm over the time step t on a log "
                   "y axis, band p10-p90; one colour per run",
    "data": {"name": "wandb"},
    "title": {"text": "${string:title}", "subtitle": "${string:subtitle}"},
    "encoding": {
        "x": {"field": "${field:t}", "type": "quantitative", "title": "time step t"},
        "color": {"field": "${field:run}", "type": "nominal", "title": "run"},
    },
    "layer": [
        {"transform": [{"filter": f"({_POSITIVE.format('p10')}) && ({_POSITIVE.format('p90')})"}],
         "mark": {"type": "area", "opacity": 0.2},
         "encoding": {
             "y": {"field": "${field:p10}", "type": "quantitative", "title": "${string:yname}",
                   "scale": {"type": "log"}, "axis": {"format": ".0e"}},
             "y2": {"field": "${field:p90}"}}},
        {"transform": [{"filter": _POSITIVE.format("mean")}],
         "mark": {"type": "line", "point": {"size": 12}},
         "encoding": {
             "y": {"field": "${field:mean}", "type": "quantitative", "title": "${string:yname}",
                   "scale": {"type": "log"}, "axis": {"format": ".0e"}},
             "tooltip": [
                 {"field": "${field:run}", "type": "nominal", "title": "run"},
                 {"field": "${field:t}", "type": "quantitative", "title": "t"},
                 {"field": "${field:mean}", "type": "quantitative", "format": ".3e",
                  "title": "mean"},
                 {"field": "${field:p10}", "type": "quantitative", "format": ".3e",
                  "title": "p10"},
                 {"field": "${field:p90}", "type": "quantitative", "format": ".3e",
                  "title": "p90"}]}},
    ],
}
CHART_SPECS = {HEATMAP_CHART: HEATMAP_VEGA, CURVES_CHART: CURVES_VEGA}


def chart_id(entity: str | None, name: str) -> str:
    """The preset id W&B resolves a chart by: ``<entity>/<name>`` (the bare name when the
    entity is unknown, e.g. an offline run without ``logger.wandb.entity``)."""
    return f"{entity}/{name}" if entity else name


def check_heatmap_range(value: Any) -> tuple[float, float]:
    """``callbacks.gradflow.heatmap_range`` as (lo, hi); None: the default."""
    if value is None:
        return DEFAULT_HEATMAP_RANGE
    message = (f"callbacks.gradflow.heatmap_range must be [lo, hi] in log10 units with "
               f"lo < hi, got {value!r}")
    try:
        lo, hi = (float(v) for v in value) if not isinstance(value, (str, bytes)) else (0, 0)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):  # (0, 0) for a string
        raise ValueError(message)
    return lo, hi


def number_text(value: float) -> str:
    """A range end as a string setting (and a Vega expression): -40.0 -> "-40"."""
    return f"{float(value):g}"


def _thinning(records: int, steps: int, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Record indices to keep and the start of each t bin, so that records x bins <= max_rows
    (max_rows >= 32): the budget is split in proportion to the heatmap's shape, keeping at least
    32 records and 32 bins (or all there are); the first and the last record always."""
    if records * steps <= max_rows:
        return np.arange(records), np.arange(steps)
    kept = int(np.clip(round(math.sqrt(max_rows * records / steps)), min(records, 32), records))
    bins = int(np.clip(max_rows // kept, min(steps, 32), steps))
    kept = int(np.clip(max_rows // bins, 1, records))
    rows = np.unique(np.linspace(0, records - 1, kept).round().astype(int))
    starts = np.unique(np.linspace(0, steps, bins + 1).round().astype(int))[:-1]
    return rows, starts


def heatmap_rows(steps: Sequence[int], mean: np.ndarray, max_rows: int = HEATMAP_MAX_ROWS
                 ) -> tuple[list[list[Any]], dict[str, int]]:
    """One layer's heatmap as long-format table rows ``[step, t, t_end, log10_norm, status]``.

    ``mean``: (records, T) batch-mean norms. A cell covers the time steps t..t_end (one step
    unless the heatmap was thinned, see HEATMAP_MAX_ROWS; then log10_norm is the mean of log10
    over the bin's resolved steps). status: ``ok``; ``underflow`` (norm 0: below what float32
    resolves; log10_norm null); ``overflow`` (inf; null). Steps no sequence reaches (NaN) have no
    row. Also returns ``{"records", "kept_records", "steps", "bins"}``.
    """
    mean = np.atleast_2d(np.asarray(mean, dtype=np.float64))
    records, T = mean.shape
    rows_kept, starts = _thinning(records, T, max_rows)
    m = mean[rows_kept]
    resolved = np.isfinite(m) & (m >= FLOOR)
    logs = np.log10(np.where(resolved, m, 1.0))
    ends = np.append(starts[1:], T)
    total = np.add.reduceat(logs, starts, axis=1)
    count = np.add.reduceat(resolved, starts, axis=1)
    over = np.add.reduceat(np.isposinf(m), starts, axis=1)
    under = np.add.reduceat(np.isfinite(m) & (m < FLOOR), starts, axis=1)
    out: list[list[Any]] = []
    for i, r in enumerate(rows_kept):
        step = int(steps[r])
        for j, (start, end) in enumerate(zip(starts, ends)):
            if over[i, j]:
                value, status = None, "overflow"
            elif count[i, j]:
                value, status = round(float(total[i, j] / count[i, j]), 4), "ok"
            elif under[i, j]:
                value, status = None, "underflow"
            else:  # padding only
                continue
            out.append([step, int(start) + 1, int(end), value, status])
    return out, {"records": records, "kept_records": len(rows_kept), "steps": T,
                 "bins": len(starts)}


def curve_rows(stats: np.ndarray) -> list[list[Any]]:
    """One record and layer's curves, (3, T) mean/p10/p90 norms, as table rows
    ``[t, mean, p10, p90]`` (the norms themselves: the chart draws them on a log axis). Steps no
    sequence reaches have no row; an underflowed norm is 0 (left out of the log plot), inf is
    null."""
    stats = np.asarray(stats, dtype=np.float64)

    def cell(x: float):
        return float(x) if math.isfinite(x) else None

    return [[t + 1, *(cell(stats[s, t]) for s in range(3))]
            for t in range(stats.shape[-1]) if not math.isnan(stats[0, t])]
