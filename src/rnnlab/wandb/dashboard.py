"""W&B dashboards built from code (wandb-workspaces): a workspace, and optionally a report, per
experiment group, with sections chosen from what the group sweeps.

What a group sweeps comes from its run directories when they are here (the tables' row keys),
else from the experiment preset of the same name (its sweep parameters). The objects are built
offline; ``spec`` turns them into JSON (``--dry-run``), ``save`` publishes them (needs W&B) and
first registers the gradient-flow chart presets (rnnlab.wandb.charts) under the entity.

Gradient flow is shown by two custom charts over the tables the monitor logs: the curves over t
on a log y axis (one colour per run) and the training step x t heatmap (one facet per run) on
one colour range for the whole group: min-max of log10 ||dL/dh_t|| over the group's
gradflow.npz files when the run directories are here, else the runs' (or the preset's)
``callbacks.gradflow.heatmap_range`` (the union when they differ).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws

from rnnlab.config.naming import GROUP_KEYS, label
from rnnlab.wandb.charts import (
    CHART_SPECS,
    CURVE_FIELDS,
    CURVES_CHART,
    DEFAULT_HEATMAP_RANGE,
    HEATMAP_CHART,
    HEATMAP_FIELDS,
    chart_id,
    check_heatmap_range,
    number_text,
)

GRADFLOW_SCALARS = ("horizon", "log10_first_over_last", "log10_decay_per_step")
# Settings that are numbers (a metric can be plotted against them).
NUMERIC_HINTS = ("data.seq_len", "optimizer.lr", "model.hidden_size", "model.forget_bias",
                 "trainer.gradient_clip_val", "model.param_budget", "model.num_layers",
                 "model.dropout")


@dataclass
class Layout:
    """What a group's dashboard shows, decided from its swept settings."""

    group: str
    swept: list[str]
    numeric: list[str]
    headline: str = "test/loss"
    has_baseline: bool = True
    layers: list[str] = field(default_factory=lambda: ["layer0"])
    # The heatmaps' colour range (log10 units), one for every run of the group, and where it
    # comes from (said in the panels' subtitles).
    heatmap_range: tuple[float, float] = DEFAULT_HEATMAP_RANGE
    heatmap_range_source: str = "the default heatmap_range"


def heatmap_domain(run_dirs: Sequence[str | Path], layers: Sequence[str]
                   ) -> tuple[tuple[float, float], int] | None:
    """The colour range that shows every run's heatmap unclamped: [floor(min), ceil(max)] of
    log10 of the batch-mean ||dL/dh_t|| over the runs' gradflow.npz (the given layers; underflow
    and padding left out), and how many runs it read; None when no run has one."""
    import numpy as np

    from rnnlab.gradflow.stats import FLOOR, PREFIX, load_gradflow
    from rnnlab.run.rundir import RunDir

    lo, hi, used = math.inf, -math.inf, 0
    for run_dir in run_dirs:
        path = RunDir(run_dir).gradflow
        if not path.is_file():
            continue
        data = load_gradflow(path)
        if data["prefix"] != PREFIX["dL/dh_t"] or not len(data["steps"]):
            continue
        picked = [k for k, name in enumerate(data["layers"]) if name in layers]
        values = np.asarray(data["mean"], dtype=np.float64)[:, picked]
        values = values[np.isfinite(values) & (values >= FLOOR)]
        if values.size:
            lo, hi = min(lo, float(np.log10(values.min()))), max(hi, float(np.log10(values.max())))
            used += 1
    if not used:
        return None
    lo, hi = math.floor(lo), math.ceil(hi)
    return (float(lo), float(hi if hi > lo else lo + 1)), used


