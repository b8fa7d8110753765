"""The W&B custom charts of gradient flow: the two Vega-Lite chart presets (the norm-vs-t curves
and the training step x t heatmap), the tables they draw (columns, fields, rows) and the shared
colour range. The monitor logs the tables (rnnlab.wandb.gradflow); rnnlab-dashboard registers the
presets and builds panels over them (rnnlab.wandb.dashboard). The matplotlib figures of the same
quantities are in rnnlab.gradflow.plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnlab.gradflow.stats import DH, DX, FLOOR

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
# At most this many cells (table rows) per logged heatmap: W&B advises <= 10k points per key.
# Larger heatmaps keep evenly spaced records (the first and the last always) and average log10
# over bins of consecutive time steps.
HEATMAP_MAX_ROWS = 4096
HEATMAP_COLUMNS = ("step", "t", "t_end", "log10_norm", "status")
CURVE_COLUMNS = ("step", "t", "mean", "p10", "p90")  # step: the record's training step
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


def curve_rows(stats: np.ndarray, step: int) -> list[list[Any]]:
    """One record and layer's curves, (3, T) mean/p10/p90 norms, as table rows
    ``[step, t, mean, p10, p90]``: ``step`` is the record's training step, the same in every row
    (so the table says which record it is), then the norms themselves (the chart draws them on a
    log axis). Steps no sequence reaches have no row; an underflowed norm is 0 (left out of the
    log plot), inf is null."""
    stats = np.asarray(stats, dtype=np.float64)

    def cell(x: float):
        return float(x) if math.isfinite(x) else None

    return [[int(step), t + 1, *(cell(stats[s, t]) for s in range(3))]
            for t in range(stats.shape[-1]) if not math.isnan(stats[0, t])]
