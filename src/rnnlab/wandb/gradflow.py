"""The gradient-flow monitor's W&B payloads: each record's curves, the (training step x t)
heatmap, the per-record summary tables, as W&B Tables with the custom charts of charts.py.
The monitor (rnnlab.gradflow.monitor) measures and decides when; these build what W&B is sent.
``monitor`` is the GradientFlowMonitor (its quantity, layers, cell, probe, heatmap range),
``logger`` the run's WandbLogger."""

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


def log_curves(monitor, logger, record: dict[str, Any], scalars: dict[str, float]) -> None:
    """The record's curves (mean, p10, p90 of the norm over t) as a W&B Table and a custom
    chart over it with a log y axis, in one history row with its scalars."""
    import wandb

    from .charts import CURVE_COLUMNS, CURVE_FIELDS, CURVES_CHART, UNICODE, chart_id, curve_rows

    symbol = UNICODE.get(monitor.quantity, monitor.quantity)
    preset = chart_id(_chart_entity(logger), CURVES_CHART)
    payload: dict[str, Any] = dict(scalars)
    for k, layer in enumerate(monitor.layers):
        table = wandb.Table(columns=list(CURVE_COLUMNS), data=curve_rows(record["stats"][:, k]))
        payload[metric_key(monitor.quantity, layer, "curve")] = wandb.plot_table(
            vega_spec_name=preset, data_table=table, fields=dict(CURVE_FIELDS),
            string_fields={
                "title": f"{_label(monitor)}‖{symbol}‖ over t, {layer}, "
                         f"training step {record['step']}",
                "subtitle": f"{monitor.probe} probe; line: batch mean, band: 10th-90th "
                            "percentile; log y (underflowed norms left out)",
                "yname": f"‖{symbol}‖"})
    payload["trainer/global_step"] = record["step"]
    logger.experiment.log(payload)


def log_heatmaps(monitor, logger, arrays: dict[str, Any]) -> None:
    """Per layer, the (training step x t) heatmap so far as a long-format W&B Table (at most
    charts.HEATMAP_MAX_ROWS rows) and a custom chart over it: colour = log10 of the batch-mean
    norm on the fixed range ``heatmap_range``, the same for every run of a group."""
    if logger is None:
        return
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
    payload["trainer/global_step"] = int(steps[-1])
    logger.experiment.log(payload)


def log_summary_tables(monitor, logger, arrays: dict[str, Any]) -> None:
    """At the end, per layer, a W&B Table with one row per record (step, epoch and the
    summary scalars): a dashboard plots horizon or decay against the training step from it
    in one panel, across runs, without reading the history row by row."""
    if logger is None or not monitor.records:
        return
    import wandb

    payload: dict[str, Any] = {}
    for k, layer in enumerate(monitor.layers or []):
        rows = [[int(arrays["steps"][i]), int(arrays["epochs"][i]),
                 *(float(arrays[name][i, k]) for name in SUMMARIES)]
                for i in range(len(arrays["steps"]))]
        payload[metric_key(monitor.quantity, layer, "summaries")] = wandb.Table(
            columns=["step", "epoch", *SUMMARIES], data=rows)
    payload["trainer/global_step"] = int(arrays["steps"][-1])
    logger.experiment.log(payload)


# The colour range of the step-Jacobian heatmap, log10 ‖J_t‖₂: a factor 100 either way of 1
# (norm-preserving), the same for every run so that colours compare.
JACOBIAN_HEATMAP_RANGE = (-2.0, 2.0)


def log_dynamics(monitor, logger, record: dict[str, Any], scalars: dict[str, float]) -> None:
    """One dynamics record (dynamics.py) with its scalars: per layer the ‖J_t‖₂ curves (the
    curves chart, log y) and the gate means over t (a line series)."""
    if logger is None:
        return
    import wandb

    from .charts import CURVE_COLUMNS, CURVE_FIELDS, CURVES_CHART, chart_id, curve_rows

    preset = chart_id(_chart_entity(logger), CURVES_CHART)
    payload: dict[str, Any] = dict(scalars)
    for k, layer in enumerate(record["layers"]):
        key = f"gradflow/layer{k}"
        table = wandb.Table(columns=list(CURVE_COLUMNS), data=curve_rows(layer["norm"]))
        payload[f"{key}/jacobian_curve"] = wandb.plot_table(
            vega_spec_name=preset, data_table=table, fields=dict(CURVE_FIELDS),
            string_fields={
                "title": f"{_label(monitor)}‖J_t‖₂ = ‖∂s_t/∂s_t−1‖₂ over t, layer{k}, "
                         f"training step {record['step']}",
                "subtitle": f"{monitor.dynamics.rows} probe rows; line: mean, band: p10-p90",
                "yname": "‖J_t‖₂"})
        if layer["gates"]:
            T = next(iter(layer["gates"].values())).shape[-1]
            payload[f"{key}/gates"] = wandb.plot.line_series(
                xs=list(range(1, T + 1)),
                ys=[[float(v) for v in g[0]] for g in layer["gates"].values()],
                keys=list(layer["gates"]), xname="time step t",
                title=f"{_label(monitor)}gate means over t, layer{k}, step {record['step']}")
    payload["trainer/global_step"] = record["step"]
    logger.experiment.log(payload)


def log_dynamics_heatmaps(monitor, logger, arrays: dict[str, Any]) -> None:
    """At the end: per layer the (record step x t) heatmap of log10 ‖J_t‖₂ (the heatmap chart,
    colour range JACOBIAN_HEATMAP_RANGE) and a table of the dynamics scalars per record."""
    if logger is None or len(arrays.get("jacobian_steps", ())) == 0:
        return
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
    payload["trainer/global_step"] = int(steps[-1])
    logger.experiment.log(payload)
