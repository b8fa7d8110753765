"""Step Jacobians, their products and Lyapunov exponents (rnnlab.gradflow.jacobian): every cell
and variant against torch.autograd.functional.jacobian in float64, and the Lyapunov exponents on
cases with known answers."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch.autograd.functional import jacobian

sys.path.insert(0, str(Path(__file__).parent))
import cell_matrix

from rnnlab.cells import GRU, RNN
from rnnlab.gradflow.jacobian import (
    jacobian_record,
    lyapunov_exponents,
    product_log10_norms,
    spectral_norms,
    step_jacobians,
)

F64 = torch.float64
# every form of the cells whose layers step through a recurrence, and each feature (layer norm,
# zoneout) on a cell's own form: their step equations against autograd (features on every form
# would cost ~10 s more; their gradchecks in test_cells_layernorm_zoneout.py cover the variants)
STEPPED = [case for case in cell_matrix.forms() + cell_matrix.features()
           if case.steps_by_recurrence]
# the cells whose layers run as a scan (minGRU, minLSTM), every form
SCANNED = [case for case in cell_matrix.forms() if not case.steps_by_recurrence]


def _stack(case, I=3, H=4, layers=1, seed=0):
    """``case``: a cell_matrix.Case, or a class."""
    torch.manual_seed(seed)
    make = case.make if isinstance(case, cell_matrix.Case) else case
    stack = make(I, H, num_layers=layers, compile=False, dtype=F64).eval()
    with torch.no_grad():  # larger weights than the default init: saturating, non-trivial J
        for p in stack.parameters():
            p.mul_(2.0)
    return stack


def _autograd_step_jacobians(stack, layer, x):
    """J_t by autograd through the cell's forward equations (Recurrence.step), in float64."""
    rec = stack.recurrence()
    widths = rec.state_sizes(stack.hidden_size)
    params = stack.layer_parameters(layer)
    gi = stack.input_projection(layer, x)
    inputs = stack.step_inputs(layer, gi)
    state = tuple(x.new_zeros(x.shape[1], w) for w in widths)
    Js, outs = [], []
    for t in range(x.shape[0]):
        step_in = tuple(i[t] for i in inputs)

        def f(s, t=t, step_in=step_in):
            new, _ = rec.step(gi[t], tuple(s.split(list(widths), 1)), params, *step_in)
            return torch.cat(new, 1)

        flat = torch.cat(state, 1)
        full = jacobian(f, flat)  # (B, S, B, S): samples do not mix
        Js.append(torch.stack([full[b, :, b, :] for b in range(flat.shape[0])]))
        state = tuple(f(flat).split(list(widths), 1))
        outs.append(state[0])
    return torch.stack(Js), torch.stack(outs)


@pytest.mark.parametrize("case", cell_matrix.params(STEPPED))
def test_step_jacobians_match_autograd(case):
    stack = _stack(case, layers=2)
    torch.manual_seed(1)
    x = torch.randn(6, 2, 3, dtype=F64)
    got = step_jacobians(stack, x)
    inp = x
    for layer in range(2):
        want, out = _autograd_step_jacobians(stack, layer, inp)
        torch.testing.assert_close(got[layer].J, want, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got[layer].output, out, rtol=1e-12, atol=1e-12)
        inp = out


@pytest.mark.parametrize("case", cell_matrix.params(SCANNED))
def test_min_cells_jacobian_is_their_coefficient_and_matches_the_module(case):
    """minGRU / minLSTM (every mode): the product of the diagonal J_t is ∂h_T/∂h_0 of the module
    itself."""
    stack = _stack(case)
    x = torch.randn(5, 2, 3, dtype=F64)
    (lj,) = step_jacobians(stack, x)
    want = jacobian(lambda h0: stack(x, h0)[1][0], torch.zeros(1, 2, 4, dtype=F64))
    product = lj.J[0]
    for t in range(1, 5):
        product = lj.J[t] @ product
    for b in range(2):
        torch.testing.assert_close(product[b], want[b, :, 0, b, :], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lj.output, stack(x)[0])


@pytest.mark.parametrize("case", cell_matrix.params(
    [case for case in cell_matrix.own_forms() if case.steps_by_recurrence]))
def test_products_are_the_modules_own_state_derivative(case):
    """‖J_T ⋯ J_1‖ equals ‖∂s_T/∂s_0‖ of the module's forward (h_n, and c_n for the LSTM, wrt
    hx), and the record's log10_product at t is log10 ‖J_T ⋯ J_{t+1}‖."""
    stack = _stack(case)
    x = torch.randn(7, 2, 3, dtype=F64)
    (lj,) = step_jacobians(stack, x)
    zeros = torch.zeros(1, 2, 4, dtype=F64)
    finals = stack(x)[1]
    n = len(finals) if isinstance(finals, tuple) else 1  # the states hx holds: LSTM h and c

    def final(*hx):
        _, fin = stack(x, hx if n > 1 else hx[0])
        return torch.cat([f[0] for f in (fin if n > 1 else (fin,))], 1)

    derivatives = jacobian(final, (zeros,) * n)
    want = torch.cat([d[:, :, 0] for d in derivatives], -1)  # (B, S, B, S)
    product = lj.J[0]
    for t in range(1, 7):
        product = lj.J[t] @ product
    for b in range(2):
        torch.testing.assert_close(product[b], want[b, :, b, :], rtol=1e-10, atol=1e-12)
    logs = product_log10_norms(lj.J)
    assert torch.all(logs[-1] == 0)
    tail = lj.J[6] @ lj.J[5] @ lj.J[4]  # ∂s_7/∂s_4 (1-based states)
    torch.testing.assert_close(logs[3], torch.log10(torch.linalg.matrix_norm(tail, ord=2)))


