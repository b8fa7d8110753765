"""docs/cells.md's template cell is tested as the page writes it (issue 39, item 5): its module,
schema and registry entry are taken from the page's code blocks, registered for the test, and
then its backward passes gradcheck (the page's own check, float64), it is the function the page
says (the GRU without a reset gate), a model is built and trained a step with it through the
registry like any cell (every model.init scheme its entry takes), the gradient-flow monitor reads
its ∂L/∂h_t record, step Jacobians and gates, it runs on the per-step backend (no native kernel)
and a pack runs it member by member. Eager (RNNLAB_COMPILE=0): a few seconds."""

from __future__ import annotations

import re
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

from rnnlab.config import cellspecs
from rnnlab.config.cellspecs import SPECS

DOC = Path(__file__).resolve().parents[1] / "docs" / "cells.md"
MODULE = "rnnlab.cells.leaky"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def _block(marker: str) -> str:
    found = [b for b in _blocks() if marker in b]
    assert len(found) == 1, f"docs/cells.md: {len(found)} python blocks hold {marker!r}"
    return found[0]


@pytest.fixture
def leaky(monkeypatch):
    """The page's cell module as rnnlab.cells.leaky and its entry in the registry."""
    monkeypatch.setenv("RNNLAB_COMPILE", "0")
    module = types.ModuleType(MODULE)
    module.__package__ = "rnnlab.cells"
    module.__file__ = str(DOC)
    monkeypatch.setitem(sys.modules, MODULE, module)
    exec(compile(_block("(RecurrentBase)"), f"{DOC}:leaky.py", "exec"), module.__dict__)
    names = dict(vars(cellspecs))
    exec(compile(_block("@dataclass"), f"{DOC}:schema", "exec"), names)
    entry = textwrap.dedent(_block("CellSpec(")).strip().rstrip(",")
    spec = eval(compile(entry, f"{DOC}:entry", "eval"), names)
    assert spec.name == "leaky" and spec.schema.__name__ == "LeakyModelConfig"
    monkeypatch.setitem(SPECS, "leaky", spec)
    return module, spec


def test_the_pages_gradcheck_passes(leaky):
    exec(compile(_block("gradcheck"), f"{DOC}:gradcheck", "exec"), {})


def test_the_template_is_the_gru_without_a_reset_gate(leaky):
    from rnnlab.cells import GRU

    module, _ = leaky
    torch.manual_seed(0)
    cell = module.Leaky(3, 4, num_layers=2, dtype=torch.float64)
    gru = GRU(3, 4, num_layers=2, variant="no_reset", dtype=torch.float64)
    gru.load_state_dict(cell.state_dict())  # the same parameter names and shapes
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 3])
    for a, b in zip(cell(x, lengths=lengths), gru(x, lengths=lengths)):
        torch.testing.assert_close(a, b)


def test_a_model_with_the_template_builds_trains_and_is_monitored(leaky):
    from rnnlab.cells import backends
    from rnnlab.cells.members import model_stack_reason
    from rnnlab.data.base import DataSpec
    from rnnlab.gradflow.gates import case_shares
    from rnnlab.gradflow.jacobian import step_jacobians
    from rnnlab.model.models import SequenceModel

    module, spec = leaky
    data = DataSpec("last_regression", output_size=1, input_size=2)
    x, y = torch.randn(4, 7, 2), torch.randn(4, 1)
    for init in spec.inits:  # every scheme the entry takes
        torch.manual_seed(0)
        model = SequenceModel(data, cell="leaky", hidden_size=5, num_layers=2, init=init,
                              **({"chrono_tmax": 7.0} if init == "chrono" else {}))
        assert isinstance(model.rnn, module.Leaky)
        mark = backends.mark()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all()
                   for p in model.parameters())
        # the per-step backend ran it (no native kernel), eager here
        assert {k for k in backends.used(mark) if k != "fallbacks"} == {"step/eager"}
    norms = model.rnn.hidden_grad_norms  # the ∂L/∂h_t record
    assert norms.shape == (2, 7, 4) and (norms[:, -1] > 0).all()
    layers = step_jacobians(model.rnn.eval(), model.encode(x))
    assert layers[0].J.shape == (7, 4, 5, 5) and set(layers[0].gates) == {"f", "keep"}
    assert set(case_shares(layers[0].gates)) == {"carry", "forget", "mixed"}
    # a pack runs it member by member (the batched member step has rnn, gru and lstm only)
    assert "Leaky is not stacked" in model_stack_reason([model, model])
