"""W&B dashboards built from code (wandb-workspaces): a workspace, and optionally a report, per
experiment group, with sections chosen from what the group sweeps.

What a group sweeps comes from its run directories when they are here (the tables' row keys),
else from the experiment preset of the same name (its sweep parameters). The objects are built
offline; ``spec`` turns them into JSON (``--dry-run``), ``save`` publishes them (needs W&B).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.results.rowkeys import GROUP_KEYS, label

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


def layout_from_runs(group: str, runs) -> Layout:
    """From run directories of the group (rnnlab.results.load_runs): their row keys."""
    from rnnlab.results.aggregate import BASELINE_METRIC, aggregate
    from rnnlab.results.figures import numeric_keys

    table = aggregate(runs)
    metrics = table.attrs["metrics"]
    layers = sorted({c.split("/")[1] for c in runs.columns
                     if c.startswith("gradflow/layer") and c.count("/") == 2}) or ["layer0"]
    return Layout(group=group, swept=list(table.attrs["keys"]), numeric=numeric_keys(table),
                  headline=metrics[0] if metrics else "val/loss",
                  has_baseline=BASELINE_METRIC in runs and runs[BASELINE_METRIC].notna().any(),
                  layers=layers)


def layout_from_preset(group: str) -> Layout:
    """From the experiment preset named like the group: its sweep parameters and data."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rnnlab.train import CONFIG_DIR

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
    headline = {"music": "test/nll"}.get(cfg.data.name, "test/loss")
    return Layout(group=group, swept=swept, numeric=[k for k in swept if k in NUMERIC_HINTS],
                  headline=headline, has_baseline=cfg.data.name in ("copy", "adding"),
                  layers=[f"layer{i}" for i in range(int(cfg.model.num_layers))])


def _panels(layout: Layout):
    """The sections of the dashboard: (title, [panels]) in reading order."""
    import wandb_workspaces.reports.v2 as wr

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
        flow.append(wr.LinePlot(title=f"‖∂L/∂h_t‖ over t, {layer} (log y)",
                                y=[f"gradflow/{layer}/curve"], log_y=True))
        flow.append(wr.MediaBrowser(title=f"{layer}: training step × t heatmap",
                                    media_keys=[f"gradflow/{layer}/heatmap"]))
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


def build_workspace(layout: Layout, entity: str, project: str):
    import wandb_workspaces.workspaces as ws

    sections = [ws.Section(name=title, panels=panels, is_open=i < 3)
                for i, (title, panels) in enumerate(_panels(layout))]
    # The runs table: the group's runs, grouped by their row, the swept settings as columns.
    pinned = ([f"config:{k}" for k in layout.swept] + [f"summary:{layout.headline}"]
              + (["summary:baseline/loss"] if layout.has_baseline else []))
    runset = ws.RunsetSettings(filters=[ws.Config("experiment_name") == layout.group],
                               groupby=[ws.Metric("JobType")], pinned_columns=pinned)
    return ws.Workspace(entity=entity, project=project, name=f"rnnlab: {layout.group}",
                        sections=sections, runset_settings=runset)


def build_report(layout: Layout, entity: str, project: str, table_md: str | None = None):
    import wandb_workspaces.reports.v2 as wr

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
    for title, panels in _panels(layout):
        blocks += [wr.H2(title), wr.PanelGrid(panels=panels, runsets=[runset])]
    return wr.Report(entity=entity, project=project, title=f"rnnlab: {layout.group}",
                     description="Built by rnnlab-dashboard from the group's swept settings.",
                     blocks=blocks)


def spec(objects: Sequence[Any]) -> list[dict]:
    """The JSON-able spec of built workspaces/reports (what --dry-run prints)."""
    return [{"kind": type(obj).__name__, "spec": obj._to_model().model_dump(mode="json")}
            for obj in objects]
