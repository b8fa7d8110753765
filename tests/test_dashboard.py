"""rnnlab-dashboard: workspaces and reports built offline (--dry-run), sections chosen from what
the group sweeps. Nothing here reaches W&B: the spec is what would be saved."""

from __future__ import annotations

import json

import pytest
from conftest import CONF
from test_results import write_run

from rnnlab.results.cli import dashboard_main

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
    assert "gradflow/layer0/heatmap" in text and "gradflow/layer0/curve" in text
    assert '"group_by": "row.value"' in text  # panels pool seeds exactly like the tables


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


def test_unknown_group_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_LOGS", str(tmp_path))
    with pytest.raises(SystemExit, match="no experiment preset of that name"):
        dashboard_main(["--entity", "me", "--group", "nope", "--dry-run"])
