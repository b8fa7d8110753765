"""rnnlab-dashboard: workspaces and reports built offline (--dry-run), sections chosen from what
the group sweeps. Nothing here reaches W&B: the spec is what would be saved."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CONF
from test_results import write_run
from vega_charts import render_chart

from rnnlab.commands.dashboard import main as dashboard_main
from rnnlab.gradflow.stats import GradflowFile
from rnnlab.wandb import dashboard
from rnnlab.wandb.charts import (
    CHART_SPECS,
    CURVES_CHART,
    DEFAULT_HEATMAP_RANGE,
    HEATMAP_CHART,
)

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _dry_run(tmp_path, *args):
    out = tmp_path / "spec.json"
    assert dashboard_main(["--entity", "me", "--project", "p", *args, "--dry-run",
                           "--out", str(out)]) == 0
    spec = json.loads(out.read_text())
    text = json.dumps(spec)
    return spec, text


def _sections(spec):
    workspace = spec["objects"][0]["spec"]["spec"]["section"]["panel_bank_config"]
    return {s["name"]: s["panels"] for s in workspace["sections"]}


def _charts(tree, found=None):
    """Every custom-chart panel (Vega2) in a spec: its config."""
    found = [] if found is None else found
    if isinstance(tree, dict):
        if tree.get("view_type") == "Vega2":
            found.append(tree["config"])
        for value in tree.values():
            _charts(value, found)
    elif isinstance(tree, list):
        for value in tree:
            _charts(value, found)
    return found


def _drawn(obj, preset):
    """The Vega-Lite specs the object's panels on ``preset`` draw (fields and strings filled)."""
    return [render_chart(obj["charts"][c["panel_def_id"]], c["field_settings"],
                         c["string_settings"])
            for c in _charts(obj["spec"]) if c["panel_def_id"] == f"me/{preset}"]


def _domain(drawn):
    scale = drawn["spec"]["encoding"]["color"]["scale"]
    return float(scale["domainMin"]["expr"]), float(scale["domainMax"]["expr"])


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_gets_a_layout_from_its_sweep(preset, tmp_path):
    spec, text = _dry_run(tmp_path, "--group", preset, "--report")
    assert [o["kind"] for o in spec["objects"]] == ["Workspace", "Report"]
    sections = _sections(spec)
    assert any(name.startswith("Headline") for name in sections)
    assert "Training curves per row" in sections and "Gradient flow" in sections
    for key in spec["swept"]:  # the swept settings are runs-table columns and axes
        assert f"config:{key}" in text
    assert f'"value": "{preset}"' in text  # the runs of this group only


def test_gru_variants_layout(tmp_path):
    spec, text = _dry_run(tmp_path, "--group", "gru_variants")
    assert spec["swept"] == ["model.variant", "model.reset"] and spec["numeric"] == []
    assert "gradflow/layer0/heatmap_table" in text and "gradflow/layer0/curve_table" in text
    assert '"group_by": "row.value"' in text  # panels pool seeds exactly like the tables


@pytest.mark.parametrize("report", [False, True])
def test_gradflow_panels_are_custom_charts_on_one_range_with_log_y(tmp_path, report):
    spec, _ = _dry_run(tmp_path, "--group", "gradflow_init", *(["--report"] if report else []))
    for obj in spec["objects"]:
        # the specs the panels draw travel with the dry run (what `save` registers under me/)
        assert obj["charts"] == {f"me/{name}": vega for name, vega in CHART_SPECS.items()}
        [heatmap] = _drawn(obj, HEATMAP_CHART)  # gradflow_init: one layer
        assert _domain(heatmap) == DEFAULT_HEATMAP_RANGE  # the preset sets no range
        assert heatmap["facet"]["field"] == "name"  # one facet per run, one colour scale
        encoding = heatmap["spec"]["encoding"]
        assert (encoding["x"]["title"], encoding["y"]["title"]) == ("time step t",
                                                                    "training step")
        assert encoding["color"]["scale"]["clamp"] is True
        assert "clamped to [-40, 10]" in encoding["color"]["title"]
        [curves] = _drawn(obj, CURVES_CHART)
        assert [layer["encoding"]["y"]["scale"]["type"] for layer in curves["layer"]] == \
            ["log", "log"]
        tables = {q["args"][0]["value"] for c in _charts(obj["spec"])
                  for q in c["user_query"]["query_fields"][0]["fields"]
                  if q["name"] == "summaryTable"}
        assert tables == {"gradflow/layer0/heatmap_table", "gradflow/layer0/curve_table"}
    assert "LinePlot" not in json.dumps(_charts(spec))  # the old line plot of a chart key: gone


def _gradflow_run(root, name, cell, decades, seed=0):
    """A run dir with results.json and a gradflow.npz whose layer0 norms span ``decades``."""
    run_dir = write_run(root, name, {"model.cell": cell, "experiment_name": "cells"}, seed=seed,
                        overrides=[f"model.cell={cell}"], metrics={"test/loss": 0.1})
    mean = np.logspace(*decades, 20, dtype=np.float32).reshape(2, 1, 10)
    mean[0, 0, 5] = 0.0  # an underflowed norm does not stretch the range to -38
    GradflowFile(run_dir).write({
        "prefix": np.str_("gradflow"), "layers": np.array(["layer0"]), "steps": np.arange(2),
        "mean": mean})
    return run_dir


