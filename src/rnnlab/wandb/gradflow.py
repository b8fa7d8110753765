"""The gradient-flow monitor's W&B tables: the last record's curves, the (training step x t)
heatmap, the per-record summary tables and the dynamics charts, as W&B Tables with the custom
charts of charts.py. ``monitor`` is the GradientFlowMonitor (its quantity, layers, cell, probe,
heatmap range, records), ``logger`` the run's WandbLogger.

When: each record's scalars go to every logger as it is taken (the monitor); the tables go to W&B
**once**, at the end of training (or when training stops on an error), in one history row, by
:func:`log_final`. W&B turns every logged Table into an artifact and stages a copy of it (two, in
fact: ``Artifact.add`` stages the file, then stages it again) under ``wandb/data/artifacts/
staging``, where an offline run keeps them until ``wandb sync``; logging each record's curves and
the growing heatmap at every epoch end staged 52 copies for one quickstart run. Now each key below
is logged exactly once, so its one file is unambiguous, and every table carries the training step
in a ``step`` column (the chart titles say it too). W&B names the files by its own history step
(``curve_table_<W&B step>_<hash>.table.json``), so the step is in the table, not the file name;
the keys stay the same across runs because dashboards select tables by key.
The history and ``gradflow.npz`` keep every record."""

from __future__ import annotations

from typing import Any

from rnnlab.gradflow.stats import SUMMARIES, metric_key


def _label(monitor) -> str:
    label = " ".join(part for part in (monitor.cell, monitor.impl) if part)
    return f"{label}: " if label else ""


def _chart_entity(logger) -> str:
    """The W&B entity the chart presets are looked up under: the run's (online, or set by
    ``logger.wandb.entity`` / WANDB_ENTITY); empty for an offline run without one."""
    return str(getattr(logger.experiment, "entity", "") or "")


def log_final(monitor, logger, arrays: dict[str, Any]) -> None:
    """Every W&B table of the run, once, in one history row at the last record's training step:
    per layer the last record's curves (``<prefix>/<layer>/curve``, with ``log_curves``), the
    heatmap (``.../heatmap``, with ``heatmap``, from two records on: one row is no heatmap) and
    the summaries table (``.../summaries``); with dynamics records, the last one's ‖J_t‖₂ curves
    and gate means, the ‖J_t‖₂ heatmap and the dynamics summaries table."""
    if logger is None:
        return
    payload: dict[str, Any] = {}
    steps = []
    if monitor.records:
        steps.append(monitor.records[-1]["step"])
        if monitor.log_curves:
            payload.update(curve_charts(monitor, logger, monitor.records[-1]))
        if monitor.heatmap and len(monitor.records) >= 2:
            payload.update(heatmap_charts(monitor, logger, arrays))
        payload.update(summary_tables(monitor, arrays))
    if monitor.dynamics.records:
        steps.append(monitor.dynamics.records[-1]["step"])
        payload.update(dynamics_charts(monitor, logger, monitor.dynamics.records[-1]))
        payload.update(dynamics_tables(monitor, logger, arrays))
    if payload:
        payload["trainer/global_step"] = int(max(steps))
        logger.experiment.log(payload)


def curve_charts(monitor, logger, record: dict[str, Any]) -> dict[str, Any]:
    """Per layer, one record's curves (mean, p10, p90 of the norm over t; a ``step`` column, the
    record's training step) as a W&B Table and a custom chart over it with a log y axis."""
    import wandb

    from .charts import CURVE_COLUMNS, CURVE_FIELDS, CURVES_CHART, UNICODE, chart_id, curve_rows

    symbol = UNICODE.get(monitor.quantity, monitor.quantity)
    preset = chart_id(_chart_entity(logger), CURVES_CHART)
    payload: dict[str, Any] = {}
    for k, layer in enumerate(monitor.layers):
        rows = curve_rows(record["stats"][:, k], record["step"])
        table = wandb.Table(columns=list(CURVE_COLUMNS), data=rows)
        payload[metric_key(monitor.quantity, layer, "curve")] = wandb.plot_table(
            vega_spec_name=preset, data_table=table, fields=dict(CURVE_FIELDS),
            string_fields={
                "title": f"{_label(monitor)}‖{symbol}‖ over t, {layer}, "
                         f"training step {record['step']}",
                "subtitle": f"{monitor.probe} probe; line: batch mean, band: 10th-90th "
                            "percentile; log y (underflowed norms left out)",
                "yname": f"‖{symbol}‖"})
    return payload


