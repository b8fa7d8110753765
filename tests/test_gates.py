"""Gate statistics (rnnlab.gradflow.gates) against a hand count, and each cell's gates
(Recurrence.gates) against its equations at the first step."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlab.cells import GRU, LSTM, MinGRU, MinLSTM
from rnnlab.gradflow.gates import TAU_BINS, case_shares, gate_stats, timescales
from rnnlab.gradflow.jacobian import step_jacobians

F64 = torch.float64


def test_gate_stats_and_cases_by_hand():
    # T = 2, B = 2, H = 2; sample 1 is one step long
    z = torch.tensor([[[0.95, 0.05], [0.5, 0.99]],
                      [[0.02, 0.92], [0.3, 0.3]]], dtype=F64)
    r = torch.tensor([[[0.5, 0.01], [0.5, 0.5]],
                      [[0.95, 0.5], [0.05, 0.05]]], dtype=F64)
    valid = torch.tensor([[True, True], [True, False]])
    gates = {"r": r, "z": z, "keep": z, "reset": r}
    stats = gate_stats(gates, valid)
    assert set(stats) == {"r", "z"}
    # t = 1: both samples valid; t = 2: only sample 0
    torch.testing.assert_close(stats["z"][:, 0], torch.tensor([(0.95 + 0.05 + 0.5 + 0.99) / 4,
                                                               1 / 4, 2 / 4], dtype=F64))
    torch.testing.assert_close(stats["z"][:, 1], torch.tensor([(0.02 + 0.92) / 2, 1 / 2, 1 / 2],
                                                              dtype=F64))
    torch.testing.assert_close(stats["r"][:, 1], torch.tensor([(0.95 + 0.5) / 2, 0, 1 / 2],
                                                              dtype=F64))
    # the 6 valid (t, b, unit): z = .95 .05 .5 .99 .02 .92, r = .5 .01 .5 .5 .95 .5
    # carry: .95 .99 .92; reset: z .05 with r .01; through W: z .02 with r .95; mixed: z .5
    assert case_shares(gates, valid) == {"carry": 3 / 6, "reset": 1 / 6, "through_w": 1 / 6,
                                         "mixed": 1 / 6}
    no_reset = {"z": z, "keep": z}
    assert case_shares(no_reset, valid) == {"carry": 3 / 6, "forget": 2 / 6, "mixed": 1 / 6}
    counts, median = timescales(z, valid)
    # τ = 1/(1 − z): 20, 1.05, 2, 100, 1.02, 12.5 -> bins [1,2): 2, [2,4): 1, [8,16): 1,
    # [16,32): 1, [64,128): 1
    expect = torch.zeros(len(TAU_BINS) - 1, dtype=torch.long)
    expect[[0, 1, 3, 4, 6]] = torch.tensor([2, 1, 1, 1, 1])
    assert torch.equal(counts, expect)
    assert median == pytest.approx(2.0)  # torch's median of an even count: the lower middle
    assert timescales(torch.ones(1, 1, 1, dtype=F64))[0][-1] == 1  # keep = 1: the last bin
    assert math.isnan(float(gate_stats({"z": z}, torch.zeros(2, 2, dtype=torch.bool))["z"][0, 0]))


def _first_step_gates(cls, kw):
    torch.manual_seed(0)
    stack = cls(3, 4, compile=False, dtype=F64, **kw).eval()
    x = torch.randn(1, 2, 3, dtype=F64)
    (layer,) = step_jacobians(stack, x)
    return stack, x[0], {k: v[0] for k, v in layer.gates.items()}


def _pre(stack, x):
    """W_ih x + b_ih + b_hh at h_0 = 0, split into gate blocks."""
    return x @ stack.weight_ih_l0.t() + stack.bias_ih_l0 + stack.bias_hh_l0


def test_gru_gates_are_its_equations():
    stack, x, g = _first_step_gates(GRU, {})
    r, z, _ = _pre(stack, x).chunk(3, 1)
    torch.testing.assert_close(g["r"], torch.sigmoid(r))
    torch.testing.assert_close(g["z"], torch.sigmoid(z))
    assert torch.equal(g["keep"], g["z"]) and torch.equal(g["reset"], g["r"])
    stack, x, g = _first_step_gates(GRU, {"variant": "mgu"})
    f, _ = _pre(stack, x).chunk(2, 1)
    torch.testing.assert_close(g["f"], torch.sigmoid(f))
    torch.testing.assert_close(g["keep"], 1 - torch.sigmoid(f))
    stack, x, g = _first_step_gates(GRU, {"variant": "no_reset"})
    assert set(g) == {"z", "keep", "reset"} and torch.all(g["reset"] == 1)


@pytest.mark.parametrize("variant", ["torch", "cifg", "nfg", "nig"])
def test_lstm_gates_are_its_equations(variant):
    stack, x, g = _first_step_gates(LSTM, {"variant": variant})
    names = {"torch": "ifgo", "cifg": "igo", "nfg": "igo", "nig": "fgo"}[variant]
    blocks = dict(zip(names, _pre(stack, x).chunk(len(names), 1)))
    for name in ("i", "f", "o"):
        if name in blocks and (variant == "torch" or name != "o"):  # peepholes: o reads c_t
            torch.testing.assert_close(g[name], torch.sigmoid(blocks[name]))
    if variant == "cifg":
        torch.testing.assert_close(g["f"], 1 - g["i"])
    if variant == "nfg":
        assert "f" not in g and torch.all(g["keep"] == 1)
    else:
        assert torch.equal(g["keep"], g["f"])


def test_min_cells_gates_are_their_coefficients():
    stack, x, g = _first_step_gates(MinGRU, {})
    k, _ = (x @ stack.weight_ih_l0.t() + stack.bias_ih_l0).chunk(2, 1)
    torch.testing.assert_close(g["z"], torch.sigmoid(k))
    torch.testing.assert_close(g["keep"], 1 - torch.sigmoid(k))
    stack, x, g = _first_step_gates(MinLSTM, {})
    kf, ki, _ = (x @ stack.weight_ih_l0.t() + stack.bias_ih_l0).chunk(3, 1)
    f, i = torch.sigmoid(kf), torch.sigmoid(ki)
    torch.testing.assert_close(g["f"], f / (f + i))
    torch.testing.assert_close(g["i"], i / (f + i))