def test_ragged_batch_freezes_the_state_past_the_end():
    stack = _stack(GRU, I=3, H=4)
    x = torch.randn(5, 2, 3, dtype=F64)
    (lj,) = step_jacobians(stack, x, lengths=torch.tensor([5, 3]))
    eye = torch.eye(4, dtype=F64)
    assert torch.equal(lj.J[3, 1], eye) and torch.equal(lj.J[4, 1], eye)
    (alone,) = step_jacobians(stack, x[:3, 1:])
    torch.testing.assert_close(lj.J[:3, 1], alone.J[:, 0])
    assert torch.all(lj.output[3:, 1] == 0)


def _orthogonal(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    return q


@pytest.mark.parametrize("a", [1.0, 0.5, 1.7])
def test_lyapunov_of_a_scaled_orthogonal_product_is_log_a(a):
    J = (a * _orthogonal(6)).expand(40, 3, 6, 6)
    exps = lyapunov_exponents(J, k=4)
    torch.testing.assert_close(exps, torch.full((3, 4), math.log(a), dtype=F64))
    every3 = lyapunov_exponents(J, k=4, reorthonormalise=3)
    torch.testing.assert_close(every3, exps)


def test_lyapunov_of_a_diagonal_product_is_the_sorted_log_entries():
    d = torch.tensor([0.3, 2.0, 1.0, 0.9], dtype=F64)
    J = torch.diag(d).expand(25, 1, 4, 4)
    exps = lyapunov_exponents(J)
    torch.testing.assert_close(exps[0], d.log().sort(descending=True).values)


def test_tanh_rnn_in_its_linear_regime_has_the_exponents_of_its_weights():
    """Tiny inputs, no bias, W_hh = a·orthogonal: tanh' ≈ 1, so every exponent is ≈ log a."""
    H, a = 8, 0.9
    stack = RNN(2, H, bias=False, compile=False, dtype=F64).eval()
    with torch.no_grad():
        stack.weight_hh_l0.copy_(a * _orthogonal(H, 3))
    x = 1e-6 * torch.randn(200, 2, 2, dtype=F64)
    record = jacobian_record(stack, x, k=3)["layer0"]
    torch.testing.assert_close(record["lyapunov"], torch.full((2, 3), math.log(a), dtype=F64),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(record["norm"], torch.full((200, 2), a, dtype=F64), atol=1e-6,
                               rtol=0)
    # log10 ‖W^(T−t)‖ = (T − t) log10 a
    expect = torch.arange(199, -1, -1, dtype=F64).unsqueeze(1) * math.log10(a)
    torch.testing.assert_close(record["log10_product"], expect.expand(200, 2), atol=1e-4, rtol=0)


def test_lyapunov_refuses_k_beyond_the_state():
    with pytest.raises(ValueError, match=r"lyapunov k must be in \[1, 4\]"):
        lyapunov_exponents(torch.eye(4).expand(3, 1, 4, 4), k=5)



def test_spectral_norms_are_the_largest_singular_values():
    J = torch.randn(5, 3, 7, 7, dtype=F64)
    torch.testing.assert_close(spectral_norms(J), torch.linalg.svdvals(J)[..., 0], rtol=1e-12,
                               atol=0)
    assert torch.all(spectral_norms(torch.zeros(2, 4, 4, dtype=F64)) == 0)


def test_lyapunov_of_a_ragged_batch_divides_by_each_length():
    J = torch.eye(3, dtype=F64).repeat(10, 2, 1, 1)
    J[:4, 1] = 0.5 * torch.eye(3, dtype=F64)  # sample 1: 4 steps of 0.5, then frozen (I)
    J[:, 0] = 2.0 * torch.eye(3, dtype=F64)
    exps = lyapunov_exponents(J, k=2, lengths=torch.tensor([10, 4]))
    torch.testing.assert_close(exps, torch.tensor([[math.log(2)] * 2, [math.log(0.5)] * 2],
                                                  dtype=F64))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_monitor_record_in_float32_agrees_with_float64(cell):
    """DynamicsRecorder computes in the model's dtype (float32 in training, for speed); its
    norms, product norms and exponents are those of the same model in float64 to < 1e-5."""
    import copy

    from rnnlab.data.base import DataSpec
    from rnnlab.gradflow.dynamics import DynamicsRecorder
    from rnnlab.model.models import SequenceModel

    torch.manual_seed(0)
    spec = DataSpec(task_kind="last_regression", output_size=1, input_size=2)
    model = SequenceModel(spec, cell=cell, hidden_size=16)
    batch = {"x": torch.randn(8, 30, 2), "y": torch.randn(8, 1)}
    records = []
    for m, b in ((model, batch), (copy.deepcopy(model).double(),
                                  {k: v.double() for k, v in batch.items()})):
        rec = DynamicsRecorder(rows=3)
        rec.keep_batch(b)
        rec.measure(m, 0, 0)
        records.append(rec.records[0]["layers"][0])
    lo, hi = records
    for key in ("norm", "log10_product", "lyapunov"):
        assert lo[key].dtype == hi[key].dtype
        torch.testing.assert_close(torch.as_tensor(lo[key]), torch.as_tensor(hi[key]),
                                   rtol=1e-5, atol=1e-5)
