"""A damaged file stops nothing: a truncated, random or empty last.ckpt is named as corrupt in one
line and the run resumes from previous.ckpt (the one before it, kept), or starts over on request
(``restart=true``); a damaged results.json is skipped by the tables with a warning naming it, and
counted. In-process, on small files written here (no training run)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from rnnlab.config.errors import ResumeError
from rnnlab.config.untrusted import CorruptCheckpoint, load_checkpoint
from rnnlab.run import resume
from rnnlab.run.rundir import RunDir


def _state(step: int) -> dict:
    return {"global_step": step, "epoch": 0, "state_dict": {"w": torch.full((2,), float(step))}}


DAMAGE = {"truncated": lambda data: data[: len(data) // 2], "random": lambda data: os.urandom(4096),
          "empty": lambda data: b""}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_last_ckpt_resumes_from_the_one_before_it(tmp_path, capfd, damage):
    last = tmp_path / "run" / RunDir.LAST
    last.parent.mkdir(parents=True)
    torch.save(_state(3), last.with_name("previous.ckpt"))
    torch.save(_state(5), last)
    last.write_bytes(DAMAGE[damage](last.read_bytes()))

    state = resume.read_checkpoints(last)
    assert state["global_step"] == 3
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{last} is corrupt (" in lines[0]
    assert lines[0].endswith("resuming from checkpoints/previous.ckpt (step 3), the checkpoint "
                             "before it")
    assert load_checkpoint(last)["global_step"] == 3  # the run goes on from a whole last.ckpt


def test_without_a_good_previous_one_it_is_refused_in_one_line_and_starts_over_on_request(
        tmp_path, capfd):
    from rnnlab.commands.train import start_over_unreadable

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    last = run / RunDir.LAST
    last.parent.mkdir()
    last.write_bytes(b"")
    with pytest.raises(CorruptCheckpoint) as error:
        resume.read_checkpoints(last)
    message = str(error.value)
    assert "\n" not in message and "is corrupt (empty)" in message
    assert f"rnnlab-train resume={run} restart=true starts the run over" in message

    best = last.with_name("best.ckpt")
    torch.save(_state(1), best)
    start_over_unreadable(run)  # the unreadable last.ckpt goes, so the run starts from step 0
    assert not last.exists() and best.exists()
    assert f"restart=true: {last} cannot be read: {run} starts over" in capfd.readouterr().err

    torch.save(_state(4), last)  # a readable one is never discarded
    with pytest.raises(ResumeError, match="has a readable checkpoint"):
        start_over_unreadable(run)
    assert load_checkpoint(last)["global_step"] == 4


def test_replacing_last_ckpt_keeps_the_one_before_if_it_was_whole(tmp_path):
    io = resume.AtomicCheckpointIO()
    last = tmp_path / RunDir.LAST
    previous = last.with_name("previous.ckpt")
    io.save_checkpoint(_state(1), last)
    assert not previous.exists()
    io.save_checkpoint(_state(2), last)
    assert load_checkpoint(previous)["global_step"] == 1
    assert load_checkpoint(last)["global_step"] == 2
    last.write_bytes(last.read_bytes()[:100])  # damaged after it was written
    io.save_checkpoint(_state(3), last)
    assert load_checkpoint(previous)["global_step"] == 1  # not replaced by the damaged one
    assert load_checkpoint(last)["global_step"] == 3


def test_a_damaged_results_json_is_skipped_named_and_counted(tmp_path, capsys):
    from rnnlab.commands.aggregate import main as aggregate_main
    from rnnlab.results.runs import load_runs

    for n, seed in enumerate((0, 1)):
        run = tmp_path / "sweep" / str(n)
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({
            "status": "completed", "seed": seed, "steps": 10, "metrics": {"test/loss": 0.5 + n},
            "config": {"model": {"cell": "gru"}, "seed": seed}}))
    bad = tmp_path / "sweep" / "2" / "results.json"
    bad.parent.mkdir()
    bad.write_text('{"status": "compl')
    runs = load_runs([tmp_path / "sweep"])
    assert len(runs) == 2 and runs.attrs["skipped"] == [str(bad.resolve())]
    assert f"warning: skipped {bad.resolve()}: not a readable results.json" in \
        capsys.readouterr().err

    assert aggregate_main([str(tmp_path / "sweep")]) == 0
    err = capsys.readouterr().err
    assert "rnnlab-aggregate: warning: 1 unreadable results.json skipped" in err
