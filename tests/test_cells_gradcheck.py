"""Every cell's hand-written backward, in every form the registry names (tests/cell_matrix.py):
torch.autograd.gradcheck in float64, and agreement with autograd through the plain reference
equations (test_cells_reference.py) where they exist, ragged lengths included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).parent))
import cell_matrix
from test_cells_reference import reference_forward

F64 = torch.float64

# every form of every cell (the features, layer norm and zoneout, have their gradchecks in
# test_cells_layernorm_zoneout.py, on one layer: on two here they cost 30 s)
CASES = cell_matrix.forms()
# the forms the reference equations cover
REFERENCED = cell_matrix.with_reference(cell_matrix.forms())


def _make(case, *sizes, **extra):
    # eval: zoneout is its expectation (deterministic), IndRNN leaves |u| as it is
    return case.make(*sizes, compile=False, dtype=F64, **extra).eval()


def _n_states(m):
    """How many state tensors the module takes as hx and returns (LSTM: h and c)."""
    with torch.no_grad():
        fin = m(torch.zeros(1, 1, m.input_size, dtype=F64))[1]
    return len(fin) if isinstance(fin, tuple) else 1


def _hx(n, L, B, H, gen):
    return tuple(
        (0.5 * torch.randn(L, B, H, dtype=F64, generator=gen)).requires_grad_() for _ in range(n)
    )


@pytest.mark.parametrize("case", cell_matrix.params(CASES))
def test_gradcheck(case):
    gen = torch.Generator().manual_seed(1)
    T, B, I, H, L = 4, 3, 2, 3, 2
    torch.manual_seed(2)
    m = _make(case, I, H, L)
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    x = torch.randn(T, B, I, dtype=F64, generator=gen, requires_grad=True)
    nh = _n_states(m)
    hx = _hx(nh, L, B, H, gen)
    lengths = torch.tensor([4, 1, 3])

    def f(x, *rest):
        h, ps = rest[:nh], rest[nh:]
        h = h if nh > 1 else h[0]
        out, fin = functional_call(m, dict(zip(names, ps)), (x, h), {"lengths": lengths})
        fin = fin if nh > 1 else (fin,)
        return (out, *fin)

    assert torch.autograd.gradcheck(f, (x, *hx, *params), eps=1e-6, atol=1e-7, rtol=1e-5)


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@pytest.mark.parametrize("case", cell_matrix.params(REFERENCED))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_autograd_reference(case, seed):
    gen = torch.Generator().manual_seed(seed)
    def ri(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))
    T, B, I, H, L = ri(3, 9), ri(1, 5), ri(1, 6), ri(2, 7), ri(1, 3)
    batch_first, ragged, with_hx, bias = (seed == 1, seed == 0 or B > 2, seed == 0,
                                          seed == 0 or L > 1)
    torch.manual_seed(seed)
    m = _make(case, I, H, L, batch_first=batch_first, bias=bias)
    nh = _n_states(m)
    with torch.no_grad():  # larger weights than the default init: more nonlinear regime
        for p in m.parameters():
            p.mul_(2.0)
    x = torch.randn(*((B, T) if batch_first else (T, B)), I, dtype=F64, generator=gen)
    x.requires_grad_()
    hx = _hx(nh, L, B, H, gen) if with_hx else None
    lengths = None
    if ragged:
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
    hx_arg = None if hx is None else (hx if nh > 1 else hx[0])

    out, fin = m(x, hx_arg, lengths=lengths)
    fin = fin if nh > 1 else (fin,)
    rout, rfin, _ = reference_forward(m, x, hx_arg, lengths)
    assert _rel(out, rout) <= 1e-12
    for a, b in zip(fin, rfin):
        assert _rel(a, b) <= 1e-12

    # a loss that touches the output and every final state, with random weights
    wy = torch.randn(out.shape, dtype=F64, generator=gen)
    wf = [torch.randn(f.shape, dtype=F64, generator=gen) for f in fin]
    leaves = [x, *(hx or ()), *m.parameters()]

    def loss(out, fin):
        return (out * wy).sum() + sum((f * w).sum() for f, w in zip(fin, wf))

    g = torch.autograd.grad(loss(out, fin), leaves)
    rg = torch.autograd.grad(loss(rout, rfin), leaves)
    labels = ["x", "h0", "c0"][: 1 + len(hx or ())] + [n for n, _ in m.named_parameters()]
    for name, a, b in zip(labels, g, rg):
        assert _rel(a, b) <= 1e-10, name
