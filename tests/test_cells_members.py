"""The batched member step (rnnlab.cells.members) against each member run alone.

N = 3 members of one family and shapes, initialised differently (their own seeds; LSTM forget
biases 0, 1, 2; one member orthogonally initialised), each fed its own batch, run as one stacked
computation; their outputs and every member parameter's gradient (of a per-member loss, weighted
differently per member and summed, so a gradient routed to the wrong member shows) are compared
with each member's own model run alone (its per-member path: the scratch cells' forward and
hand-written backward).

Tolerances. float64: 1e-10 absolute (measured: at most ~1.5e-14). float32: for every tensor,
max|stacked − alone| ≤ 1e-5 · max|alone| + 1e-7 (measured: at most ~1.3e-6 relative, i.e. ~20
units of float32's roundoff u = 6e-8). The two paths compute the same sums in a different order
— a batched matmul instead of one per member, the biases folded into the products instead of
added in the step, autograd's backward instead of the cells' hand-derived one (which sums the
weight gradient over all steps in one matmul) — so they agree to rounding, not bit for bit.
Each reordered sum here has a few dozen terms (B·T, H) and goes through T sigmoid/tanh steps,
which do not amplify it; 1e-5 (~170 u) leaves ~8x margin over the worst case measured while any
real mistake (a gate, a bias, a member's parameters mixed up) is an O(1) relative error.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnlab.cells import GRU, LSTM, RNN
from rnnlab.cells.members import (
    MemberStackError,
    model_stack_reason,
    stack_reason,
    stacked_model_forward,
    stacked_rnn_forward,
)
from rnnlab.data.base import DataSpec
from rnnlab.model.models import SequenceModel

N, B, T, I, H = 3, 4, 6, 3, 5
REGRESSION = DataSpec("last_regression", output_size=2, input_size=I)
TOKENS = DataSpec("step_classification", output_size=4, vocab_size=6)


def _members(cell: str, layers: int, dtype, spec=REGRESSION, **options) -> list[SequenceModel]:
    models = []
    for i in range(N):
        torch.manual_seed(100 + i)
        own = dict(options)
        if cell == "lstm":
            own["forget_bias"] = float(i)
        if i == 2 and cell != "rnn":
            own["init"] = "orthogonal"
        models.append(SequenceModel(spec, cell=cell, hidden_size=H, num_layers=layers, **own)
                      .to(dtype))
    return models


def _inputs(spec: DataSpec, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if spec.vocab_size is not None:
        return torch.randint(0, spec.vocab_size, (N, B, T), generator=g)
    return torch.randn(N, B, T, spec.input_size, generator=g, dtype=dtype)


def _loss(outputs) -> torch.Tensor:
    # each member's own loss, weighted by member, summed: d/d(member i's params) is its loss's
    return sum((k + 1) * (out.tanh() ** 2).sum() for k, out in enumerate(outputs))


def _check(alone, stacked, dtype, what: str) -> float:
    """Assert the tolerance (module docstring); return the relative error."""
    err = (stacked - alone).abs().max().item()
    scale = alone.abs().max().item()
    if dtype == torch.float64:
        assert err <= 1e-10, f"{what}: {err:.3g}"
    else:
        assert err <= 1e-5 * scale + 1e-7, f"{what}: {err:.3g} (scale {scale:.3g})"
    return err / max(scale, 1e-30)


def _compare(models, x, dtype) -> None:
    params = [p for m in models for p in m.parameters()]
    alone = [m(xi) for m, xi in zip(models, x)]
    alone_grads = torch.autograd.grad(_loss(alone), params)
    stacked = stacked_model_forward(models, x)
    assert stacked.shape == (N, *alone[0].shape)
    stacked_grads = torch.autograd.grad(_loss(stacked.unbind(0)), params)
    for k in range(N):
        _check(alone[k], stacked[k], dtype, f"output of member {k}")
    names = [f"member{k}.{n}" for k, m in enumerate(models) for n, _ in m.named_parameters()]
    for name, a, s in zip(names, alone_grads, stacked_grads):
        _check(a, s, dtype, f"gradient of {name}")


DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_stacked_members_equal_each_member_alone(cell, layers, dtype):
    models = _members(cell, layers, dtype)
    _compare(models, _inputs(REGRESSION, dtype), dtype)


@pytest.mark.parametrize("cell, options", [
    ("rnn", {"nonlinearity": "relu"}),
    ("gru", {"reset": "before"}),
    ("gru", {"variant": "mgu"}),          # reset before, f as reset and (1 - f) as keep
    ("gru", {"variant": "no_reset"}),
    ("lstm", {"variant": "vanilla"}),     # peepholes
    ("lstm", {"variant": "cifg"}),
])
def test_variants(cell, options):
    for dtype in (torch.float64, torch.float32):
        _compare(_members(cell, 2, dtype, **options), _inputs(REGRESSION, dtype), dtype)


@pytest.mark.parametrize("encoder", ["onehot", "embedding"])
def test_per_step_token_task(encoder):
    """Per-step heads over token inputs: one-hot, and an embedding looked up member by member
    (its padding row, index 0, gets no gradient in either path)."""
    dtype = torch.float64
    models = _members("gru", 2, dtype, spec=TOKENS, encoder=encoder)
    x = _inputs(TOKENS, dtype)
    x[:, 0, 0] = 0  # a padding token
    _compare(models, x, dtype)


def test_linear_encoder():
    dtype = torch.float64
    _compare(_members("lstm", 1, dtype, encoder="linear", embedding_dim=4),
             _inputs(REGRESSION, dtype), dtype)


def test_rnn_stack_final_states_and_time_major_and_torch_nn_members():
    """The bare recurrent stacks: h_n (and the LSTM's c_n) too; batch_first=False; torch.nn's
    fused modules (same parameter names) stack with the scratch ones."""
    torch.manual_seed(0)
    rnns = [LSTM(I, H, num_layers=2, forget_bias=1.0).double(),
            nn.LSTM(I, H, num_layers=2).double(),
            LSTM(I, H, num_layers=2).double()]
    x = torch.randn(N, T, B, I, dtype=torch.float64)
    out, (h_n, c_n) = stacked_rnn_forward(rnns, list(x))
    for k, rnn in enumerate(rnns):
        o, (h, c) = rnn(x[k])
        for a, b in ((o, out[k]), (h, h_n[k]), (c, c_n[k])):
            assert (a - b).abs().max().item() <= 1e-12
    gru = [GRU(I, H, batch_first=True).double(), nn.GRU(I, H, batch_first=True).double()]
    x = torch.randn(2, B, T, I, dtype=torch.float64)
    out, h_n = stacked_rnn_forward(gru, x)
    for k, rnn in enumerate(gru):
        o, h = rnn(x[k])
        assert (o - out[k]).abs().max().item() <= 1e-12
        assert (h - h_n[k]).abs().max().item() <= 1e-12


@pytest.mark.parametrize("reset", ["after", "before"])
def test_without_biases(reset):
    torch.manual_seed(1)
    rnns = [GRU(I, H, num_layers=2, bias=False, reset=reset).double() for _ in range(N)]
    x = torch.randn(N, T, B, I, dtype=torch.float64)
    out, h_n = stacked_rnn_forward(rnns, x)
    grads = torch.autograd.grad(out.square().sum(), [p for r in rnns for p in r.parameters()])
    alone = [r(xi) for r, xi in zip(rnns, x)]
    alone_grads = torch.autograd.grad(sum(o.square().sum() for o, _ in alone),
                                      [p for r in rnns for p in r.parameters()])
    for k, (o, h) in enumerate(alone):
        assert (o - out[k]).abs().max().item() <= 1e-12
        assert (h - h_n[k]).abs().max().item() <= 1e-12
    for a, s in zip(alone_grads, grads):
        assert (a - s).abs().max().item() <= 1e-10


def test_refusals_say_why():
    assert stack_reason([RNN(I, H), GRU(I, H)]) is not None  # two families
    assert "hidden_size" in stack_reason([GRU(I, H), GRU(I, H + 1)])
    assert "layer_norm" in stack_reason([GRU(I, H, layer_norm=True)] * 2)
    assert "zoneout" in stack_reason([LSTM(I, H, zoneout=0.1)] * 2)
    assert "fgr" in stack_reason([LSTM(I, H, variant="fgr")] * 2)
    assert "gru mgu reset=before" in stack_reason([GRU(I, H), GRU(I, H, variant="mgu")])
    assert "float64" in stack_reason([GRU(I, H), GRU(I, H).double()])
    two = [GRU(I, H, num_layers=2, dropout=0.5), GRU(I, H, num_layers=2, dropout=0.5)]
    assert "dropout" in stack_reason(two)
    assert stack_reason([r.eval() for r in two]) is None  # no masks drawn in eval
    with pytest.raises(MemberStackError, match="dropout"):
        stacked_rnn_forward([r.train() for r in two], torch.zeros(2, T, B, I))

    models = _members("gru", 1, torch.float32)
    assert model_stack_reason(models) is None
    models[1].watch_gradient_flow(True)
    assert "gradient-flow" in model_stack_reason(models)
    with pytest.raises(MemberStackError, match="gradient-flow"):
        stacked_model_forward(models, _inputs(REGRESSION, torch.float32))
    models[1].watch_gradient_flow(False)
    with pytest.raises(MemberStackError, match="inputs for"):
        stacked_model_forward(models, _inputs(REGRESSION, torch.float32)[:2])
