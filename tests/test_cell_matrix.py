"""The registry (rnnlab.config.cellspecs) is the one list of cells the cell tests, run labels and
the initialisation read: each entry's variants are the values its class takes, and a cell added in
its two files brings its whole test matrix (tests/cell_matrix.py) with it. Shown here with a
throwaway cell: its module is this file (:class:`Diag`), its entry registered for the test."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import cell_matrix

from rnnlab.cells import GRU, LSTM, initialize_recurrent
from rnnlab.cells.base import RecurrentBase
from rnnlab.cells.recurrence import Recurrence
from rnnlab.config.cellspecs import SPECS, CellSpec, Choice, ModelConfig, spec_of
from rnnlab.config.errors import check_choice

TESTS = Path(__file__).parent


# ---- a throwaway cell, as its two files would have it -----------------------------------------
# its module: a diagonal recurrence h_t = φ(W x_t + b_ih + u ⊙ h_{t−1} + b_hh), φ = tanh | relu,
# with its hand-written backward δa = δh ⊙ φ'(a), δh_{t−1} = δa ⊙ u, ∂L/∂u = Σ δa ⊙ h_{t−1}
def _equations(activation: str) -> Recurrence:
    def step(gi, state, params):
        u, b_ih, b_hh = params
        a = gi + b_ih + u * state[0] + b_hh
        return ((torch.tanh(a) if activation == "tanh" else torch.relu(a)),), ()

    def step_backward(dstate, state_prev, state_new, saved, params):
        (dh,), (h,) = dstate, state_new
        da = dh * (1 - h * h) if activation == "tanh" else torch.where(h > 0, dh, 0 * dh)
        return (da * params[0],), da, ()

    def param_grads(ctx):
        db = ctx.dgi.sum((0, 1))
        return (ctx.dgi * ctx.state_prev(0)).sum((0, 1)), db, db.clone()

    return Recurrence(f"diag_{activation}", step, step_backward, param_grads, lambda H: (H,))


DIAG = {a: _equations(a) for a in ("tanh", "relu")}


class Diag(RecurrentBase):
    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, *, activation="tanh", record_grad_norms=True, compile=None,
                 device=None, dtype=None):
        check_choice("activation", activation, DIAG)
        self.activation = activation
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         gate_size=hidden_size, record_grad_norms=record_grad_norms,
                         compile=compile, device=device, dtype=dtype)

    def recurrent_weight_shape(self):
        return (self.hidden_size,)

    def recurrence(self):
        return DIAG[self.activation]

    def forward(self, input, hx=None, lengths=None):
        output, (h_n,) = self._run(input, None if hx is None else (hx,), lengths)
        return output, h_n


# its entry in rnnlab/config/cellspecs.py: a schema and a CellSpec
@dataclass
class DiagModelConfig(ModelConfig):
    cell: str = "diag"
    activation: str = "tanh"


DIAG_SPEC = CellSpec("diag", DiagModelConfig, "a throwaway diagonal RNN", f"{__name__}:Diag",
                     inits=("default",),
                     variants={"activation": Choice(("tanh", "relu"), by_name=True)})


@pytest.fixture
def registered(monkeypatch):
    """The throwaway cell in the registry, for this test only."""
    monkeypatch.setitem(SPECS, "diag", DIAG_SPEC)
    return DIAG_SPEC


def _load(test_file: str):
    """A fresh copy of a test module, built from the registry as it is now (its case lists are
    made when it is imported)."""
    spec = importlib.util.spec_from_file_location(f"_matrix_{Path(test_file).stem}",
                                                  TESTS / test_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the registry's variants are what the classes take --------------------------------------
@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_each_cells_variants_are_the_values_its_class_takes(spec):
    """Every form constructs; the own form (listed first) is the class's default; a value not
    listed is refused with the class's own list, which is the registry's (so neither can grow
    without the other)."""
    cls = spec.implementation("scratch")
    own = cls(2, 3)
    for setting, choice in spec.variants.items():
        assert setting in spec.options
        assert getattr(own, setting) == choice.values[0]
        with pytest.raises(ValueError, match=" is not one of ") as refused:
            cls(2, 3, **{setting: "no-such-form"})
        assert str(refused.value).split(" is not one of ")[1].split(", ") == list(choice.values)
    for form in spec.forms():
        cls(2, 3, **form)
    assert set(spec.features) <= set(spec.options)
    for name, value in spec.features.items():
        cls(2, 3, **{name: value})


def test_the_matrix_covers_every_cell_in_every_form():
    ids = {case.id for case in cell_matrix.forms()}
    assert {"rnn-relu", "gru-mgu-before", "gru-no_reset-after", "lstm-fgr", "mingru-log",
            "minlstm-sequential", "indrnn"} <= ids
    assert len(ids) == sum(len(spec.forms()) for spec in SPECS.values())
    assert [c.id for c in cell_matrix.torch_nn_forms()] == ["rnn-tanh", "rnn-relu",
                                                            "gru-gru-after", "lstm-torch"]
    assert [c.family for c in cell_matrix.one_per_family(cell_matrix.forms())] == [
        "rnnlab.cells.rnn", "rnnlab.cells.gru", "rnnlab.cells.lstm", "rnnlab.cells.minrnn",
        "rnnlab.cells.indrnn"]


# ---- a throwaway cell brings its test matrix ----------------------------------------------------
def test_a_cell_added_in_its_two_files_brings_its_test_matrix(registered, monkeypatch):
    """The gradcheck, Jacobian and autocast tests, built with the throwaway entry registered,
    list its cases (not the reference or torch.nn parity: it has neither), and they pass."""
    gradcheck = _load("test_cells_gradcheck.py")
    jacobian = _load("test_jacobian.py")
    autocast = _load("test_cells_autocast.py")
    parity = _load("test_cells_parity.py")

    def diag(cases):
        return [case.id for case in cases if case.cell == "diag"]

    assert diag(gradcheck.CASES) == ["diag-tanh", "diag-relu"]
    assert diag(gradcheck.REFERENCED) == []
    assert diag(jacobian.STEPPED) == ["diag-tanh", "diag-relu"]
    assert diag(jacobian.SCANNED) == []
    assert [n for n in autocast.CASES if n.startswith("diag")] == ["diag-tanh", "diag-relu"]
    assert "diag-tanh" in autocast.FAMILY  # its own family: also on variable lengths
    assert not [n for n in parity.KINDS if n.startswith("diag")]

    for case in cell_matrix.forms({"diag": registered}):
        gradcheck.test_gradcheck(case)
        jacobian.test_step_jacobians_match_autograd(case)
    jacobian.test_products_are_the_modules_own_state_derivative(
        cell_matrix.own_forms({"diag": registered})[0])
    # the autocast case (eager and compiled, bf16 and fp16): the most expensive, run once
    autocast.test_backward_inside_or_after_autocast_gives_the_same_gradients(
        "diag-tanh", False, "cpu", monkeypatch)


def test_run_labels_name_a_form_by_the_registry(registered, monkeypatch):
    from rnnlab.gradflow import labels as cli
    from rnnlab.run.rundir import RunDir

    def label(**model):
        monkeypatch.setattr(RunDir, "config", lambda self: {"model": model})
        return cli.run_label(Path(model.get("cell", "somewhere")), {})

    assert label(cell="rnn", nonlinearity="tanh") == "rnn"
    assert label(cell="rnn", nonlinearity="relu") == "rnn (relu)"
    assert label(cell="gru", variant="mgu", reset="before") == "gru (mgu, reset=before)"
    assert label(cell="gru", variant="mgu", reset=None, init="chrono") == "gru (init=chrono, mgu)"
    assert label(cell="lstm", variant="vanilla", forget_bias=1.0) == "lstm (forget_bias=1, vanilla)"
    assert label(cell="lstm", variant="torch", layer_norm=True) == "lstm (layer_norm)"
    assert label(cell="minlstm", mode="log") == "minlstm (mode=log)"
    assert label(cell="diag", activation="relu") == "diag (relu)"
    assert label(cell="diag", activation="tanh") == "diag"
    # a run whose cell is unknown (no config): read by every cell's variant settings
    assert label(variant="torch", reset="before") == "somewhere (reset=before)"


def test_init_asks_the_registry_which_cell_a_module_is(registered):
    """forget_bias is for the cells whose entry has it, whatever their class is called."""

    class Renamed(LSTM):  # a subclass: still the registry's lstm
        pass

    m = Renamed(2, 3)
    assert spec_of(Renamed) is SPECS["lstm"]
    initialize_recurrent(m, forget_bias=1.0)
    f = slice(3, 6)  # torch's gate order i, f, g, o
    assert torch.equal(m.bias_ih_l0[f] + m.bias_hh_l0[f], torch.ones(3))
    for other in (GRU(2, 3), Diag(2, 3), nn.Linear(2, 3)):
        with pytest.raises(ValueError, match="forget_bias applies only to LSTM cells"):
            initialize_recurrent(other, forget_bias=1.0)
    assert spec_of(Diag) is registered and spec_of(nn.LSTM) is None