def heatmap_charts(monitor, logger, arrays: dict[str, Any]) -> dict[str, Any]:
    """Per layer, the (training step x t) heatmap as a long-format W&B Table (at most
    charts.HEATMAP_MAX_ROWS rows) and a custom chart over it: colour = log10 of the batch-mean
    norm on the fixed range ``heatmap_range``, the same for every run of a group."""
    import wandb

    from .charts import (
        HEATMAP_CHART,
        HEATMAP_COLUMNS,
        HEATMAP_FIELDS,
        UNICODE,
        chart_id,
        heatmap_rows,
        number_text,
    )

    symbol = UNICODE.get(monitor.quantity, monitor.quantity)
    preset = chart_id(_chart_entity(logger), HEATMAP_CHART)
    lo, hi = monitor.heatmap_range
    steps = arrays["steps"]
    payload: dict[str, Any] = {}
    for k, layer in enumerate(monitor.layers):
        rows, shape = heatmap_rows(steps, arrays["mean"][:, k])
        values = [row[3] for row in rows if row[4] == "ok"]
        below = sum(v < lo for v in values)
        above = sum(v > hi for v in values)
        span = f"[{number_text(lo)}, {number_text(hi)}]"
        notes = [f"colour: fixed range {span} (callbacks.gradflow.heatmap_range)",
                 f"{below} cells below it and {above} above, clamped" if below or above
                 else "no cell outside it", "grey: underflow, red: overflow"]
        if shape["kept_records"] < shape["records"] or shape["bins"] < shape["steps"]:
            notes.append(f"thinned: {shape['kept_records']} of {shape['records']} records, "
                         f"t in {shape['bins']} bins")
        table = wandb.Table(columns=list(HEATMAP_COLUMNS), data=rows)
        payload[metric_key(monitor.quantity, layer, "heatmap")] = wandb.plot_table(
            vega_spec_name=preset, data_table=table, fields=dict(HEATMAP_FIELDS),
            string_fields={
                "title": f"{_label(monitor)}log10 ‖{symbol}‖, {layer} "
                         f"({monitor.probe} probe), training step × t",
                "subtitle": "; ".join(notes),
                "quantity": symbol, "lo": number_text(lo), "hi": number_text(hi)})
    return payload


def summary_tables(monitor, arrays: dict[str, Any]) -> dict[str, Any]:
    """Per layer, a W&B Table with one row per record (step, epoch and the summary scalars): a
    dashboard plots horizon or decay against the training step from it in one panel, across
    runs, without reading the history row by row."""
    import wandb

    payload: dict[str, Any] = {}
    for k, layer in enumerate(monitor.layers or []):
        rows = [[int(arrays["steps"][i]), int(arrays["epochs"][i]),
                 *(float(arrays[name][i, k]) for name in SUMMARIES)]
                for i in range(len(arrays["steps"]))]
        payload[metric_key(monitor.quantity, layer, "summaries")] = wandb.Table(
            columns=["step", "epoch", *SUMMARIES], data=rows)
    return payload


# The colour range of the step-Jacobian heatmap, log10 ‖J_t‖₂: a factor 100 either way of 1
# (norm-preserving), the same for every run so that colours compare.
JACOBIAN_HEATMAP_RANGE = (-2.0, 2.0)
# The gate-means table: the training step of the record, the time step, the gate, its mean.
GATE_COLUMNS = ("step", "t", "gate", "mean")


