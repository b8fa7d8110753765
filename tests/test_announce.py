"""Every phase of a run that can take more than a second says so in one line before it starts
(issue 39): building the native loops (tests/test_cells_native.py, where a build happens anyway),
compiling a cell's per-step graphs, making or preparing the data, the test split and the sweep's
report (tests/test_multirun.py, through the CLI). Here: the lines themselves, not the times."""

from __future__ import annotations

import logging

import torch

from rnnlab.cells import announce, compile_cache
from rnnlab.data import synthetic


def test_a_cells_first_compile_in_a_process_is_announced_once(monkeypatch, capsys):
    monkeypatch.setattr(compile_cache, "_inductor_compile", lambda fn, args: fn)  # no inductor
    monkeypatch.setattr(compile_cache, "_ANNOUNCED", set())
    monkeypatch.setattr(announce, "_PRINTER", [])  # stderr (an in-process run sets its own)
    x = torch.randn(2, 3)
    fwd = compile_cache.StepFunction(lambda a: (a + 1,), "cellx.('fwd', False, 0)")
    bwd = compile_cache.StepFunction(lambda a: (a * 2,), "cellx.('bwd', False, True, 0, 0)")
    fwd.specialize([x], compile=False)  # not compiling: nothing to say
    assert capsys.readouterr().err == ""
    fwd.specialize([x], compile=True)
    bwd.specialize([x], compile=True)  # the same cell's other graph: said already
    fwd.specialize([x], compile=True)  # compiled already
    err = capsys.readouterr().err.splitlines()
    assert err == ["rnnlab: compiling the per-step graphs of cellx with TorchInductor (first use: "
                   "seconds; RNNLAB_COMPILE=0 runs them eager) ..."]
    said = []
    announce.set_printer(said.append)  # a run's printer (rnnlab-train: ..., tracking.say)
    try:
        compile_cache.StepFunction(lambda a: (a,), "celly.('fwd', True, 0)").specialize([x], True)
    finally:
        announce.set_printer(None)
    assert said == ["compiling the per-step graphs of celly with TorchInductor (first use: "
                    "seconds; RNNLAB_COMPILE=0 runs them eager) ..."]
    assert capsys.readouterr().err == ""


def test_making_a_large_synthetic_data_set_is_announced(monkeypatch, caplog):
    """From ANNOUNCE_STEPS time steps on (examples x data.seq_len); the quickstart's data (12,800
    sequences of 50 steps, a blink) is made without a word."""
    caplog.set_level(logging.INFO, logger="rnnlab.data")
    quick = synthetic.AddingDataModule(seq_len=50, train_size=8192, val_size=512, test_size=4096)
    assert 12_800 * 50 < synthetic.ANNOUNCE_STEPS
    monkeypatch.setattr(synthetic, "ANNOUNCE_STEPS", 12_800 * 50)
    quick.setup()
    assert [r.getMessage() for r in caplog.records] == [
        "making the adding data: 12,800 sequences, data.seq_len=50"]
    caplog.clear()
    quick.setup()  # made already
    monkeypatch.setattr(synthetic, "ANNOUNCE_STEPS", 12_800 * 50 + 1)
    synthetic.AddingDataModule(seq_len=50, train_size=8192, val_size=512,
                               test_size=4096).setup()
    assert caplog.records == []
