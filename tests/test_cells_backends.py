"""The recurrence's backends (rnnlab.cells.backends): one table, one rule, the record.

The numbers each backend computes are held to the per-step path elsewhere
(tests/test_cells_native.py, tests/test_cells_loop_graph.py, tests/test_cells_parity.py); here:
which backend a call gets, that the choice holds for every layer and for the backward, and what
results.json is told.
"""

from __future__ import annotations

import pytest
import torch

from rnnlab.cells import GRU, LSTM, RNN, IndRNN, backends
from rnnlab.cells.backends import native


def test_one_table_one_module_per_backend():
    assert set(backends.ORDER) == set(backends.BACKENDS) and backends.ORDER[-1] == "step"
    modules = {type(b).__module__ for b in backends.BACKENDS.values()}
    assert modules == {f"rnnlab.cells.backends.{m}" for m in ("cuda_graph", "native", "step")}
    for name, backend in backends.BACKENDS.items():
        assert isinstance(backend, backends.Backend) and backend.name == name


def _choose(module, x, compile):
    return backends.choose(module.recurrence(), compile, x, tuple(module.parameters()))


def test_the_rule(monkeypatch):
    """Where the native loops apply and are on, they run; else step by step. The CUDA graphs
    only on CUDA. An empty sequence runs step by step."""
    lib = native.library()  # noqa: F841  (built or not: the rule says which)
    monkeypatch.setenv("RNNLAB_NATIVE", "1")
    x = torch.randn(3, 2, 2)
    lstm, gru, rnn = LSTM(2, 4), GRU(2, 4), RNN(2, 4)
    want = "native" if native.library() is not None else "step"
    assert _choose(lstm, x, True)[0].name == want
    assert _choose(rnn, x, False)[0].name == _choose(IndRNN(2, 4), x, True)[0].name == want
    assert _choose(gru, x.double(), True)[0].name == "step"  # float64 input, float32 weights
    assert _choose(GRU(2, 4, reset="before"), x, True)[0].name == "step"  # no native kernel
    assert _choose(lstm, x[:0], True) == (backends.BACKENDS["step"], ())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _choose(lstm, x, True)[0].name == "step"
    monkeypatch.setenv("RNNLAB_NATIVE", "0")
    assert _choose(lstm, x, True)[0].name == "step"
    monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "1")
    assert _choose(lstm, x, True)[0].name == "step", "the real capture is CUDA only"


def test_every_layer_counts_once_per_call(monkeypatch):
    monkeypatch.setenv("RNNLAB_NATIVE", "0")
    mark = backends.mark()
    m = GRU(2, 4, num_layers=3, compile=False)
    m(torch.randn(3, 2, 2))[0].sum().backward()  # the backward runs where the forward ran
    m(torch.randn(5, 2, 2))
    assert backends.used(mark) == {"step/eager": 6, "fallbacks": {}}
    assert backends.used(backends.mark()) == {"fallbacks": {}}


def test_a_backend_that_cannot_run_is_a_recorded_fallback(monkeypatch):
    """The native loops apply (an LSTM in float32) but are unavailable: the call runs step by
    step and the record says why, once per call's layers, only since the mark."""
    from rnnlab.cells import compile_cache

    monkeypatch.setattr(compile_cache, "_inductor_compile", lambda fn, args: fn)  # no inductor
    monkeypatch.setenv("RNNLAB_NATIVE", "1")
    monkeypatch.setattr(native.Native, "unavailable", lambda self: "the build failed (because)")
    mark = backends.mark()
    LSTM(2, 4, num_layers=2, compile=True)(torch.randn(3, 2, 2))
    assert backends.used(mark) == {"step/compiled": 2,
                                   "fallbacks": {"native": "the build failed (because)"}}
    mark = backends.mark()
    GRU(2, 4, reset="before", compile=False)(torch.randn(3, 2, 2))  # no native kernel: no
    assert backends.used(mark) == {"step/eager": 1, "fallbacks": {}}  # fallback


def test_results_json_carries_the_backends(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from rnnlab.run.record import RunRecord

    monkeypatch.setenv("RNNLAB_NATIVE", "0")
    RNN(2, 4, compile=False)(torch.randn(3, 2, 2))  # before the run: not its own
    record = RunRecord(OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "seed": 0}))
    RNN(2, 4, num_layers=2, compile=False)(torch.randn(3, 2, 2))
    assert record._common({})["backends"] == {"step/eager": 2, "fallbacks": {}}


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_no_padding_where_the_backend_takes_any_batch(cls, monkeypatch):
    """The native loops take every batch as it comes; the compiled steps get zero rows padded
    in up to the largest batch seen (base.RecurrentBase._batch_padding)."""
    m = cls(2, 4, compile=True)
    m._largest_batch = 8
    assert m._batch_padding(5, True, backends.BACKENDS["native"]) == 0
    assert m._batch_padding(5, True, backends.BACKENDS["step"]) == 3
