"""Plain reference implementations of every scratch cell variant, differentiated by autograd.

Written from the papers' equations, independently of ``rnnlab.cells`` (which has hand-written
backward passes): an unrolled loop, one line per equation, lengths handled by freezing the state
(``h_t = h_{t-1}`` past a sequence's end, output 0). The other ``test_cells_*`` modules import
:func:`reference_forward` from here; the tests below check the reference itself against torch.nn.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sig, tanh = torch.sigmoid, torch.tanh


def _blocks(t, names):
    return dict(zip(names, t.chunk(len(names), -1)))


def reference_step(module, layer, x, state):
    """One step of ``module``'s variant at ``layer``: x (B, I), state tuple -> new state tuple."""
    P = {n[: -len(f"_l{layer}")]: p for n, p in module.named_parameters()
         if n.endswith(f"_l{layer}")}
    w_ih, w_hh = P["weight_ih"], P["weight_hh"]
    b_ih = P.get("bias_ih", torch.zeros(w_ih.shape[0], dtype=x.dtype))
    b_hh = P.get("bias_hh", torch.zeros(w_hh.shape[0], dtype=x.dtype))
    kind = type(module).__name__
    h = state[0]
    if kind == "RNN":
        a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        return ((torch.relu(a) if module.nonlinearity == "relu" else tanh(a)),)
    if kind == "GRU":
        names = {"gru": "rzn", "no_reset": "zn", "mgu": "fn"}[module.variant]
        X = _blocks(x @ w_ih.T + b_ih, names)
        W, B = _blocks(w_hh.T, names), _blocks(b_hh, names)
        if module.variant == "gru":
            r = sig(X["r"] + h @ W["r"] + B["r"])
            z = sig(X["z"] + h @ W["z"] + B["z"])
            if module.reset == "after":
                n = tanh(X["n"] + r * (h @ W["n"] + B["n"]))
            else:
                n = tanh(X["n"] + (r * h) @ W["n"] + B["n"])
            return ((1 - z) * n + z * h,)
        if module.variant == "no_reset":
            z = sig(X["z"] + h @ W["z"] + B["z"])
            n = tanh(X["n"] + h @ W["n"] + B["n"])
            return ((1 - z) * n + z * h,)
        f = sig(X["f"] + h @ W["f"] + B["f"])  # mgu
        if module.reset == "before":
            n = tanh(X["n"] + (f * h) @ W["n"] + B["n"])
        else:
            n = tanh(X["n"] + f * (h @ W["n"] + B["n"]))
        return ((1 - f) * h + f * n,)
    # LSTM
    v = module.variant
    c = state[1]
    names = {"nig": "fgo", "nfg": "igo", "nog": "ifg", "cifg": "igo"}.get(v, "ifgo")
    A = _blocks(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, names)
    peep = {}
    if v not in ("torch", "np"):
        peep = dict(zip([g for g in "ifo" if g in names], P["weight_peephole"]))
    if v == "fgr":
        R = _blocks(state[2] @ P["weight_gg"].T, "ifo")
        for g in "ifo":
            A[g] = A[g] + R[g]
    def p(g):
        return peep.get(g, 0.0)
    i = sig(A["i"] + p("i") * c) if "i" in names else torch.ones_like(c)
    if v == "cifg":
        f = 1 - i
    else:
        f = sig(A["f"] + p("f") * c) if "f" in names else torch.ones_like(c)
    g = A["g"] if v == "niaf" else tanh(A["g"])
    c_new = f * c + i * g
    o = sig(A["o"] + p("o") * c_new) if "o" in names else torch.ones_like(c)
    h_new = o * c_new if v == "noaf" else o * tanh(c_new)
    if v == "fgr":
        return h_new, c_new, torch.cat([i, f, o], -1)
    return h_new, c_new


def reference_forward(module, input, hx=None, lengths=None):
    """Unrolled forward of ``module`` (eval mode, no dropout) with autograd.

    Returns ``(output, finals, hidden)`` where ``finals`` is the tuple of (L, B, H) final states
    the module returns (h_n, or h_n and c_n) and ``hidden[l][t]`` the (B, H) state h_t of layer
    l (a non-leaf with ``retain_grad()``, so ``.grad`` is the total dL/dh_t after backward).
    """
    x = input.transpose(0, 1) if module.batch_first else input
    T, B, _ = x.shape
    H, L = module.hidden_size, module.num_layers
    kind = type(module).__name__
    n_user = 2 if kind == "LSTM" else 1
    if hx is not None and n_user == 1:
        hx = (hx,)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T)[:, None] < torch.as_tensor(lengths)[None, :]).unsqueeze(-1)
    finals = [[] for _ in range(n_user)]
    hidden = []
    for layer in range(L):
        state = [hx[k][layer] if hx is not None else x.new_zeros(B, H) for k in range(n_user)]
        if kind == "LSTM" and module.variant == "fgr":
            state.append(x.new_zeros(B, 3 * H))
        outs, hs = [], []
        for t in range(T):
            new = reference_step(module, layer, x[t], tuple(state))
            if valid is not None:
                new = tuple(torch.where(valid[t], a, b) for a, b in zip(new, state))
            state = list(new)
            state[0].retain_grad()
            hs.append(state[0])
            outs.append(state[0] if valid is None else state[0] * valid[t])
        for k in range(n_user):
            finals[k].append(state[k])
        hidden.append(hs)
        x = torch.stack(outs)
    out = x.transpose(0, 1) if module.batch_first else x
    return out, tuple(torch.stack(f) for f in finals), hidden


def torch_packed(ref, input, hx, lengths):
    """torch.nn ``ref`` on a padded batch via pack_padded_sequence(enforce_sorted=False)."""
    T = input.shape[1] if ref.batch_first else input.shape[0]
    packed = pack_padded_sequence(input, lengths, batch_first=ref.batch_first, enforce_sorted=False)
    out, state = ref(packed, hx)
    out, _ = pad_packed_sequence(out, batch_first=ref.batch_first, total_length=T)
    return out, state


# ---- the reference itself agrees with torch.nn ---------------------------------------------


@pytest.mark.parametrize(
    "kind,kw",
    [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {})],
)
def test_reference_matches_torch_nn(kind, kw):
    from rnnlab import cells

    torch.manual_seed(0)
    dt = torch.float64
    ours = getattr(cells, kind)(3, 4, num_layers=2, compile=False, dtype=dt, **kw)
    ref = getattr(torch.nn, kind)(3, 4, num_layers=2, dtype=dt, **kw)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3, 3, dtype=dt)
    lengths = torch.tensor([5, 2, 3])
    out, finals, _ = reference_forward(ours, x, lengths=lengths)
    tout, tstate = torch_packed(ref, x, None, lengths)
    tfinals = tstate if kind == "LSTM" else (tstate,)
    torch.testing.assert_close(out, tout)
    for a, b in zip(finals, tfinals):
        torch.testing.assert_close(a, b)
