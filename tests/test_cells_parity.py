"""Scratch cells against torch.nn with the same weights, in every form torch.nn's kernel computes
(from the registry, tests/cell_matrix.py: RNN tanh and relu, GRU, LSTM): outputs, final states and
every gradient (input, hx, parameters), over random sizes, 1-3 layers, hx or not, batch_first both
ways and ragged batches (torch.nn on pack_padded_sequence(enforce_sorted=False) padded back to T).
Eager mostly; the compiled fast path is covered once per cell type.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import cell_matrix
from test_cells_reference import torch_packed

from rnnlab import cells

# id -> case: every form torch.nn's kernel computes
KINDS = {case.id: case for case in cell_matrix.torch_nn_forms()}
# the compiled path: each cell's own form (RNN tanh, GRU, LSTM)
COMPILED = [case.id for case in cell_matrix.own_forms() if case.id in KINDS]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _check_parity(kind, dtype, seed, compile=False, force=None, device="cpu"):
    """Build a random case, run ours and torch.nn, compare everything. Returns our module."""
    cell = KINDS[kind]
    gen = torch.Generator().manual_seed(seed)
    def ri(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))
    case = {
        "T": ri(1, 9), "B": ri(1, 6), "I": ri(1, 7), "H": ri(1, 9), "L": ri(1, 3),
        "batch_first": bool(ri(0, 1)), "with_hx": bool(ri(0, 1)), "ragged": bool(ri(0, 2)),
    }
    case.update(force or {})
    T, B, I, H, L = (case[k] for k in "TBIHL")
    torch.manual_seed(seed)
    ref = cell.torch_nn(I, H, L, batch_first=case["batch_first"], dtype=dtype, device=device)
    ours = cell.make(I, H, L, batch_first=case["batch_first"], compile=compile, dtype=dtype,
                     device=device)
    ours.load_state_dict(ref.state_dict())

    shape = (B, T, I) if case["batch_first"] else (T, B, I)
    x = torch.randn(shape, dtype=dtype, generator=gen).to(device)
    n_state = 2 if isinstance(ref, torch.nn.LSTM) else 1
    hx = None
    if case["with_hx"]:
        hx = [torch.randn(L, B, H, dtype=dtype, generator=gen).to(device) for _ in range(n_state)]
    lengths = torch.randint(1, T + 1, (B,), generator=gen) if case["ragged"] else None
    if case.get("lengths") is not None:
        lengths = torch.as_tensor(case["lengths"])

    def run(module, packed):
        xx = x.clone().requires_grad_()
        hh = None if hx is None else [h.clone().requires_grad_() for h in hx]
        h_arg = None if hh is None else (tuple(hh) if n_state == 2 else hh[0])
        if packed and lengths is not None:
            out, fin = torch_packed(module, xx, h_arg, lengths)
        elif packed:
            out, fin = module(xx, h_arg)
        else:
            out, fin = module(xx, h_arg, lengths=lengths)
        fin = fin if n_state == 2 else (fin,)
        # every output matters to the loss (and each element differently)
        w = torch.linspace(-1, 1, out.numel(), dtype=dtype, device=device).reshape(out.shape)
        loss = (out * w).sum() + sum((f * f).sum() for f in fin)
        leaves = [xx, *(hh or []), *module.parameters()]
        return out, fin, torch.autograd.grad(loss, leaves)

    out, fin, grads = run(ours, packed=False)
    rout, rfin, rgrads = run(ref, packed=True)
    tol = TOL[dtype]
    assert out.shape == rout.shape
    assert _rel(out, rout) <= tol, ("output", case)
    for a, b in zip(fin, rfin):
        assert _rel(a, b) <= tol, ("final state", case)
    names = ["input"] + [f"hx{k}" for k in range(len(hx or []))]
    names += [n for n, _ in ours.named_parameters()]
    for name, a, b in zip(names, grads, rgrads):
        assert _rel(a, b) <= tol, (name, case)
    norms = ours.hidden_grad_norms
    assert norms is not None and norms.shape == (L, T, B) and norms.dtype == torch.float32
    return ours


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("seed", range(6))
def test_parity_eager(kind, dtype, seed):
    _check_parity(kind, dtype, seed)


@pytest.mark.parametrize("kind", list(KINDS))
def test_parity_edge_cases(kind):
    # one sequence, length 1; all sequences full (mask dropped); max length < T (tail padding)
    _check_parity(kind, torch.float64, 100, force={"T": 1, "B": 1, "ragged": False})
    _check_parity(kind, torch.float64, 101, force={"T": 5, "B": 3, "lengths": [5, 5, 5]})
    _check_parity(kind, torch.float64, 102, force={"T": 6, "B": 3, "L": 2, "lengths": [2, 4, 1]})


@pytest.mark.parametrize("kind", COMPILED)
def test_parity_compiled(kind):
    """The compiled per-step graphs: same numbers as torch.nn, ragged and not, norms as eager."""
    force = {"T": 7, "B": 4, "I": 3, "H": 8, "L": 2, "with_hx": True}
    ours = _check_parity(kind, torch.float32, 7, compile=True, force=dict(force, ragged=True))
    compiled_norms = ours.hidden_grad_norms
    eager = _check_parity(kind, torch.float32, 7, compile=False, force=dict(force, ragged=True))
    torch.testing.assert_close(compiled_norms, eager.hidden_grad_norms, rtol=1e-5, atol=1e-6)
    _check_parity(kind, torch.float32, 8, compile=True, force=dict(force, ragged=False))


def test_parity_compiled_float64():
    force = {"T": 5, "B": 3, "I": 2, "H": 4, "L": 2, "with_hx": True, "ragged": True}
    _check_parity("gru-gru-after", torch.float64, 9, compile=True, force=force)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_parity_cuda(kind, compile):
    # lengths stay on the CPU for torch.nn's packing; ours accepts them anywhere
    for seed, dtype in [(11, torch.float32), (12, torch.float64)]:
        force = {"T": 6, "B": 4, "I": 3, "H": 8, "L": 2, "with_hx": True, "ragged": True}
        _check_parity(kind, dtype, seed, compile=compile, force=force, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_parity_cuda_graphs(kind, compile, monkeypatch):
    """Each layer's loops captured as CUDA graphs (rnnlab.cells.loop_graph): torch.nn's numbers,
    twice (the capture's first replay, then a replay with new inputs), and the plain loop's
    gradient norms."""
    from rnnlab.cells import loop_graph

    loop_graph.clear()
    monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "1")
    force = {"T": 6, "B": 4, "I": 3, "H": 8, "L": 2, "with_hx": True, "ragged": True}
    for seed, dtype in [(13, torch.float32), (14, torch.float32), (15, torch.float64)]:
        graphed = _check_parity(kind, dtype, seed, compile=compile, force=force, device="cuda")
        monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "0")
        plain = _check_parity(kind, dtype, seed, compile=compile, force=force, device="cuda")
        monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "1")
        torch.testing.assert_close(graphed.hidden_grad_norms, plain.hidden_grad_norms)
    assert any(loop._graphs for loop in loop_graph._LOOPS), "the loops ran as graphs"
    loop_graph.clear()


def test_lengths_on_any_device_type_and_list():
    torch.manual_seed(0)
    m = cells.GRU(3, 4, compile=False)
    x = torch.randn(5, 2, 3)
    a, ha = m(x, lengths=torch.tensor([3, 5]))
    b, hb = m(x, lengths=[3, 5])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ha, hb)
    assert (a[3:, 0] == 0).all() and (a[:3, 0] != 0).all()
