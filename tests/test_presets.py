"""Every experiment preset: its whole sweep grid composes and runs under debug=fast, its table has
one row per grid point (seeds pooled, nothing else), and every reference entry reaches it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import CONF, REPO, compose_config
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from rnnlab.config.naming import GROUP_KEYS
from rnnlab.config.references import parse_references
from rnnlab.results import aggregate, load_runs, render
from rnnlab.run.train import run
from rnnlab.studies.reproduce import sweep_grid

# The papers' presets and their CPU forms (experiment=cpu/<preset>).
PRESETS = sorted(p.relative_to(CONF / "experiment").with_suffix("").as_posix()
                 for p in (CONF / "experiment").rglob("*.yaml"))
# Fast and small, and the music presets on the 12 chorales the data tests cache too.
FAST = ["debug=fast", "logger=csv", "trainer.enable_progress_bar=false", "model.hidden_size=8"]
MUSIC = ["data.limit_pieces=12"]


def composed(preset: str):
    """The preset's config as Hydra composes it (its includes, e.g. a CPU form's paper preset)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=[f"experiment={preset}"],
                       return_hydra_config=True)


def swept_keys(preset: str) -> list[str]:
    """The settings the preset's sweep varies (more than one value)."""
    cfg = composed(preset)
    params = dict(cfg.hydra.sweeper.params or {})
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return [o.get_key_element() for o in parsed if o.is_sweep_override()]


def test_every_preset_is_listed_in_the_readme():
    readme = (REPO / "README.md").read_text()
    assert all(f"`{preset}`" in readme for preset in PRESETS)


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_sweep_runs_and_its_table_is_right(preset, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA", str(data_dir))
    grid, swept = sweep_grid(preset, []), swept_keys(preset)
    assert grid, f"{preset} sweeps nothing"
    cfg = composed(preset)  # what it includes counts too: a CPU form inherits its paper's budget
    extra = FAST + (MUSIC if cfg.data.name == "music" else [])
    if cfg.model.get("param_budget") is not None:  # hidden_size=8 instead (both are refused)
        extra.append("model.param_budget=null")
    for job, point in enumerate(grid):
        for seed in ((0, 1) if job == 0 else (0,)):  # seeds pool: shown on the first point
            run_dir = tmp_path / f"{job}-{seed}"
            run_dir.mkdir()
            cfg = compose_config([f"experiment={preset}", *point, f"seed={seed}", *extra],
                                 run_dir)
            results = run(cfg)
            assert results["status"] in ("completed", "diverged"), results.get("error")
    runs = load_runs([tmp_path])
    table = aggregate(runs)
    # One row per grid point, each with both seeds; the rows are exactly the swept settings.
    assert len(table) == len(grid)
    assert (table["n"] + table["diverged"]).tolist() == [2] + [1] * (len(grid) - 1)
    assert sorted(table.attrs["keys"]) == sorted(GROUP_KEYS.get(k, k) for k in swept)
    text = render(table, "md")
    refs = parse_references(runs["reference"].iloc[0])
    assert refs, f"{preset} has no reference"
    for ref in refs:
        assert ref.source in text
        if ref.value is not None and any(ref.matches(s) for s in table.attrs["settings"]):
            assert f"{ref.metric} published" in text


def test_a_real_multirun_over_a_non_cell_key(tmp_path):
    """forget_bias 0,2 x seed 1,2 through the CLI: 2 rows of n = 2 everywhere it is reported."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    result = subprocess.run(
        [sys.executable, "-m", "rnnlab.train", "-m", "experiment=forget_bias_jozefowicz2015",
         "model.forget_bias=0,2", "seed=1,2", "debug=fast", "model.hidden_size=8",
         "data.seq_len=20", "experiment_name=fbcheck"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    # Console noise that is not ours is filtered at start-up (rnnlab.run.console), in every job.
    console = result.stdout + result.stderr
    assert "LeafSpec" not in console and "Tip:" not in console and "litlogger" not in console
    assert "anonymous setting" not in console  # wandb's, for the anonymous=None Lightning passes
    assert "ran eager" not in console  # every job compiled (when compiling) or ran as asked
    sweep_dir = next((tmp_path / "logs" / "multiruns" / "fbcheck").iterdir())
    summary = (sweep_dir / "summary.md").read_text().splitlines()
    assert summary[0].split("|")[1].strip() == "forget_bias"
    rows = [line.split("|") for line in summary[2:] if line.startswith("|")]
    assert [(r[1].strip(), r[3].strip()) for r in rows] == [("0", "2"), ("2", "2")]
    assert "rows: model.forget_bias" in result.stdout
    # The sweep's report folder: the table and its figures, written at the end of the sweep.
    # (the paths relative to the cwd, which holds them: issue 39, output that fits a terminal)
    assert f"report:  {(sweep_dir / 'report' / 'report.md').relative_to(tmp_path)}" in result.stdout
    assert {"table.md", "training_curves.png", "gradflow.png"} <= {
        p.name for p in (sweep_dir / "report").iterdir()}
    assert result.stdout.count("rnnlab-train: completed after 2 steps") == 4
    table = subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"),
                            str(sweep_dir), "--format", "csv"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert table[0].startswith("model.forget_bias,n,diverged,failed,")
    assert [line.split(",")[:2] for line in table[1:]] == [["0.0", "2"], ["2.0", "2"]]
    # W&B: every job's name says its swept setting and seed.
    from wandb_offline import read_finished_run

    wandb_runs = [read_finished_run(d.parent) for d in sweep_dir.rglob("results.json")]
    assert sorted(r.name for r in wandb_runs) == [
        f"lstm-adding-forget_bias={b}-hidden=8-T=20-s{s}" for b in (0, 2) for s in (1, 2)]
    # job_type is the table row, so W&B groups the seeds of a row together.
    assert sorted(r.job_type for r in wandb_runs) == [
        f"lstm-adding-forget_bias={b}-hidden=8-T=20" for b in (0, 0, 2, 2)]
    assert all({"forget_bias=0", "forget_bias=2"} & set(r.tags) for r in wandb_runs)
    assert sorted(r.config["row"] for r in wandb_runs) == sorted(r.job_type for r in wandb_runs)