def test_run_dirs_give_the_shared_range_min_max(tmp_path):
    _gradflow_run(tmp_path / "runs", "gru", "gru", (-12.5, -1.2))
    _gradflow_run(tmp_path / "runs", "lstm", "lstm", (-6.0, 0.3))
    spec, _ = _dry_run(tmp_path, "--group", "cells", "--runs", str(tmp_path / "runs"),
                       "--report")
    for obj in spec["objects"]:
        [heatmap] = _drawn(obj, HEATMAP_CHART)
        assert _domain(heatmap) == (-13.0, 1.0)
        assert "min-max over 2 runs' gradflow.npz" in heatmap["title"]["subtitle"]


def test_configured_range_without_npz_and_a_bad_one_is_one_line(tmp_path, capsys):
    for seed in (0, 1):
        write_run(tmp_path / "ok", str(seed), {"experiment_name": "cells",
                                               "callbacks.gradflow.heatmap_range": [-20, 2]},
                  seed=seed, metrics={"test/loss": 0.1})
    spec, _ = _dry_run(tmp_path, "--group", "cells", "--runs", str(tmp_path / "ok"))
    [heatmap] = _drawn(spec["objects"][0], HEATMAP_CHART)
    assert _domain(heatmap) == (-20.0, 2.0)
    assert "(callbacks.gradflow.heatmap_range)" in heatmap["title"]["subtitle"]
    write_run(tmp_path / "ok", "2", {"experiment_name": "cells"}, seed=2,  # the default
              metrics={"test/loss": 0.1})
    spec, _ = _dry_run(tmp_path, "--group", "cells", "--runs", str(tmp_path / "ok"))
    [heatmap] = _drawn(spec["objects"][0], HEATMAP_CHART)
    assert _domain(heatmap) == (-40.0, 10.0)  # covers every run's own range
    assert "the union of the runs'" in heatmap["title"]["subtitle"]
    write_run(tmp_path / "bad", "0", {"experiment_name": "cells",
                                      "callbacks.gradflow.heatmap_range": [3, -3]})
    with pytest.raises(SystemExit) as exit_info:  # bad input: one line, exit 2
        dashboard_main(["--entity", "me", "--group", "cells", "--runs", str(tmp_path / "bad"),
                        "--dry-run"])
    assert exit_info.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(
        "rnnlab-dashboard: error: callbacks.gradflow.heatmap_range must be [lo, hi]"), said


def test_save_registers_the_chart_presets_first(monkeypatch):
    """No W&B here: the API and the upload are stand-ins; what is sent to them is checked."""
    import wandb
    import wandb_workspaces.workspaces as ws

    made, saved = [], []

    class Api:
        def create_custom_chart(self, entity, name, display_name, spec_type, access, spec):
            made.append((entity, name, spec_type, spec))
            if name == CURVES_CHART:
                raise RuntimeError("a chart with this name already exists")
            return f"{entity}/{name}"

    monkeypatch.setattr(wandb, "Api", Api)
    monkeypatch.setattr(ws.Workspace, "save", lambda self: saved.append(len(made)) or self)
    layout = dashboard.Layout(group="g", swept=[], numeric=[])
    dashboard.build_workspace(layout, "me", "p").save()
    assert saved == [2]  # both presets before the workspace
    assert [(e, n, t) for e, n, t, _ in made] == [("me", HEATMAP_CHART, "vega2"),
                                                  ("me", CURVES_CHART, "vega2")]
    assert [spec for *_, spec in made] == list(CHART_SPECS.values())

    def refuse(self, **kwargs):
        raise RuntimeError("permission denied")

    monkeypatch.setattr(Api, "create_custom_chart", refuse)
    with pytest.raises(RuntimeError, match="permission denied"):
        dashboard.build_workspace(layout, "me", "p").save()
    assert saved == [2]  # nothing saved without its charts


def test_layout_from_run_dirs_plots_the_metric_against_T(tmp_path):
    for T in (10, 50):
        for seed in (0, 1):
            write_run(tmp_path / "runs", f"{T}-{seed}", {"data.seq_len": T,
                                                          "experiment_name": "copyT"},
                      seed=seed, overrides=[f"data.seq_len={T}"],
                      metrics={"test/loss": 0.1, "baseline/loss": 0.5})
    spec, text = _dry_run(tmp_path, "--group", "copyT", "--runs", str(tmp_path / "runs"),
                          "--report")
    assert spec["swept"] == ["data.seq_len"] and spec["numeric"] == ["data.seq_len"]
    assert "test/loss against T" in _sections(spec)
    assert "baseline/loss" in text
    # The report carries the aggregated table: one row per T, n = 2.
    assert "|   T |" in text and "|   2 |" in text


def test_unknown_group_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNLAB_LOGS", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        dashboard_main(["--entity", "me", "--group", "nope", "--dry-run"])
    assert exit_info.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "no experiment preset of that name" in said[0], said
