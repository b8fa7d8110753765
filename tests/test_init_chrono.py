"""model.init=chrono (Tallec & Ollivier 2018): the effective bias (bias_ih + bias_hh, what torch
adds) of the keep gate is log U(1, T_max - 1) per unit, the write gate's its negative, for every
gated cell and variant that has such a gate; the rest are refused in one line."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_config
from scipy import stats
from torch import nn

from rnnlab.cells import GRU, LSTM, MinGRU, MinLSTM, initialize_recurrent
from rnnlab.cells.init import chrono_gates
from rnnlab.config.errors import ConfigError
from rnnlab.data.base import DataSpec
from rnnlab.model.models import SequenceModel
from rnnlab.run.build import build

H, TMAX = 1500, 200.0

# (builder, keep gate, write gate, bias rows in order)
CASES = {
    "torch.nn.LSTM": (lambda: nn.LSTM(3, H, num_layers=2), "f", "i", "ifgo"),
    "lstm torch": (lambda: LSTM(3, H, num_layers=2), "f", "i", "ifgo"),
    "lstm vanilla": (lambda: LSTM(3, H, variant="vanilla"), "f", "i", "ifgo"),
    "lstm nig": (lambda: LSTM(3, H, variant="nig"), "f", None, "fgo"),
    "lstm cifg": (lambda: LSTM(3, H, variant="cifg"), None, "i", "igo"),
    "torch.nn.GRU": (lambda: nn.GRU(3, H), "z", None, "rzn"),
    "gru": (lambda: GRU(3, H), "z", None, "rzn"),
    "gru no_reset": (lambda: GRU(3, H, variant="no_reset"), "z", None, "zn"),
    "mgu": (lambda: GRU(3, H, variant="mgu"), None, "f", "fn"),
    "mingru": (lambda: MinGRU(3, H, num_layers=2), None, "z", "zh"),
    "minlstm": (lambda: MinLSTM(3, H, num_layers=2), "f", "i", "fih"),
}


def _block(vector: torch.Tensor, rows: str, gate: str) -> torch.Tensor:
    k = rows.index(gate)
    return vector[k * H:(k + 1) * H]


@pytest.mark.parametrize("case", CASES)
def test_the_effective_keep_bias_is_log_uniform_and_the_write_bias_its_negative(case):
    build, keep, write, rows = CASES[case]
    torch.manual_seed(0)
    module = build()
    assert chrono_gates(module) == (keep, write)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    initialize_recurrent(module, "chrono", chrono_tmax=TMAX)
    layer_biases = []
    for layer in range(module.num_layers):
        b_ih = getattr(module, f"bias_ih_l{layer}").detach()
        b_hh = getattr(module, f"bias_hh_l{layer}", None)  # minGRU / minLSTM: bias_ih only
        b_hh = torch.zeros_like(b_ih) if b_hh is None else b_hh.detach()
        total = b_ih + b_hh
        set_gate = keep or write
        b = _block(total, rows, set_gate) * (1 if keep else -1)  # the keep gate's bias b
        assert torch.equal(_block(b_hh, rows, set_gate), torch.zeros(H))  # all in bias_ih
        if keep and write:
            assert torch.equal(_block(total, rows, write), -_block(total, rows, keep))
            assert torch.equal(_block(b_hh, rows, write), torch.zeros(H))
        # e^b ~ U(1, T_max - 1): the forgetting time 1 / (1 - sigma(b)) = 1 + e^b in (2, T_max)
        u = b.exp().double()
        assert 1 <= u.min() and u.max() <= TMAX - 1
        assert stats.kstest(u.numpy(), stats.uniform(1, TMAX - 2).cdf).pvalue > 1e-3
        timescale = 1 / (1 - torch.sigmoid(b.double()))
        assert torch.allclose(timescale, 1 + u) and 2 <= timescale.min() <= timescale.max() <= TMAX
        layer_biases.append(b)
        # every other gate's bias and every weight untouched
        for gate in rows:
            if gate not in (keep, write):
                assert torch.equal(_block(b_ih, rows, gate),
                                   _block(before[f"bias_ih_l{layer}"], rows, gate))
    for name, p in module.named_parameters():
        if name.startswith("weight"):
            assert torch.equal(p, before[name])
    if len(layer_biases) > 1:  # each layer draws its own
        assert not torch.equal(layer_biases[0], layer_biases[1])


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_chrono_makes_the_min_cells_keep_coefficient_sigma_b(cls):
    """Where the input adds nothing (x = 0), the recurrence coefficient a_t of
    h_t = a_t ⊙ h_{t−1} + b_t, computed by the cell's own equations, is σ(b) with
    e^b ~ U(1, T_max − 1): forgetting times 1/(1 − a) = 1 + e^b in (2, T_max)."""
    torch.manual_seed(0)
    module = cls(3, H)
    initialize_recurrent(module, "chrono", chrono_tmax=TMAX)
    a, _ = module.equations.coefficients(module.bias_ih_l0.detach().double())
    timescale = 1 / (1 - a)
    assert 2 <= timescale.min() <= timescale.max() <= TMAX
    assert stats.kstest((timescale - 1).numpy(), stats.uniform(1, TMAX - 2).cdf).pvalue > 1e-3
    keep, write = chrono_gates(module)
    b = -module.bias_ih_l0.detach()[:H] if keep is None else module.bias_ih_l0.detach()[:H]
    torch.testing.assert_close(a, torch.sigmoid(b.double()), rtol=1e-12, atol=1e-12)


def test_scratch_and_fused_lstm_get_the_same_chrono_bias_from_the_same_seed():
    models = []
    for impl in ("scratch", "fused"):
        torch.manual_seed(3)
        spec = DataSpec("last_regression", output_size=1, input_size=2)
        models.append(SequenceModel(spec, cell="lstm", impl=impl, hidden_size=16, init="chrono",
                                    chrono_tmax=50))
    total = [(m.rnn.bias_ih_l0 + m.rnn.bias_hh_l0).detach() for m in models]
    assert torch.equal(total[0], total[1])
    assert 0 <= float(total[0][16:32].min()) <= float(total[0][16:32].max()) <= math.log(49)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cell": "lstm", "init": "chrono"},
     "model.chrono_tmax must be a number > 2 with init=chrono"),
    ({"cell": "lstm", "init": "chrono", "chrono_tmax": 2},
     "model.chrono_tmax must be a number > 2 with init=chrono"),
    ({"cell": "lstm", "init": "chrono", "chrono_tmax": 50, "forget_bias": 1.0},
     "model.forget_bias=1.0 and init=chrono both set the forget gate's bias: give one of them"),
    ({"cell": "lstm", "init": "chrono", "chrono_tmax": 50, "variant": "nfg"},
     "model.init=chrono needs a forget gate; variant=nfg has none"),
    ({"cell": "rnn", "init": "chrono"},
     "model.init=chrono does not apply to model=rnn (it takes default|orthogonal|identity)"),
    ({"cell": "mingru", "init": "orthogonal"},
     "model.init=orthogonal does not apply to model=mingru (it takes default|chrono)"),
    ({"cell": "indrnn", "init": "chrono"},
     "model.init=chrono does not apply to model=indrnn (it takes default)"),
    ({"cell": "gru", "init": "chrono2"}, "model.init="),
    ({"cell": "rnn", "chrono_tmax": 50},
     "model.chrono_tmax applies only to model=gru, lstm, mingru, minlstm (got model=rnn)"),
    ({"cell": "minlstm", "init": "chrono"},
     "model.chrono_tmax must be a number > 2 with init=chrono"),
])
def test_chrono_refusals_are_one_line(kwargs, message):
    spec = DataSpec("last_regression", output_size=1, input_size=2)
    with pytest.raises(ConfigError) as error:
        SequenceModel(spec, hidden_size=4, **kwargs)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_command_line_sets_chrono_from_the_sequence_length(tmp_path):
    """model.chrono_tmax=${data.seq_len} through Hydra, built the way rnnlab-train builds."""
    cfg = compose_config(["data=adding", "data.seq_len=30", "model=gru", "model.hidden_size=64",
                          "model.init=chrono", "model.chrono_tmax=${data.seq_len}",
                          "logger=csv", "debug=fast"], tmp_path)
    _, task, _ = build(cfg)
    gru = task.model.rnn
    z = (gru.bias_ih_l0 + gru.bias_hh_l0).detach()[64:128]  # rows r, z, n
    assert torch.equal(gru.bias_hh_l0.detach()[64:128], torch.zeros(64))
    assert 0 <= float(z.min()) and float(z.max()) <= math.log(29)


def test_the_command_line_sets_chrono_for_mingru(tmp_path):
    cfg = compose_config(["data=adding", "data.seq_len=30", "model=mingru", "model.hidden_size=64",
                          "model.init=chrono", "model.chrono_tmax=${data.seq_len}",
                          "logger=csv", "debug=fast"], tmp_path)
    _, task, _ = build(cfg)
    z = task.model.rnn.bias_ih_l0.detach()[:64]  # rows z, h̃: z gets −b
    assert -math.log(29) <= float(z.min()) and float(z.max()) <= 0
