"""The recorded per-step norms ‖∂L/∂h_t‖ (``hidden_grad_norms``) equal those of an autograd-unrolled
loop with ``retain_grad`` (multi-layer, ragged), and the attribute behaves as the interface says.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_cells_reference import reference_forward

from rnnlab.cells import GRU, LSTM, RNN

F64 = torch.float64
CASES = [
    (RNN, {"nonlinearity": "tanh"}),
    (RNN, {"nonlinearity": "relu"}),
    (GRU, {"variant": "gru", "reset": "after"}),
    (GRU, {"variant": "gru", "reset": "before"}),
    (GRU, {"variant": "mgu"}),
    (GRU, {"variant": "no_reset"}),
    (LSTM, {"variant": "torch"}),
    (LSTM, {"variant": "vanilla"}),
    (LSTM, {"variant": "cifg"}),
    (LSTM, {"variant": "fgr"}),
]
IDS = [c.__name__ + "-" + "-".join(kw.values()) for c, kw in CASES]


def _reference_norms(m, x, hx, lengths, loss_fn):
    out, fin, hidden = reference_forward(m, x, hx, lengths)
    loss_fn(out, fin).backward()
    T = len(hidden[0])
    B = hidden[0][0].shape[0]
    norms = torch.stack([torch.stack([h.grad.norm(dim=1) for h in layer]) for layer in hidden])
    if lengths is not None:
        valid = torch.arange(T)[:, None] < torch.as_tensor(lengths)[None, :]
        norms = norms * valid
    assert norms.shape == (m.num_layers, T, B)
    return norms


@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
def test_norms_match_unrolled_autograd(cls, kw, batch_first):
    torch.manual_seed(3)
    T, B, I, H, L = 7, 4, 3, 5, 3
    m = cls(I, H, L, batch_first=batch_first, compile=False, dtype=F64, **kw)
    x = torch.randn(*((B, T) if batch_first else (T, B)), I, dtype=F64)
    lengths = torch.tensor([5, 7, 1, 3])  # max < T would also be fine; here one is full
    hx = None
    wy = torch.randn(x.shape[:2] + (H,), dtype=F64)

    def loss_fn(out, fin):  # output at every step and the final hidden state both matter
        return (out * wy).sum() + (fin[0] if isinstance(fin, tuple) else fin).pow(2).sum()

    out, fin = m(x, hx, lengths=lengths)
    assert m.hidden_grad_norms is None  # not yet: no backward since this forward
    loss_fn(out, fin).backward()
    got = m.hidden_grad_norms
    ref = _reference_norms(m, x, hx, lengths, loss_fn)
    assert got.dtype == torch.float32 and got.shape == (L, T, B) and not got.requires_grad
    torch.testing.assert_close(got, ref.float(), rtol=1e-6, atol=1e-7)
    assert (got[:, 1:, 2] == 0).all()  # padded steps of the length-1 sequence are 0
    assert (got[:, :5, 0] > 0).all()


def test_norms_with_tail_padding_and_float32():
    """max(lengths) < T: the record still spans T steps; float32 module, two layers."""
    torch.manual_seed(0)
    m = GRU(2, 3, 2, compile=False)
    x = torch.randn(6, 3, 2)
    out, _h = m(x, lengths=torch.tensor([2, 4, 3]))
    out.sum().backward()
    n = m.hidden_grad_norms
    assert n.shape == (2, 6, 3)
    assert (n[:, 4:] == 0).all() and (n[:, :2] > 0).all()
    assert (n[:, 2:, 0] == 0).all()


def test_norms_lifecycle_and_switch():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 3)
    m = LSTM(3, 5, compile=False)
    assert m.record_grad_norms is True and m.hidden_grad_norms is None
    out, _ = m(x)
    out.sum().backward()
    first = m.hidden_grad_norms
    assert first.shape == (1, 4, 2)
    m(x)  # a new forward resets the record: never a stale value
    assert m.hidden_grad_norms is None
    with torch.no_grad():
        m(x)
    assert m.hidden_grad_norms is None
    off = LSTM(3, 5, compile=False, record_grad_norms=False)
    off.load_state_dict(m.state_dict())
    out_off, _ = off(x)
    out_off.sum().backward()
    assert off.hidden_grad_norms is None
    # recording does not change any gradient
    m.zero_grad()
    m(x)[0].sum().backward()
    for a, b in zip(m.parameters(), off.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


def test_norms_only_from_final_state():
    """Loss on h_n only: dL/dh_t is the gradient flowing back from the end (nonzero everywhere)."""
    torch.manual_seed(1)
    m = RNN(2, 4, 2, compile=False, dtype=F64)
    x = torch.randn(5, 3, 2, dtype=F64)
    _, h_n = m(x)
    h_n[-1].sum().backward()
    ref = _reference_norms(m, x, None, None, lambda out, fin: fin[0][-1].sum())
    torch.testing.assert_close(m.hidden_grad_norms, ref.float())
