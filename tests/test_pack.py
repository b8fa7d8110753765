"""Packs (rnnlab.run.pack, hydra/launcher=pack): a member of a pack is its solo run, bit for bit.

Every cell family in one pack, with learning rates and clipping that differ, one member that
diverges, one that stops once solved and one with dropout (its own RNG stream), each against the
same configuration trained alone: results.json, metrics.csv, gradflow.npz and the checkpoints'
contents. Then the launcher's grouping and device placement, and a packed sweep against the same
sweep run solo (summary table, W&B offline runs).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import compose_config

import rnnlab.config.schemas  # noqa: F401  (registers the config schemas compose_config needs)
from rnnlab.config.cellspecs import SPECS
from rnnlab.run import pack_plan

TINY = ["data=adding", "data.seq_len=12", "data.train_size=256", "data.val_size=64",
        "data.test_size=64", "data.batch_size=64", "model.hidden_size=8", "optimizer=adam",
        "logger=csv", "trainer.max_epochs=3", "trainer.enable_progress_bar=false",
        "callbacks.gradflow.every_n_steps=4"]


def _members() -> list[list[str]]:
    """One member per cell family of the registry, learning rates and clipping differing; the
    GRU stops early, the LSTM draws dropout masks from its RNG stream; and a tanh RNN that
    diverges at its first step."""
    members = [[f"model={cell}", f"seed={i}", f"optimizer.lr={[1e-2, 3e-3][i % 2]}"]
               for i, cell in enumerate(SPECS)]
    for member in members:
        if member[0] == "model=gru":  # no improvement of 10 in a validation: stops after two
            member += ["callbacks.early_stopping.patience=1",
                       "callbacks.early_stopping.min_delta=10", "trainer.gradient_clip_val=0.5"]
        if member[0] == "model=lstm":
            member += ["model.num_layers=2", "model.dropout=0.3"]
    return [*members, ["model=rnn", "seed=7", "optimizer.lr=80", "trainer.gradient_clip_val=null"]]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _state_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_state_equal(x, y) for x, y in zip(a, b))
    return _same(a, b)


def _checkpoint(path):
    state = torch.load(path, weights_only=False, map_location="cpu")
    for callback in state.get("callbacks", {}).values():  # wall-clock fields
        if isinstance(callback, dict):
            callback.pop("_last", None)
    return state


@pytest.mark.slow
def test_a_member_of_a_pack_is_its_solo_run_bit_for_bit(tmp_path):
    from rnnlab.run.pack_run import run_pack
    from rnnlab.run.train import run

    members = _members()
    solo = [run(compose_config([*TINY, *m], tmp_path / f"solo{i}"))
            for i, m in enumerate(members)]
    packed = run_pack([compose_config([*TINY, *m], tmp_path / f"pack{i}")
                       for i, m in enumerate(members)])
    statuses = [r["status"] for r in packed]
    assert statuses.count("diverged") == 1 and statuses.count("completed") == len(members) - 1
    steps = {m[0]: r["steps"] for m, r in zip(members, packed)}
    assert steps["model=gru"] < steps["model=lstm"]  # stopped early; the pack went on
    for i, (a, b) in enumerate(zip(solo, packed)):
        where = f"member {i} {members[i]}"
        for key in ("status", "steps", "error", "solved", "num_params", "seed"):
            assert _same(a.get(key), b.get(key)), (where, key, a.get(key), b.get(key))
        # the loop it shared (its wall_time_s is the pack's): one id for the trained members
        assert "pack" not in a and b["pack"]["members"] == len(members)
        assert b["pack"]["id"] == packed[0]["pack"]["id"]
        assert a["metrics"].keys() == b["metrics"].keys(), where
        for name, value in a["metrics"].items():
            assert _same(value, b["metrics"][name]), (where, name, value, b["metrics"][name])
        one, other = tmp_path / f"solo{i}", tmp_path / f"pack{i}"
        assert (one / "csv" / "metrics.csv").read_bytes() == (
            other / "csv" / "metrics.csv").read_bytes(), where
        if (one / "gradflow.npz").exists():
            with np.load(one / "gradflow.npz") as x, np.load(other / "gradflow.npz") as y:
                assert sorted(x.files) == sorted(y.files), where
                for name in x.files:
                    assert _state_equal(x[name], y[name]), (where, name)
        names = sorted(p.name for p in (one / "checkpoints").glob("*.ckpt")) if (
            one / "checkpoints").exists() else []
        assert names == (sorted(p.name for p in (other / "checkpoints").glob("*.ckpt"))
                         if (other / "checkpoints").exists() else []), where
        for name in names:  # what `resume=` reads: weights, optimizer, loops, callbacks, RNG
            x = _checkpoint(one / "checkpoints" / name)
            y = _checkpoint(other / "checkpoints" / name)
            for state in (x, y):  # the attempt's wall time so far: a clock, not a result
                state.get("rnnlab.RunState", {}).pop("attempts_s", None)
            for key in ("state_dict", "optimizer_states", "loops", "epoch", "global_step",
                        "rnnlab.RunState"):
                assert _state_equal(x.get(key), y.get(key)), (where, name, key)
            assert x["callbacks"].keys() == y["callbacks"].keys(), (where, name)


def test_jobs_pack_by_everything_but_what_each_member_computes_alone(tmp_path):
    def key(*overrides, run_dir="a"):
        cfg = compose_config([*TINY, *overrides], tmp_path / run_dir)
        from omegaconf import OmegaConf

        return pack_plan.pack_key(OmegaConf.to_container(cfg, resolve=True))

    base = key("seed=0")
    assert key("seed=1", "optimizer.lr=0.5", "model=lstm", "trainer.gradient_clip_val=2",
               "callbacks.early_stopping.patience=2", run_dir="b") == base
    assert key("data.train_size=512") != base  # another epoch length
    assert key("trainer.max_epochs=4") != base
    assert key("data=copy") != base
    assert key("test=false") != base

    assert pack_plan.plan(["k"] * 8, size=8, parallel=2) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert pack_plan.plan(["k"] * 8, size=8, parallel=1) == [list(range(8))]
    assert pack_plan.plan(["k"] * 20, size=8, parallel=2) == [  # two rounds of two packs
        list(range(0, 5)), list(range(5, 10)), list(range(10, 15)), list(range(15, 20))]
    assert pack_plan.plan(["k"] * 20, size=8, parallel=1) == [
        list(range(0, 7)), list(range(7, 14)), list(range(14, 20))]
    assert pack_plan.plan(["a", None, "b", "a", "b"], size=8, parallel=1) == [
        [0, 3], [1], [2, 4]]
    with pytest.raises(ValueError, match="hydra.launcher.size"):
        pack_plan.plan(["k"], size=0, parallel=1)


def test_a_job_that_cannot_join_a_pack_says_why(tmp_path):
    cfg = {"trainer": {"devices": 1}, "scheduler": None}
    assert pack_plan.solo_reason(cfg, tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert "resumes" in pack_plan.solo_reason(cfg, tmp_path)
    (tmp_path / "results.json").write_text("{}")
    assert "result" in pack_plan.solo_reason(cfg, tmp_path)
    fresh = tmp_path / "fresh"
    assert "scheduler" in pack_plan.solo_reason({"scheduler": {"_target_": "x"}}, fresh)
    assert "devices" in pack_plan.solo_reason({"trainer": {"devices": 2}}, fresh)
    assert "devices" in pack_plan.solo_reason({"trainer": {"strategy": "ddp"}}, fresh)


def test_packs_go_one_per_gpu_or_one_per_core():
    at_once, where = pack_plan.placement(6, "gpu", gpus=4, cpus=16)
    assert at_once == 4 and [w["device"] for w in where] == [0, 1, 2, 3, 0, 1]
    at_once, where = pack_plan.placement(3, "gpu", gpus=4, cpus=16)
    assert at_once == 3 and [w["device"] for w in where] == [0, 1, 2]
    at_once, where = pack_plan.placement(5, "cpu", gpus=4, cpus=2)
    assert at_once == 2 and all(w == {"threads": 1} for w in where)
    assert pack_plan.placement(5, "cpu", gpus=0, cpus=8, parallel=3)[0] == 3
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pack_plan.placement(2, "gpu", gpus=0, cpus=2)


def _summary_table(sweep_dir) -> str:
    text = (sweep_dir / "summary.md").read_text()
    # wall times and the sweep's own path differ between two sweeps
    text = re.sub(r"wall time[^\n|]*", "", text)
    return text.replace(str(sweep_dir), "<sweep>")


@pytest.mark.slow
def test_a_packed_sweep_reads_back_as_the_same_sweep_run_solo(tmp_path):
    from conftest import cli
    from wandb_offline import read_finished_run

    # W&B offline and CSV (the default loggers), four jobs: one pack against four solo jobs
    common = ["-m", *[o for o in TINY if not o.startswith("logger=")], "model=gru,lstm",
              "seed=0,1", "trainer.max_epochs=1"]
    common.append("hydra.callbacks.sweep_summary.figures=false")
    solo = cli([*common, f"hydra.sweep.dir={tmp_path / 'solo'}"], cwd=tmp_path)
    packed = cli([*common, f"hydra.sweep.dir={tmp_path / 'pack'}", "hydra/launcher=pack",
                  "hydra.launcher.parallel=1"], cwd=tmp_path)
    assert solo.returncode == 0, solo.stderr[-2000:]
    assert packed.returncode == 0, packed.stderr[-2000:]
    assert "a pack of 4 runs in one loop" in packed.stderr + packed.stdout
    assert _summary_table(tmp_path / "solo") == _summary_table(tmp_path / "pack")
    for job in range(4):
        one, other = tmp_path / "solo" / str(job), tmp_path / "pack" / str(job)
        a = json.loads((one / "results.json").read_text())
        b = json.loads((other / "results.json").read_text())
        assert a["metrics"] == b["metrics"] and a["status"] == b["status"] == "completed"
        x, y = read_finished_run(one), read_finished_run(other)
        assert (x.name, x.group, x.job_type, sorted(x.tags)) == (
            y.name, y.group, y.job_type, sorted(y.tags))

        def rows(run):
            return [{k: v for k, v in row.items() if not k.startswith("_")
                     and "artifact" not in str(v)} for row in run.history]
        assert rows(x) == rows(y), job


@pytest.mark.slow
def test_a_killed_pack_resumes_every_member_that_had_not_finished(tmp_path):
    """A real SIGKILL of a packed sweep once both members have a last.ckpt; the same command
    again resumes each member from its own checkpoint (alone) and ends where the member's solo
    run ends: results.json metrics and metrics.csv bit for bit."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from rnnlab.run.train import run

    sweep = tmp_path / "pack"
    argv = [sys.executable, "-m", "rnnlab.train", "-m", *TINY, "model=gru,lstm",
            f"hydra.sweep.dir={sweep}", "hydra/launcher=pack", "hydra.launcher.parallel=1",
            "hydra.callbacks.sweep_summary.figures=false"]
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR",
                                                           "WANDB_SERVICE")}
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    checkpoints = [sweep / str(job) / "checkpoints" / "last.ckpt" for job in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(c.exists() for c in checkpoints) and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoints"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    out = process.communicate()[0]
    assert process.returncode == -9, out[-2000:]
    assert not any((sweep / str(job) / "results.json").exists() for job in (0, 1)), out[-2000:]

    again = subprocess.run(argv, cwd=tmp_path, env=env, text=True, capture_output=True,
                           timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("runs alone: it resumes from its checkpoint") == 2, again.stdout
    for job, cell in enumerate(("gru", "lstm")):
        alone = run(compose_config([*TINY, f"model={cell}"],
                                   tmp_path / f"solo{job}"))
        resumed = json.loads((sweep / str(job) / "results.json").read_text())
        assert resumed["status"] == alone["status"] == "completed"
        assert resumed["metrics"] == alone["metrics"], job
        assert (sweep / str(job) / "csv" / "metrics.csv").read_bytes() == (
            tmp_path / f"solo{job}" / "csv" / "metrics.csv").read_bytes(), job


def test_the_batched_member_step_trains_as_the_per_member_path_within_float32_rounding(
        tmp_path, monkeypatch):
    """``batched``: the members' forward as one computation over the member dimension
    (rnnlab.cells.members; for GPUs) on the steps where they stack -- not on the steps whose
    gradient flow is recorded. Not bitwise (the batched products add in another order: 1e-6
    relative a step, tests/test_cells_members.py); after 12 Adam steps the metrics agree to
    1e-3 relative, and a wrong gate or member would be off by O(1)."""
    from rnnlab.cells import members as stacking
    from rnnlab.run.pack_run import run_pack

    calls = []
    real = stacking.stacked_model_forward
    monkeypatch.setattr(stacking, "stacked_model_forward",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    members = [["model=gru", "seed=0"], ["model=gru", "seed=1", "optimizer.lr=0.003"],
               ["model=gru", "seed=2", "trainer.gradient_clip_val=0.5"]]

    def configs(name):
        return [compose_config([*TINY, *m], tmp_path / f"{name}{i}") for i, m in enumerate(members)]

    per_member = run_pack(configs("one"), batched=False)
    assert not calls
    batched = run_pack(configs("stacked"), batched=True)
    assert 0 < len(calls) < 12  # 12 steps, those with a gradient-flow record per member
    for a, b in zip(per_member, batched):
        assert a["status"] == b["status"] == "completed" and a["steps"] == b["steps"]
        for name in ("val/loss", "test/loss", "train/loss"):
            assert b["metrics"][name] == pytest.approx(a["metrics"][name], rel=1e-3), name


def test_a_member_refused_at_build_is_recorded_failed_and_its_pack_mates_train(tmp_path):
    from rnnlab.run.pack_run import run_pack

    results = run_pack([compose_config([*TINY, "trainer.max_epochs=1"], tmp_path / "ok"),
                        compose_config([*TINY, "trainer.max_epochs=1", "model.param_budget=3"],
                                       tmp_path / "refused")])
    assert results[0]["status"] == "completed"
    assert results[1]["status"] == "failed" and "ConfigError" in results[1]["error"]
    assert json.loads((tmp_path / "refused" / "results.json").read_text())["status"] == "failed"
