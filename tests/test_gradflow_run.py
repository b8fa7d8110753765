"""Gradient flow in real runs: what reaches W&B, CSV, results.json and gradflow.npz; the probes do
not change training; DDP logs and writes once; the W&B heatmap's colour range is the same for
every cell."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from conftest import cli
from vega_charts import render_chart
from wandb_offline import find_offline_runs, read_finished_run

from rnnlab.gradflow import load_gradflow
from rnnlab.wandb.charts import (
    CURVE_COLUMNS,
    CURVES_CHART,
    CURVES_VEGA,
    DEFAULT_HEATMAP_RANGE,
    HEATMAP_CHART,
    HEATMAP_COLUMNS,
    HEATMAP_VEGA,
    heatmap_rows,
)

pytestmark = pytest.mark.slow
SUMMARY_NAMES = ("log10_first_over_last", "horizon", "log10_decay_per_step")
NPZ_ARRAYS = {"version", "quantity", "prefix", "probe", "cell", "impl", "layers", "steps",
              "epochs", "t", "mean", "p10", "p90", "horizon_fraction", "every_n_steps",
              *SUMMARY_NAMES, "param_steps", "grad_norm_total", "clip_fraction", "param_names",
              "param_grad_norms", "gradient_clip_val"}


def _read_run(run_dir):
    assert len(find_offline_runs(run_dir)) == 1
    return read_finished_run(run_dir)


def _table(run, key, index=-1):
    """The logged W&B Table ``key`` (its ``index``-th logging) as {"columns", "data"}."""
    path = run.series(f"{key}/path")[index]
    return json.loads((run.path.parent / "files" / path).read_text())


def _chart(run, key):
    """The custom chart logged under ``key``: (preset name, Vega-Lite spec as W&B draws it)."""
    config = run.config[f"_wandb/visualize/{key}"]["panel_config"]
    spec = {HEATMAP_CHART: HEATMAP_VEGA, CURVES_CHART: CURVES_VEGA}[config["panelDefId"]]
    return config, render_chart(spec, config["fieldSettings"], config["stringSettings"])


def _colour_domain(spec):
    scale = spec["spec"]["encoding"]["color"]["scale"]
    return float(scale["domainMin"]["expr"]), float(scale["domainMax"]["expr"])


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
    assert not any(key.startswith("gradflow_input/") for key in run.keys)  # dL/dh_t only
    assert not any(key.endswith("/_type") and "image" in str(run.series(key)) for key in run.keys)
    saved = _check_npz(run_dir, "dL/dh_t", ["layer0", "layer1"], 2, 30)
    # the last record's curves, once, at the end: a table of the training step, t, mean, p10,
    # p90 (the norms) under a log-y custom chart
    assert len(run.series("gradflow/layer0/curve_table/path")) == 1
    table = _table(run, "gradflow/layer0/curve_table", 0)
    assert table["columns"] == list(CURVE_COLUMNS) == ["step", "t", "mean", "p10", "p90"]
    assert [row[0] for row in table["data"]] == [1] * 30  # the last record's training step
    assert [row[1] for row in table["data"]] == list(range(1, 31))
    assert np.allclose([row[2:] for row in table["data"]],
                       np.stack([saved[s][-1, 0] for s in ("mean", "p10", "p90")], axis=1))
    config, spec = _chart(run, "gradflow/layer0/curve")
    assert config["panelDefId"] == CURVES_CHART  # offline, no entity: the bare preset name
    assert {layer["encoding"]["y"]["scale"]["type"] for layer in spec["layer"]} == {"log"}
    assert spec["encoding"]["x"]["title"] == "time step t"
    # the heatmap, logged once at the end: one row per (record, t), log10 of the batch mean
    for k, layer in enumerate(("layer0", "layer1")):
        assert len(run.series(f"gradflow/{layer}/heatmap_table/path")) == 1
        table = _table(run, f"gradflow/{layer}/heatmap_table")
        assert table["columns"] == list(HEATMAP_COLUMNS) and len(table["data"]) == 2 * 30
        steps, t, t_end, value, status = zip(*table["data"])
        assert steps == (0,) * 30 + (1,) * 30 and t == t_end == tuple(range(1, 31)) * 2
        assert set(status) == {"ok"}
        assert np.allclose(value, np.log10(saved["mean"][:, k]).ravel(), atol=1e-4)
    # the summary scalars per record as one W&B Table per layer (horizon vs training step)
    for layer in ("layer0", "layer1"):
        [path] = run.series(f"gradflow/{layer}/summaries/path")
        summaries = json.loads((run.path.parent / "files" / path).read_text())
        assert summaries["columns"] == ["step", "epoch", *SUMMARY_NAMES]
        assert [row[0] for row in summaries["data"]] == [0, 1]
        assert [row[2 + SUMMARY_NAMES.index("horizon")] for row in summaries["data"]] == \
            run.series(f"gradflow/{layer}/horizon")
    # W&B gets each table once, at the end, whatever the number of records: W&B stages a copy
    # of every logged table (two, in fact) under wandb/data/artifacts/staging, where an offline
    # run keeps them (issue 39: a short run staged 52)
    tables = {key.removesuffix("/_type"): run.series(key) for key in run.keys
              if key.endswith("/_type") and "table-file" in run.series(key)}
    assert set(tables) == {f"gradflow/{layer}/{name}" for layer in ("layer0", "layer1")
                           for name in ("curve_table", "heatmap_table", "summaries",
                                        "jacobian_curve_table", "gates_table",
                                        "jacobian_heatmap_table", "dynamics_summaries")}
    assert all(len(logged) == 1 for logged in tables.values()), tables
    staged = [p for p in (run_dir / "wandb" / "data" / "artifacts" / "staging").iterdir()]
    assert 0 < len(staged) <= 2 * len(tables) == 28, len(staged)
    # optimizer side: per-parameter norms, total before clipping, clipping fired every step
    assert "gradflow/param/model.rnn.weight_hh_l0" in run.keys
    assert run.series("gradflow/clip_fraction") == [1.0, 1.0]
    assert results["metrics"]["gradflow/clipped_steps"] == 2.0
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        assert "gradflow/layer1/log10_decay_per_step" in next(csv.reader(handle))
    assert saved["probe"] == "train" and list(saved["steps"]) == [0, 1]
    assert saved["cell"] == "gru" and saved["impl"] == "scratch"
    assert list(saved["clip_fraction"]) == [1.0, 1.0] and saved["gradient_clip_val"] == 1e-6
    assert "model.rnn.weight_hh_l1" in saved["param_names"]


def test_fused_run_measures_input_gradient_under_its_own_name(run_training):
    _, run_dir = run_training(["debug=fast", "model.impl=fused", "model.hidden_size=16",
                               "callbacks.gradflow.every_n_steps=1",
                               "callbacks.gradflow.probe=fixed",
                               "callbacks.gradflow.heatmap_range=[-2.5,-1]"])
    run = _read_run(run_dir)
    assert run.config["model"]["impl"] == "fused"
    assert len(run.series("gradflow_input/layer0/horizon")) == 3  # steps 0, 1 and the end
    assert "gradflow_input/layer0/curve_table/path" in run.keys
    assert not any(key.startswith("gradflow/layer") for key in run.keys)
    saved = _check_npz(run_dir, "dL/dx_t", ["layer0"], 3, 30)
    assert saved["prefix"] == "gradflow_input" and saved["probe"] == "fixed"
    assert list(saved["steps"]) == [0, 1, 2]
    # the heatmap, once at the end, with every record (the probe's at step 2 too)
    assert [len(_table(run, "gradflow_input/layer0/heatmap_table", i)["data"])
            for i in range(len(run.series("gradflow_input/layer0/heatmap_table/path")))] == \
        [3 * 30]
    # the configured colour range, and the cells outside it counted in the subtitle
    config, spec = _chart(run, "gradflow_input/layer0/heatmap")
    assert _colour_domain(spec) == (-2.5, -1.0)
    assert "∂L/∂x_t" in spec["spec"]["encoding"]["color"]["title"]
    logs = np.log10(saved["mean"][:, 0]).ravel()
    below, above = int((logs < -2.5).sum()), int((logs > -1).sum())
    assert below + above > 0
    assert f"{below} cells below it and {above} above, clamped" in \
        config["stringSettings"]["subtitle"]


def test_heatmap_colour_range_is_shared_by_different_cells(run_training):
    """GRU and LSTM runs: different gradient norms, one colour scale (the default range)."""
    charts, data = {}, {}
    for cell in ("gru", "lstm"):
        _, run_dir = run_training([f"model={cell}", "model.impl=scratch", "model.hidden_size=8",
                                   "debug=fast", "callbacks.gradflow.every_n_steps=1",
                                   "~logger.csv"], cell)
        run = _read_run(run_dir)
        config, spec = _chart(run, "gradflow/layer0/heatmap")
        assert config["panelDefId"] == HEATMAP_CHART and cell in spec["title"]["text"]
        assert spec["spec"]["encoding"]["x"]["title"] == "time step t"
        assert spec["spec"]["encoding"]["y"]["title"] == "training step"
        assert spec["spec"]["encoding"]["color"]["scale"]["clamp"] is True
        charts[cell] = _colour_domain(spec)
        data[cell] = [row[3] for row in _table(run, "gradflow/layer0/heatmap_table")["data"]]
    assert charts["gru"] == charts["lstm"] == DEFAULT_HEATMAP_RANGE
    assert (min(data["gru"]), max(data["gru"])) != (min(data["lstm"]), max(data["lstm"]))


def test_the_printed_plot_command_runs_and_writes_beside_the_runs(run_training, tmp_path):
    """The command a run's report prints works from a shell with no venv on PATH; several runs
    are plotted into the folder that holds them, with one colour range for every heatmap."""
    import shlex

    import matplotlib.image

    from rnnlab.commands.plot_gradflow import main
    from rnnlab.gradflow.plots import heatmaps_figure
    from rnnlab.run.console import report_line

    dirs = []
    for cell in ("rnn", "lstm"):
        results, run_dir = run_training([f"model={cell}", "model.hidden_size=8", "debug=fast",
                                         "callbacks.gradflow.every_n_steps=1", "~logger.wandb"],
                                        f"sweep/{cell}")
        dirs.append(run_dir)
    # the command's lines (a long one goes on after a backslash, as a shell reads it)
    printed = report_line(results, dirs[-1], columns=80).split("gradient flow: ", 1)[1]
    command = shlex.split(printed.replace("\\\n", " "))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin"  # no venv on PATH: the command must not need one
    # from where the run was started (tests/test_plot_command.py: from anywhere else too)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert matplotlib.image.imread(dirs[-1] / "gradflow_heatmap.png").shape[0] > 100

    assert main([str(d) for d in dirs]) == 0
    assert (tmp_path / "sweep" / "gradflow_curves.pdf").is_file()
    assert not list(Path.cwd().glob("gradflow_*"))  # nothing where the command was typed
    figure = heatmaps_figure([(d.name, load_gradflow(d)) for d in dirs])
    norms = {(image.norm.vmin, image.norm.vmax) for ax in figure.axes for image in ax.images}
    assert len(norms) == 1


def test_heatmap_table_is_thinned_to_its_budget():
    rng = np.random.default_rng(0)
    steps = np.arange(300) * 10
    mean = 10.0 ** rng.uniform(-30, 2, size=(300, 500))
    mean[5, :7] = 0.0  # underflow
    mean[7, 3] = np.inf  # overflow
    mean[-1, -20:] = np.nan  # padding
    rows, shape = heatmap_rows(steps, mean, max_rows=4096)
    assert len(rows) <= 4096 and shape["records"] == 300 and shape["steps"] == 500
    kept = sorted({row[0] for row in rows})
    assert len(kept) == shape["kept_records"] < 300 and kept[0] == 0 and kept[-1] == 2990
    bins = sorted({(row[1], row[2]) for row in rows if row[0] == 0})
    assert len(bins) == shape["bins"] < 500 and bins[0][0] == 1 and bins[-1][1] == 500
    assert all(a[1] + 1 == b[0] for a, b in pairwise(bins))  # contiguous, no gap
    for step, t, t_end, value, status in rows[:50]:
        cells = mean[step // 10, t - 1:t_end]
        assert status == "ok" and value == pytest.approx(np.log10(cells).mean(), abs=1e-4)
    # untouched when small; underflow, overflow and padding kept apart
    rows, shape = heatmap_rows(steps[:10], mean[:10, :40])
    assert len(rows) == 400 and shape["kept_records"] == 10 and shape["bins"] == 40
    status = {(row[0], row[1]): (row[3], row[4]) for row in rows}
    assert status[(50, 1)] == (None, "underflow") and status[(70, 4)] == (None, "overflow")
    rows, _ = heatmap_rows(steps[-2:], mean[-2:, -25:])  # the last record: 20 padded steps
    assert len(rows) == 25 + 5 and rows[-1][:3] == [2990, 5, 5]


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


def test_ddp_spawned_or_launched_reduces_writes_once_and_matches_one_process(
    tmp_path, run_training
):
    # Full-batch steps (one batch of 64 per epoch): two gloo ranks' averaged half-batch gradients
    # are the full batch's, so DDP must report what one process does (train/loss too: the mean
    # over ranks, not rank 0's shard).
    common = ["model.impl=scratch", "model.hidden_size=8", "debug=fast", "data.batch_size=64",
              "data.val_size=64", "data.test_size=64", "trainer.max_epochs=2",
              "callbacks.gradflow.every_n_steps=1"]
    result = cli(["trainer=ddp_cpu", *common, "experiment_name=gradflowddp"],
                 cwd=tmp_path, env={"RNNLAB_COMPILE": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    single, _ = run_training([*common, "logger=none"], "single")
    run_dirs = list((tmp_path / "logs" / "runs" / "gradflowddp").iterdir())
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    saved = _check_npz(run_dir, "dL/dh_t", ["layer0"], 2, 30)
    assert list(saved["steps"]) == [0, 1]
    run = _read_run(run_dir)
    assert len(run.series("gradflow/layer0/horizon")) == 2  # rank 0 only, once per record
    assert len(run.series("gradflow/layer0/curve_table/path")) == 1  # once, at the end
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"]["gradflow/layer0/log10_first_over_last"] == pytest.approx(
        saved["log10_first_over_last"][-1, 0])
    compared = [k for k in single["metrics"] if k.startswith(("train/", "val/", "test/"))]
    assert {"train/loss", "val/loss", "test/loss"} <= set(compared)
    for key in compared:
        assert results["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-5), key

    # The same with the ranks started by a launcher (torchrun here; srun on SLURM): plain ddp,
    # every rank runs the command, one run dir (named by the launch id), rank 0 writes and tests.
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_SERVICE")}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
         "rnnlab.train", "trainer=ddp_cpu", "trainer.strategy=ddp", *common,
         "experiment_name=torchrun"],
        cwd=tmp_path, env={**env, "RNNLAB_COMPILE": "0"}, capture_output=True, text=True,
        timeout=600, check=False)
    assert launched.returncode == 0, launched.stderr[-3000:]
    run_dirs = list((tmp_path / "logs" / "runs" / "torchrun").iterdir())
    assert len(run_dirs) == 1 and run_dirs[0].name.startswith("torchrun-"), run_dirs
    assert launched.stdout.count("rnnlab-train: completed") == 1  # rank 0 reports
    by_torchrun = json.loads((run_dirs[0] / "results.json").read_text())
    assert (run_dirs[0] / "gradflow.npz").exists()
    for key in compared:
        assert by_torchrun["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-5), key


@pytest.mark.parametrize(("override", "message"), [
    ("callbacks.gradflow.probe=val", "callbacks.gradflow.probe='val' is not one of train, fixed"),
    ("callbacks.gradflow.heatmap_range=[1,1]",
     "callbacks.gradflow.heatmap_range must be [lo, hi] in log10 units with lo < hi, got [1, 1]"),
    ("callbacks.gradflow.heatmap_range=[-5]", "callbacks.gradflow.heatmap_range must be [lo, hi]"),
])
def test_bad_gradflow_setting_is_one_clear_line(override, message, run_training, capsys):
    with pytest.raises(SystemExit) as stop:
        run_training(["debug=fast", "logger=none", override])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


DYNAMICS_ARRAYS = {"jacobian_steps", "jacobian_epochs", "jacobian_rows", "state_size",
                   "jacobian_norm_mean", "jacobian_norm_p10", "jacobian_norm_p90",
                   "log10_product_mean", "log10_product_p10", "log10_product_p90", "lyapunov",
                   "gate_names", "gate_mean", "gate_low", "gate_high", "tau_bins", "tau_hist",
                   "tau_median", "case_names", "case_shares"}


def test_step_jacobians_and_gates_reach_npz_results_and_wandb(run_training):
    """The dynamics record (dynamics.py): at the first step, every jacobian_every_n_steps and
    the end; its arrays in gradflow.npz, its scalars in results.json (the last record's) and the
    W&B history."""
    results, run_dir = run_training(["data=copy", "model=gru", "model.num_layers=2",
                                     "model.hidden_size=8", "debug=fast",
                                     "callbacks.gradflow.jacobian_every_n_steps=1",
                                     "callbacks.gradflow.jacobian_rows=3",
                                     "callbacks.gradflow.lyapunov_k=5"])
    assert results["status"] == "completed"
    saved = load_gradflow(run_dir)
    assert DYNAMICS_ARRAYS <= set(saved)
    assert list(saved["jacobian_steps"]) == [0, 1, 2]  # debug=fast: 2 steps, then the end
    assert saved["jacobian_rows"] == 3 and saved["state_size"] == 8
    R, L, T = saved["jacobian_norm_mean"].shape
    assert (R, L, T) == (3, 2, 30)
    assert saved["lyapunov"].shape == (3, 2, 5)
    assert np.all(np.diff(saved["lyapunov"], axis=-1) <= 0)  # largest first
    assert list(saved["gate_names"]) == ["r", "z"] and saved["gate_mean"].shape == (3, 2, 2, 30)
    assert np.all((saved["gate_mean"] > 0) & (saved["gate_mean"] < 1))
    assert np.all(saved["log10_product_mean"][:, :, -1] == 0)
    assert list(saved["case_names"]) == ["carry", "reset", "through_w", "mixed"]
    np.testing.assert_allclose(saved["case_shares"].sum(-1), 1.0)
    assert saved["tau_hist"].sum(-1).tolist() == [[3 * 30 * 8] * 2] * 3  # rows x t x units
    metrics = results["metrics"]
    for k, layer in enumerate(("layer0", "layer1")):
        assert metrics[f"gradflow/{layer}/lyapunov_max"] == pytest.approx(
            saved["lyapunov"][-1, k, 0])
        assert metrics[f"gradflow/{layer}/case_carry"] == pytest.approx(
            saved["case_shares"][-1, k, 0])
    run = _read_run(run_dir)
    assert len(run.series("gradflow/layer1/lyapunov_max")) == 3
    assert len(run.series("gradflow/layer0/tau_median")) == 3
    # at the end, once: the last record's ‖J_t‖ curves (the curves chart) and gate means, the
    # heatmap of every record; each table says its training step
    assert len(run.series("gradflow/layer1/jacobian_curve_table/path")) == 1
    curve = _table(run, "gradflow/layer1/jacobian_curve_table")
    assert {row[0] for row in curve["data"]} == {2}
    assert np.allclose([row[2] for row in curve["data"]], saved["jacobian_norm_mean"][-1, 1])
    assert _chart(run, "gradflow/layer1/jacobian_curve")[0]["panelDefId"] == CURVES_CHART
    assert len(run.series("gradflow/layer0/gates_table/path")) == 1
    gates = _table(run, "gradflow/layer0/gates_table")
    assert gates["columns"] == ["step", "t", "gate", "mean"]
    z = [row for row in gates["data"] if row[2] == "z"]  # gate_names: r, z
    assert [row[1] for row in z] == list(range(1, 31))
    assert np.allclose([row[3] for row in z], saved["gate_mean"][-1, 0, 1])
    assert {row[0] for row in gates["data"]} == {2}
    heat = _table(run, "gradflow/layer0/jacobian_heatmap_table")
    assert len(heat["data"]) == 3 * 30
    assert np.allclose([row[3] for row in heat["data"]],
                       np.log10(saved["jacobian_norm_mean"][:, 0]).ravel(), atol=1e-4)
    [path] = run.series("gradflow/layer0/dynamics_summaries/path")
    summary = json.loads((run.path.parent / "files" / path).read_text())
    assert [row[0] for row in summary["data"]] == [0, 1, 2]
    column = summary["columns"].index("lyapunov_max")
    assert [row[column] for row in summary["data"]] == pytest.approx(
        list(saved["lyapunov"][:, 0, 0]))


def test_lyapunov_command_remeasures_the_last_record_from_the_checkpoint(run_training, capsys):
    """rnnlab-lyapunov on last.ckpt with the fixed probe's rows gives the monitor's final
    record; its refusals are one line."""
    from rnnlab.commands.lyapunov import main

    results, run_dir = run_training(["data=adding", "data.seq_len=12", "model=lstm",
                                     "model.hidden_size=6", "debug=fast", "~logger.wandb",
                                     "callbacks.gradflow.probe=fixed",
                                     "callbacks.gradflow.jacobian_rows=4"])
    saved = load_gradflow(run_dir)
    assert main([str(run_dir), "--checkpoint", "last", "--rows", "4", "--k", "8"]) == 0
    written = json.loads((run_dir / "lyapunov.json").read_text())
    assert written["step"] == int(saved["jacobian_steps"][-1]) and written["state_size"] == 12
    np.testing.assert_allclose(written["layers"]["layer0"]["lyapunov"], saved["lyapunov"][-1, 0],
                               rtol=1e-6)
    assert written["layers"]["layer0"]["lyapunov_max"] == pytest.approx(
        results["metrics"]["gradflow/layer0/lyapunov_max"], rel=1e-6)
    capsys.readouterr()
    assert main([str(run_dir / "nothing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
