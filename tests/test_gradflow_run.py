"""Gradient flow in real runs: what reaches W&B, CSV, results.json and gradflow.npz; the probes do
not change training; DDP logs and writes once."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import cli

from rnnlab.gradflow import load_gradflow
from rnnlab.wandb_offline import find_offline_runs, read_finished_run

pytestmark = pytest.mark.slow
SUMMARY_NAMES = ("log10_first_over_last", "horizon", "log10_decay_per_step")
NPZ_ARRAYS = {"version", "quantity", "prefix", "probe", "cell", "impl", "layers", "steps",
              "epochs", "t", "mean", "p10", "p90", "horizon_fraction", "every_n_steps",
              *SUMMARY_NAMES, "param_steps", "grad_norm_total", "clip_fraction", "param_names",
              "param_grad_norms", "gradient_clip_val"}


def _read_run(run_dir):
    assert len(find_offline_runs(run_dir)) == 1
    return read_finished_run(run_dir)


def _check_npz(run_dir, quantity, layers, records, steps_per_record):
    saved = load_gradflow(run_dir)
    assert NPZ_ARRAYS <= set(saved)
    assert saved["quantity"] == quantity and saved["layers"] == layers
    R, L, T = saved["mean"].shape
    assert (R, L) == (records, len(layers)) and T == steps_per_record
    for name in ("p10", "p90"):
        assert saved[name].shape == (R, L, T)
    assert np.all(saved["p10"] <= saved["mean"] + 1e-12) and np.all(saved["mean"] > 0)
    for name in SUMMARY_NAMES:
        assert saved[name].shape == (R, L) and np.isfinite(saved[name]).all()
    assert list(saved["t"]) == list(range(1, T + 1))
    assert not list(run_dir.glob(".gradflow.npz.*"))  # atomic write leaves no temp file
    return saved


def test_short_scratch_run_reaches_wandb_csv_results_and_npz(run_training):
    results, run_dir = run_training(["data=copy", "model=gru", "model.impl=scratch",
                                     "model.num_layers=2", "model.hidden_size=16", "debug=fast",
                                     "callbacks.gradflow.every_n_steps=1",
                                     "trainer.gradient_clip_val=1e-6"])
    assert results["status"] == "completed"
    run = _read_run(run_dir)
    for layer in ("layer0", "layer1"):
        for name in SUMMARY_NAMES:
            values = run.series(f"gradflow/{layer}/{name}")
            assert len(values) == 2 and all(np.isfinite(values)), (layer, name)
        assert f"gradflow/{layer}/horizon" in results["metrics"]  # via callback_metrics
        assert set(run.series(f"gradflow/{layer}/heatmap/_type")) == {"image-file"}
    assert not any(key.startswith("gradflow_input/") for key in run.keys)  # dL/dh_t only
    # at least one curve: the line series' table, with t, mean, p10 and p90 of 30 steps
    paths = run.series("gradflow/layer0/curve_table/path")
    assert len(paths) == 2
    table = json.loads((run.path.parent / "files" / paths[0]).read_text())
    assert len(table["data"]) == 3 * 30
    assert {row[1] for row in table["data"]} == {"mean", "p10", "p90"}
    # the summary scalars per record as one W&B Table per layer (horizon vs training step)
    for layer in ("layer0", "layer1"):
        [path] = run.series(f"gradflow/{layer}/summaries/path")
        summaries = json.loads((run.path.parent / "files" / path).read_text())
        assert summaries["columns"] == ["step", "epoch", *SUMMARY_NAMES]
        assert [row[0] for row in summaries["data"]] == [0, 1]
        assert [row[2 + SUMMARY_NAMES.index("horizon")] for row in summaries["data"]] == \
            run.series(f"gradflow/{layer}/horizon")
    # optimizer side: per-parameter norms, total before clipping, clipping fired every step
    assert "gradflow/param/model.rnn.weight_hh_l0" in run.keys
    assert run.series("gradflow/clip_fraction") == [1.0, 1.0]
    assert results["metrics"]["gradflow/clipped_steps"] == 2.0
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        assert "gradflow/layer1/log10_decay_per_step" in next(csv.reader(handle))
    saved = _check_npz(run_dir, "dL/dh_t", ["layer0", "layer1"], 2, 30)
    assert saved["probe"] == "train" and list(saved["steps"]) == [0, 1]
    assert saved["cell"] == "gru" and saved["impl"] == "scratch"
    assert list(saved["clip_fraction"]) == [1.0, 1.0] and saved["gradient_clip_val"] == 1e-6
    assert "model.rnn.weight_hh_l1" in saved["param_names"]


def test_fused_run_measures_input_gradient_under_its_own_name(run_training):
    _, run_dir = run_training(["debug=fast", "model.impl=fused", "model.hidden_size=16",
                               "callbacks.gradflow.every_n_steps=1",
                               "callbacks.gradflow.probe=fixed"])
    run = _read_run(run_dir)
    assert run.config["model"]["impl"] == "fused"
    assert len(run.series("gradflow_input/layer0/horizon")) == 3  # steps 0, 1 and the end
    assert "gradflow_input/layer0/curve_table/path" in run.keys
    assert not any(key.startswith("gradflow/layer") for key in run.keys)
    saved = _check_npz(run_dir, "dL/dx_t", ["layer0"], 3, 30)
    assert saved["prefix"] == "gradflow_input" and saved["probe"] == "fixed"
    assert list(saved["steps"]) == [0, 1, 2]


@pytest.mark.parametrize("probe", ["train", "fixed"])
def test_monitoring_does_not_change_training(probe, run_training):
    """Dropout in the scratch cells draws from the RNG every step: same numbers with and
    without the monitor (a held-out probe batch, no parameter gradients, RNG forked)."""
    base = ["data=adding", "model=lstm", "model.impl=scratch", "model.num_layers=2",
            "model.dropout=0.3", "model.hidden_size=16", "debug=fast", "logger=none"]
    watched, run_dir = run_training([*base, f"callbacks.gradflow.probe={probe}",
                                     "callbacks.gradflow.every_n_steps=1"], "watched")
    plain, _ = run_training([*base, "~callbacks.gradflow"], "plain")
    for key in ("train/loss", "val/loss", "test/loss"):
        assert watched["metrics"][key] == plain["metrics"][key], key
    assert (run_dir / "gradflow.npz").exists()  # no logger: still recorded locally


def test_ddp_reduces_and_writes_once(tmp_path):
    result = cli(["trainer=ddp_cpu", "model.impl=scratch", "model.hidden_size=8", "debug=fast",
                  "callbacks.gradflow.every_n_steps=1", "experiment_name=gradflowddp"],
                 cwd=tmp_path, env={"RNNLAB_COMPILE": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = list((tmp_path / "logs" / "runs" / "gradflowddp").iterdir())
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    saved = _check_npz(run_dir, "dL/dh_t", ["layer0"], 2, 30)
    assert list(saved["steps"]) == [0, 1]
    run = _read_run(run_dir)
    assert len(run.series("gradflow/layer0/horizon")) == 2  # rank 0 only, once per record
    assert len(run.series("gradflow/layer0/curve_table/path")) == 2
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"]["gradflow/layer0/log10_first_over_last"] == pytest.approx(
        saved["log10_first_over_last"][-1, 0])


def test_bad_gradflow_setting_is_one_clear_line(run_training, capsys):
    with pytest.raises(SystemExit) as stop:
        run_training(["debug=fast", "logger=none", "callbacks.gradflow.probe=val"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "callbacks.gradflow.probe='val' is not one of train, fixed" in err
    assert "Traceback" not in err
