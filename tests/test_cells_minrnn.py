"""minGRU / minLSTM (parallel, log-space and sequential scans) and IndRNN: outputs against an
independent unrolled autograd loop, hand backward against gradcheck, the recorded ‖∂L/∂h_t‖
against retain_grad, the modes against each other (float64 and float32 at T = 4096), the
compiled path, bf16 autocast, and IndRNN's weight bound."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from rnnlab.cells import IndRNN, MinGRU, MinLSTM
from rnnlab.cells.minrnn import MinGRUEquations, MinLSTMEquations, MinRecurrenceFunction, g
from rnnlab.cells.scan import (
    linear_scan,
    log_scan,
    reverse_linear_scan,
    reverse_sequential_scan,
    sequential_scan,
)

F64 = torch.float64
MODES = ("parallel", "log", "sequential")


def _unrolled(m, x, hx, lengths):
    """Time-major autograd reference written from the papers' equations; returns (output, h_n,
    per-layer lists of the states h_t with retain_grad)."""
    steps = x.shape[0]
    inp, finals, states = x, [], []
    for layer in range(m.num_layers):
        w = getattr(m, f"weight_ih_l{layer}")
        b = getattr(m, f"bias_ih_l{layer}")
        h = hx[layer]
        outs, layer_states = [], []
        for t in range(steps):
            a = inp[t] @ w.t() + b
            if isinstance(m, MinGRU):
                k, p = a.chunk(2, -1)
                z = torch.sigmoid(k)
                new = (1 - z) * h + z * g(p)
            elif isinstance(m, MinLSTM):
                kf, ki, p = a.chunk(3, -1)
                f, i = torch.sigmoid(kf), torch.sigmoid(ki)
                new = f / (f + i) * h + i / (f + i) * g(p)
            else:  # IndRNN
                u = getattr(m, f"weight_hh_l{layer}")
                new = torch.relu(a + u * h + getattr(m, f"bias_hh_l{layer}"))
            valid = (t < lengths)[:, None]
            new = torch.where(valid, new, h)
            new.retain_grad()
            layer_states.append(new)
            outs.append(torch.where(valid, new, torch.zeros_like(new)))
            h = new
        states.append(layer_states)
        finals.append(h)
        inp = torch.stack(outs)
    return inp, torch.stack(finals), states


CELLS = [(MinGRU, {"mode": m}) for m in MODES] + [(MinLSTM, {"mode": m}) for m in MODES] + [
    (IndRNN, {"recurrent_max": 1.5})]
IDS = [f"{c.__name__}-{'-'.join(str(v) for v in kw.values())}" for c, kw in CELLS]


@pytest.mark.parametrize(("cls", "kw"), CELLS, ids=IDS)
def test_outputs_gradients_and_recorded_norms_match_the_unrolled_loop(cls, kw):
    torch.manual_seed(0)
    T, B, I, H, L = 9, 4, 3, 5, 2
    m = cls(I, H, L, compile=False, dtype=F64, **kw).eval()  # eval: IndRNN's bound stays put
    x = torch.randn(T, B, I, dtype=F64)
    hx = torch.rand(L, B, H, dtype=F64)
    lengths = torch.tensor([9, 3, 0, 6])
    out, h_n = m(x, hx, lengths)
    ref_out, ref_h_n, states = _unrolled(m, x, hx, lengths)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-13)
    torch.testing.assert_close(h_n, ref_h_n, rtol=0, atol=1e-13)

    wy = torch.randn_like(out)
    ((out * wy).sum() + h_n.pow(2).sum()).backward()
    grads = [p.grad.clone() for p in m.parameters()]
    norms = m.hidden_grad_norms
    m.zero_grad()
    ((ref_out * wy).sum() + ref_h_n.pow(2).sum()).backward()
    for mine, ref in zip(grads, [p.grad for p in m.parameters()]):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-12)
    valid = torch.arange(T)[:, None] < lengths[None, :]
    ref_norms = torch.stack([torch.stack([h.grad.norm(dim=1) for h in layer])
                             for layer in states]) * valid
    assert norms.shape == (L, T, B) and norms.dtype == torch.float32
    torch.testing.assert_close(norms, ref_norms.float(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("cls", "kw"), CELLS, ids=IDS)
def test_gradcheck_inputs_state_and_parameters(cls, kw):
    torch.manual_seed(1)
    m = cls(3, 4, 2, batch_first=True, compile=False, dtype=F64, **kw).eval()
    x = torch.randn(3, 6, 3, dtype=F64, requires_grad=True)
    hx = torch.rand(2, 3, 4, dtype=F64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    assert torch.autograd.gradcheck(lambda x, hx: m(x, hx, lengths), (x, hx))
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    assert torch.autograd.gradcheck(
        lambda *ps: functional_call(m, dict(zip(names, ps)), (x.detach(), hx.detach()))[0],
        params)


@pytest.mark.parametrize("eq", [MinGRUEquations, MinLSTMEquations], ids=["mingru", "minlstm"])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_of_the_hand_written_recurrence_itself(eq, mode):
    torch.manual_seed(2)
    P = torch.randn(7, 3, eq.rows * 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(3, 2, dtype=F64, requires_grad=True)
    mask = (torch.arange(7)[:, None] < torch.tensor([7, 4, 1])[None, :]).unsqueeze(-1)
    for m in (None, mask):
        assert torch.autograd.gradcheck(
            lambda P, h0, m=m: MinRecurrenceFunction.apply(eq, mode, False, None, 0, P, h0, m),
            (P, h0))


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 64, 101])
def test_scans_agree_with_the_loop(steps):
    torch.manual_seed(steps)
    a, b = torch.rand(steps, 3, dtype=F64), torch.randn(steps, 3, dtype=F64)
    torch.testing.assert_close(linear_scan(a, b), sequential_scan(a, b), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(reverse_linear_scan(a, b), reverse_sequential_scan(a, b),
                               rtol=1e-12, atol=1e-12)
    expected = sequential_scan(a, b.abs())
    torch.testing.assert_close(log_scan(a.log(), b.abs().log()), expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_modes_agree_float64_and_float32_at_4096_steps(cls):
    torch.manual_seed(3)
    x = torch.randn(4096, 2, 4)
    # the log-space scan's float32 error grows with |Σ log a| (scan.py): 1.5e-4 measured here,
    # which is why "parallel" (linear space) is the default
    bounds = {(F64, "parallel"): 1e-10, (F64, "log"): 1e-10,
              (torch.float32, "parallel"): 1e-5, (torch.float32, "log"): 1e-3}
    errors = {}
    with torch.no_grad():
        for dtype in (F64, torch.float32):
            m = cls(4, 8, compile=False, dtype=dtype, mode="sequential")
            ref, _ = m(x.to(dtype))
            for mode in ("parallel", "log"):
                m.mode = mode
                out, _ = m(x.to(dtype))
                # relative to the output's scale (h is O(1) at every step)
                errors[dtype, mode] = float((out - ref).abs().max() / ref.abs().max())
    assert all(errors[key] <= bound for key, bound in bounds.items()), errors


def test_the_compiled_path_matches_eager():
    torch.manual_seed(4)
    x = torch.randn(5, 20, 3)
    lengths = torch.tensor([20, 11, 3, 17, 20])
    results = []
    for compile in (False, True):
        torch.manual_seed(5)
        m = MinLSTM(3, 6, 2, batch_first=True, compile=compile)
        out, h_n = m(x, lengths=lengths)
        (out.sum() + h_n.sum()).backward()
        results.append((out, h_n, m.hidden_grad_norms, [p.grad for p in m.parameters()]))
    (o1, h1, n1, g1), (o2, h2, n2, g2) = results
    torch.testing.assert_close(o1, o2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h1, h2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(n1, n2, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_gives_finite_gradients_near_float32():
    torch.manual_seed(6)
    m = MinGRU(8, 16, 2, batch_first=True, compile=False)
    x = torch.randn(4, 50, 8)
    grads = []
    for autocast in (False, True):
        m.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out, _ = m(x)
            loss = out.float().pow(2).mean()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.isfinite(grads[1]).all()
    rel = float((grads[1] - grads[0]).norm() / grads[0].norm())
    assert rel < 0.05, rel  # bf16 projections (8 bits of mantissa); the scan itself is float32


def test_step_by_step_inference_continues_the_sequence():
    torch.manual_seed(7)
    m = MinGRU(3, 5, 2, batch_first=True, compile=False, mode="sequential")
    x = torch.randn(2, 6, 3)
    full, h_full = m(x)
    h, outs = None, []
    for t in range(6):
        out, h = m(x[:, t:t + 1], h)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), full)
    torch.testing.assert_close(h, h_full)


def test_indrnn_keeps_its_recurrent_weights_within_the_bound_while_training():
    m = IndRNN(2, 4, 2, batch_first=True, compile=False)
    with torch.no_grad():
        m.weight_hh_l0.fill_(3.0)
        m.weight_hh_l1.fill_(-3.0)
    m(torch.randn(1, 10, 2))  # training forward: u projected onto |u| <= 2^(1/10)
    assert torch.allclose(m.weight_hh_l0, torch.full((4,), 2 ** 0.1))
    assert torch.allclose(m.weight_hh_l1, torch.full((4,), -(2 ** 0.1)))
    assert m.weight_hh_l0.shape == (4,)
    m.eval()
    with torch.no_grad():
        m.weight_hh_l0.fill_(3.0)
    m(torch.randn(1, 10, 2))  # evaluation never changes a weight
    assert float(m.weight_hh_l0.max()) == 3.0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "fast"}, "mode='fast' is not one of parallel, log, sequential"),
    ({"compile": "yes"}, "compile='yes' is not one of None, True, False"),
])
def test_bad_arguments_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MinGRU(3, 4, **kwargs)
    with pytest.raises(ValueError, match="recurrent_max must be a number > 0"):
        IndRNN(3, 4, recurrent_max=0)
