"""Every variant's hand-written backward: torch.autograd.gradcheck in float64, and agreement with
autograd through the plain reference equations (test_cells_reference.py), ragged lengths included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).parent))
from test_cells_reference import reference_forward

from rnnlab.cells import GRU, LSTM, RNN

F64 = torch.float64

VARIANTS = (
    [("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"})]
    + [
        ("GRU", {"variant": v, "reset": r})
        for v, r in [
            ("gru", "after"), ("gru", "before"), ("no_reset", "after"), ("mgu", "before"),
            ("mgu", "after"),
        ]
    ]
    + [
        ("LSTM", {"variant": v})
        for v in ["torch", "vanilla", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr"]
    ]
)
IDS = [f"{k}-" + "-".join(str(v) for v in kw.values()) for k, kw in VARIANTS]
CLASSES = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}


def _make(kind, kw, *sizes, **extra):
    return CLASSES[kind](*sizes, compile=False, dtype=F64, **kw, **extra)


def _hx(kind, L, B, H, gen):
    n = 2 if kind == "LSTM" else 1
    return tuple(
        (0.5 * torch.randn(L, B, H, dtype=F64, generator=gen)).requires_grad_() for _ in range(n)
    )


@pytest.mark.parametrize("kind,kw", VARIANTS, ids=IDS)
def test_gradcheck(kind, kw):
    gen = torch.Generator().manual_seed(1)
    T, B, I, H, L = 4, 3, 2, 3, 2
    torch.manual_seed(2)
    m = _make(kind, kw, I, H, L)
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    x = torch.randn(T, B, I, dtype=F64, generator=gen, requires_grad=True)
    hx = _hx(kind, L, B, H, gen)
    lengths = torch.tensor([4, 1, 3])

    nh = len(hx)

    def f(x, *rest):
        h, ps = rest[:nh], rest[nh:]
        h = h if kind == "LSTM" else h[0]
        out, fin = functional_call(m, dict(zip(names, ps)), (x, h), {"lengths": lengths})
        fin = fin if kind == "LSTM" else (fin,)
        return (out, *fin)

    assert torch.autograd.gradcheck(f, (x, *hx, *params), eps=1e-6, atol=1e-7, rtol=1e-5)


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@pytest.mark.parametrize("kind,kw", VARIANTS, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_autograd_reference(kind, kw, seed):
    gen = torch.Generator().manual_seed(seed)
    def ri(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))
    T, B, I, H, L = ri(3, 9), ri(1, 5), ri(1, 6), ri(2, 7), ri(1, 3)
    batch_first, ragged, with_hx, bias = (seed == 1, seed == 0 or B > 2, seed == 0,
                                          seed == 0 or L > 1)
    torch.manual_seed(seed)
    m = _make(kind, kw, I, H, L, batch_first=batch_first, bias=bias)
    with torch.no_grad():  # larger weights than the default init: more nonlinear regime
        for p in m.parameters():
            p.mul_(2.0)
    x = torch.randn(*((B, T) if batch_first else (T, B)), I, dtype=F64, generator=gen)
    x.requires_grad_()
    hx = _hx(kind, L, B, H, gen) if with_hx else None
    lengths = None
    if ragged:
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
    hx_arg = None if hx is None else (hx if kind == "LSTM" else hx[0])

    out, fin = m(x, hx_arg, lengths=lengths)
    fin = fin if kind == "LSTM" else (fin,)
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