def _configured_range(values: Sequence[Any]) -> tuple[tuple[float, float], str]:
    """The group's ``callbacks.gradflow.heatmap_range`` (runs: JSON text per run, None/NaN for
    the default; preset: one value): the one they share, else the union of theirs."""
    def one(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return check_heatmap_range(json.loads(value) if isinstance(value, str) else value)

    given = [one(v) for v in values]
    ranges = {r or DEFAULT_HEATMAP_RANGE for r in given}
    if not any(given):
        return DEFAULT_HEATMAP_RANGE, "the default heatmap_range"
    if len(ranges) == 1:
        return ranges.pop(), "callbacks.gradflow.heatmap_range"
    return ((min(lo for lo, _ in ranges), max(hi for _, hi in ranges)),
            "the union of the runs' callbacks.gradflow.heatmap_range")


def layout_from_runs(group: str, runs) -> Layout:
    """From run directories of the group (rnnlab.results.load_runs): their row keys."""
    from rnnlab.results.aggregate import aggregate
    from rnnlab.results.figures import numeric_keys
    from rnnlab.run.verdict import BASELINE_METRIC

    table = aggregate(runs)
    metrics = table.attrs["metrics"]
    layers = sorted({c.split("/")[1] for c in runs.columns
                     if c.startswith("gradflow/layer") and c.count("/") == 2}) or ["layer0"]
    found = heatmap_domain(runs["run_dir"], layers)
    if found is not None:
        (span, used) = found
        source = f"min-max over {used} runs' gradflow.npz" if used > 1 else \
            "min-max of the run's gradflow.npz"
    else:
        key = "callbacks.gradflow.heatmap_range"
        span, source = _configured_range(list(runs[key]) if key in runs else [])
    return Layout(group=group, swept=list(table.attrs["keys"]), numeric=numeric_keys(table),
                  headline=metrics[0] if metrics else "val/loss",
                  has_baseline=BASELINE_METRIC in runs and runs[BASELINE_METRIC].notna().any(),
                  layers=layers, heatmap_range=span, heatmap_range_source=source)


def layout_from_preset(group: str) -> Layout:
    """From the experiment preset named like the group: its sweep parameters and data."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import rnnlab.config.schemas  # noqa: F401  (registers the schemas the presets compose with)
    from rnnlab.config.configdir import CONFIG_DIR

    presets = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
    if group not in presets:
        raise ValueError(f"--group {group}: no run directories given (--runs) and no experiment "
                         f"preset of that name (presets: {', '.join(presets)})")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={group}"],
                      return_hydra_config=True)
    GlobalHydra.instance().clear()
    swept = [GROUP_KEYS.get(k, k) for k in (cfg.hydra.sweeper.params or {})]
    headline = {"music": "test/nll", "selective_copy": "test/acc",
                "parity": "test/acc"}.get(cfg.data.name, "test/loss")
    gradflow = (cfg.get("callbacks") or {}).get("gradflow") or {}
    span, source = _configured_range([gradflow.get("heatmap_range")])
    return Layout(group=group, swept=swept, numeric=[k for k in swept if k in NUMERIC_HINTS],
                  headline=headline,
                  has_baseline=cfg.data.name in ("copy", "adding", "selective_copy", "parity"),
                  layers=[f"layer{i}" for i in range(int(cfg.model.num_layers))],
                  heatmap_range=span, heatmap_range_source=source)


def _custom_chart(entity: str, name: str, table_key: str, fields: dict[str, str],
                  strings: dict[str, str], **kwargs):
    """A panel drawing the preset ``entity/name`` over the logged table ``table_key`` of every
    run in view (the query W&B's own logged charts use: run id, name and the table)."""
    return wr.CustomChart(query={"summaryTable": {"tableKey": table_key}, "id": {}, "name": {},
                                 "_defaultColorIndex": {}},
                          chart_name=chart_id(entity, name), chart_fields=dict(fields),
                          chart_strings=strings, **kwargs)


def gradflow_panels(layout: Layout, entity: str, layer: str) -> list:
    """One layer's gradient-flow charts: curves (log y) and the heatmap on the group's range."""
    lo, hi = (number_text(v) for v in layout.heatmap_range)
    return [
        _custom_chart(entity, CURVES_CHART, f"gradflow/{layer}/curve_table", CURVE_FIELDS, {
            "title": f"‖∂L/∂h_t‖ over t, {layer}, last record of each run",
            "subtitle": "line: batch mean, band: 10th-90th percentile; log y",
            "yname": "‖∂L/∂h_t‖"}),
        _custom_chart(entity, HEATMAP_CHART, f"gradflow/{layer}/heatmap_table", HEATMAP_FIELDS, {
            "title": f"log10 ‖∂L/∂h_t‖, {layer}: training step × t, one facet per run",
            "subtitle": f"one colour range for the group: [{lo}, {hi}] "
                        f"({layout.heatmap_range_source}); outside values clamped; grey: "
                        "underflow, red: overflow",
            "quantity": "∂L/∂h_t", "lo": lo, "hi": hi},
            layout=wr.Layout(w=24, h=12)),  # full width: one facet per run, two per row
    ]


def _panels(layout: Layout, entity: str):
    """The sections of the dashboard: (title, [panels]) in reading order."""
    keys = layout.swept
    # Every run logs its table row as config "row" (and as its job_type): panels grouped by it
    # pool exactly the seeds that the tables pool.
    row = "row"
    headline = [layout.headline] + (["baseline/loss"] if layout.has_baseline else [])
    sections = [("Headline: " + layout.headline + " per row", [
        wr.BarPlot(title=f"{layout.headline} per row (mean ± std over seeds)"
                   + (", with the task's baseline" if layout.has_baseline else ""),
                   metrics=headline, groupby=row, groupby_aggfunc="mean",
                   groupby_rangefunc="stddev", orientation="h"),
    ])]
    if layout.numeric:
        sections.append((f"{layout.headline} against " + ", ".join(
            label(k, keys) for k in layout.numeric), [
            wr.ScatterPlot(title=f"{layout.headline} against {label(k, keys)}", x=wr.Config(k),
                           y=wr.SummaryMetric(layout.headline), log_y=True)
            for k in layout.numeric]))
    sections.append(("Training curves per row", [
        wr.LinePlot(title=f"{m} (mean over seeds, band min-max)", x="Step", y=[m], log_y=True,
                    groupby=row, groupby_aggfunc="mean", groupby_rangefunc="minmax")
        for m in ("train/loss", "val/loss")]))
    flow = []
    for layer in layout.layers:
        flow.extend(gradflow_panels(layout, entity, layer))
        flow.extend(wr.LinePlot(title=f"gradflow/{layer}/{s} over training",
                                y=[f"gradflow/{layer}/{s}"], groupby=row,
                                groupby_aggfunc="mean", groupby_rangefunc="minmax")
                    for s in GRADFLOW_SCALARS)
    sections.append(("Gradient flow", flow))
    scalars = [f"gradflow/{layout.layers[0]}/{s}" for s in GRADFLOW_SCALARS]
    columns = ([wr.ParallelCoordinatesPlotColumn(metric=wr.Config(k)) for k in keys]
               + [wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(m))
                  for m in [*scalars, layout.headline]])
    against = [wr.ParallelCoordinatesPlot(title="swept settings → gradient flow → "
                                          + layout.headline, columns=columns)]
    against += [wr.ScatterPlot(title=f"{s.rsplit('/', 1)[-1]} against {label(k, keys)}",
                               x=wr.Config(k), y=wr.SummaryMetric(s))
                for k in layout.numeric for s in scalars[:2]]
    sections.append(("Gradient-flow scalars against the swept settings", against))
    return sections


def register_charts(entity: str) -> list[str]:
    """Create the gradient-flow chart presets under ``entity`` (needs W&B); a preset that is
    already there is kept (the names carry a version, so it is the same spec)."""
    import wandb

    api, made = wandb.Api(), []
    for name, vega in CHART_SPECS.items():
        try:
            made.append(api.create_custom_chart(entity=entity, name=name, display_name=name,
                                                spec_type="vega2", access="private", spec=vega))
        except Exception as error:  # the server's wording for "exists" varies
            if not any(word in str(error).lower() for word in ("exist", "duplicate", "taken")):
                raise
            made.append(chart_id(entity, name))
    return made


class Workspace(ws.Workspace):
    """wandb-workspaces' Workspace whose ``save`` first registers the chart presets."""

    def save(self):
        register_charts(self.entity)
        return super().save()


class Report(wr.Report):
    """wandb-workspaces' Report whose ``save`` first registers the chart presets."""

    def save(self, *args, **kwargs):
        register_charts(self.entity)
        return super().save(*args, **kwargs)


def build_workspace(layout: Layout, entity: str, project: str):
    sections = [ws.Section(name=title, panels=panels, is_open=i < 3)
                for i, (title, panels) in enumerate(_panels(layout, entity))]
    # The runs table: the group's runs, grouped by their row, the swept settings as columns.
    pinned = ([f"config:{k}" for k in layout.swept] + [f"summary:{layout.headline}"]
              + (["summary:baseline/loss"] if layout.has_baseline else []))
    runset = ws.RunsetSettings(filters=[ws.Config("experiment_name") == layout.group],
                               groupby=[ws.Metric("JobType")], pinned_columns=pinned)
    return Workspace(entity=entity, project=project, name=f"rnnlab: {layout.group}",
                     sections=sections, runset_settings=runset)


def build_report(layout: Layout, entity: str, project: str, table_md: str | None = None):
    blocks: list[Any] = [wr.H1(f"rnnlab: {layout.group}"),
                         wr.P("Rows are the settings that differ between runs, except the seed: "
                              + (", ".join(layout.swept) or "none") + ".")]
    if table_md:
        blocks.append(wr.MarkdownBlock(table_md))
    # No entity/project on the runset: it reads the report's own project (and building it
    # needs no W&B lookup, so --dry-run works offline).
    from wandb_workspaces import expr

    runset = wr.Runset(name=layout.group, filters=[expr.Config("experiment_name") == layout.group],
                       groupby=["row"])
    for title, panels in _panels(layout, entity):
        blocks += [wr.H2(title), wr.PanelGrid(panels=panels, runsets=[runset])]
    return Report(entity=entity, project=project, title=f"rnnlab: {layout.group}",
                     description="Built by rnnlab-dashboard from the group's swept settings.",
                     blocks=blocks)


def _panel_def_ids(tree: Any) -> set[str]:
    if isinstance(tree, dict):
        found = {tree["panel_def_id"]} if isinstance(tree.get("panel_def_id"), str) else set()
        return found.union(*(_panel_def_ids(v) for v in tree.values()))
    if isinstance(tree, list):
        return set().union(*(_panel_def_ids(v) for v in tree))
    return set()


def spec(objects: Sequence[Any]) -> list[dict]:
    """The JSON-able spec of built workspaces/reports (what --dry-run prints), each with the
    Vega-Lite specs of the chart presets its panels use (what ``save`` registers)."""
    out = []
    for obj in objects:
        model = obj._to_model().model_dump(mode="json")
        kind = next(c.__name__ for c in type(obj).__mro__
                    if c.__module__.startswith("wandb_workspaces"))
        charts = {ident: CHART_SPECS[ident.rsplit("/", 1)[-1]] for ident in
                  sorted(_panel_def_ids(model)) if ident.rsplit("/", 1)[-1] in CHART_SPECS}
        out.append({"kind": kind, "spec": model, "charts": charts})
    return out