def dynamics_charts(monitor, logger, record: dict[str, Any]) -> dict[str, Any]:
    """One dynamics record (dynamics.py): per layer the ‖J_t‖₂ curves (the curves chart, log y)
    and the gate means over t (W&B's line-series chart over a table with the training step)."""
    import wandb

    from .charts import CURVE_COLUMNS, CURVE_FIELDS, CURVES_CHART, chart_id, curve_rows

    preset = chart_id(_chart_entity(logger), CURVES_CHART)
    payload: dict[str, Any] = {}
    step = record["step"]
    for k, layer in enumerate(record["layers"]):
        key = f"gradflow/layer{k}"
        table = wandb.Table(columns=list(CURVE_COLUMNS), data=curve_rows(layer["norm"], step))
        payload[f"{key}/jacobian_curve"] = wandb.plot_table(
            vega_spec_name=preset, data_table=table, fields=dict(CURVE_FIELDS),
            string_fields={
                "title": f"{_label(monitor)}‖J_t‖₂ = ‖∂s_t/∂s_t−1‖₂ over t, layer{k}, "
                         f"training step {step}",
                "subtitle": f"{monitor.dynamics.rows} probe rows; line: mean, band: p10-p90",
                "yname": "‖J_t‖₂"})
        if layer["gates"]:
            rows = [[int(step), t + 1, name, float(value)]
                    for name, g in layer["gates"].items() for t, value in enumerate(g[0])]
            payload[f"{key}/gates"] = wandb.plot_table(
                vega_spec_name="wandb/lineseries/v0",
                data_table=wandb.Table(columns=list(GATE_COLUMNS), data=rows),
                fields={"step": "t", "lineKey": "gate", "lineVal": "mean"},
                string_fields={"title": f"{_label(monitor)}gate means over t, layer{k}, "
                                        f"training step {step}", "xname": "time step t"})
    return payload


def dynamics_tables(monitor, logger, arrays: dict[str, Any]) -> dict[str, Any]:
    """Per layer the (record step x t) heatmap of log10 ‖J_t‖₂ (the heatmap chart, colour range
    JACOBIAN_HEATMAP_RANGE) and a table of the dynamics scalars per record."""
    if len(arrays.get("jacobian_steps", ())) == 0:
        return {}
    import wandb

    from rnnlab.gradflow.dynamics import DynamicsRecorder

    from .charts import HEATMAP_CHART, HEATMAP_COLUMNS, HEATMAP_FIELDS, chart_id, heatmap_rows

    preset = chart_id(_chart_entity(logger), HEATMAP_CHART)
    lo, hi = JACOBIAN_HEATMAP_RANGE
    steps = arrays["jacobian_steps"]
    payload: dict[str, Any] = {}
    per_record = [DynamicsRecorder.scalars(r) for r in monitor.dynamics.records]
    for k in range(arrays["jacobian_norm_mean"].shape[1]):
        rows, _ = heatmap_rows(steps, arrays["jacobian_norm_mean"][:, k])
        payload[f"gradflow/layer{k}/jacobian_heatmap"] = wandb.plot_table(
            vega_spec_name=preset, data_table=wandb.Table(columns=list(HEATMAP_COLUMNS),
                                                          data=rows),
            fields=dict(HEATMAP_FIELDS),
            string_fields={"title": f"{_label(monitor)}log10 ‖J_t‖₂, layer{k}, training step × t",
                           "subtitle": f"colour: fixed range [{lo:g}, {hi:g}]; "
                                       f"{monitor.dynamics.rows} probe rows",
                           "quantity": "J_t", "lo": f"{lo:g}", "hi": f"{hi:g}"})
        names = sorted({n.split("/", 2)[2] for s in per_record for n in s
                        if n.startswith(f"gradflow/layer{k}/")})
        data = [[int(steps[i]), *(s.get(f"gradflow/layer{k}/{n}") for n in names)]
                for i, s in enumerate(per_record)]
        payload[f"gradflow/layer{k}/dynamics_summaries"] = wandb.Table(columns=["step", *names],
                                                                       data=data)
    return payload
