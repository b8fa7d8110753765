"""``layer_norm`` and ``zoneout`` on the scratch GRU/LSTM: hand-written backward against gradcheck
and against autograd through an unrolled reference written here from the papers' equations
(Ba et al. 2016 with ``F.layer_norm``, haste's placement; Krueger et al. 2017), recorded
‖∂L/∂h_t‖ against that reference's ``retain_grad``, zoneout's train/eval semantics, the option
checks and the unchanged defaults.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from rnnlab.cells import GRU, LSTM, compile_cache, initialize_recurrent

F64 = torch.float64
sig, tanh = torch.sigmoid, torch.tanh

GRU_KW = {
    "gru-after": {"variant": "gru", "reset": "after"},
    "gru-before": {"variant": "gru", "reset": "before"},
    "no_reset": {"variant": "no_reset"},
    "mgu-before": {"variant": "mgu", "reset": "before"},
    "mgu-after": {"variant": "mgu", "reset": "after"},
}
LSTM_VARIANTS = ["torch", "vanilla", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr"]
ALL = [(GRU, kw, name) for name, kw in GRU_KW.items()] + [
    (LSTM, {"variant": v}, f"lstm-{v}") for v in LSTM_VARIANTS
]
GRADCHECK = [c for c in ALL if c[2] in ("gru-after", "gru-before", "mgu-before")] + [
    c for c in ALL if c[2] in ("lstm-torch", "lstm-vanilla", "lstm-cifg", "lstm-fgr")
]


# ---- the reference: one line per equation, autograd differentiates it ----------------------


def _blocks(t, names):
    return dict(zip(names, t.chunk(len(names), -1)))


def _ln(y, gain, shift=None):
    return F.layer_norm(y, (y.shape[-1],), weight=gain, bias=shift, eps=1e-5)


def _zone(d, prev, new):
    return new if d is None else d * prev + (1 - d) * new


def reference_step(m, P, x, state, d):
    """One step of ``m`` with parameters ``P`` (names without the ``_l{k}``); ``d`` = None, or
    the zoneout mask(s) for this step (tensors, or the float p in eval)."""
    ln = m.layer_norm
    w_ih, w_hh = P["weight_ih"], P["weight_hh"]
    b_ih = P.get("bias_ih", torch.zeros(w_ih.shape[0], dtype=x.dtype))
    b_hh = P.get("bias_hh", torch.zeros(w_hh.shape[0], dtype=x.dtype))
    xi = _ln(x @ w_ih.T, P["ln_weight_ih"]) if ln else x @ w_ih.T
    h = state[0]
    if isinstance(m, GRU):
        names = {"gru": "rzn", "no_reset": "zn", "mgu": "fn"}[m.variant]
        X = _blocks(xi + b_ih, names)
        gate_names = names[:-1]
        if m.reset == "after" or m.variant == "no_reset":
            hh = _ln(h @ w_hh.T, P["ln_weight_hh"]) if ln else h @ w_hh.T
            R = _blocks(hh + b_hh, names)
            s = {k: sig(X[k] + R[k]) for k in gate_names}
            reset = s.get("r", s.get("f"))
            n = tanh(X["n"] + (R["n"] if reset is None else reset * R["n"]))
        else:  # reset before: gate rows and candidate rows normalised separately
            k = len(gate_names) * h.shape[1]
            B = _blocks(b_hh, names)
            hg = h @ w_hh[:k].T
            hg = _ln(hg, P["ln_weight_hh"][:k]) if ln else hg
            pre = _blocks(hg, gate_names)
            s = {g: sig(X[g] + pre[g] + B[g]) for g in gate_names}
            u = s.get("r", s.get("f")) * h
            hn = u @ w_hh[k:].T
            hn = _ln(hn, P["ln_weight_hh"][k:]) if ln else hn
            n = tanh(X["n"] + hn + B["n"])
        keep = 1 - s["f"] if m.variant == "mgu" else s["z"]
        new = (1 - keep) * n + keep * h
        return (_zone(None if d is None else d[0], h, new),)
    # LSTM
    v, c = m.variant, state[1]
    names = {"nig": "fgo", "nfg": "igo", "nog": "ifg", "cifg": "igo"}.get(v, "ifgo")
    hh = _ln(h @ w_hh.T, P["ln_weight_hh"]) if ln else h @ w_hh.T
    A = _blocks(xi + b_ih + hh + b_hh, names)
    peep = {}
    if v not in ("torch", "np"):
        peep = dict(zip([g for g in "ifo" if g in names], P["weight_peephole"]))
    if v == "fgr":
        R = _blocks(state[2] @ P["weight_gg"].T, "ifo")
        A = {g: A[g] + R[g] if g in R else A[g] for g in A}
    def p(g):
        return peep.get(g, 0.0)
    i = sig(A["i"] + p("i") * c) if "i" in names else torch.ones_like(c)
    f = 1 - i if v == "cifg" else (sig(A["f"] + p("f") * c) if "f" in names else torch.ones_like(c))
    g = A["g"] if v == "niaf" else tanh(A["g"])
    c_new = f * c + i * g
    o = sig(A["o"] + p("o") * c_new) if "o" in names else torch.ones_like(c)
    cn = _ln(c_new, P["ln_weight_c"], P["ln_bias_c"]) if ln else c_new
    h_new = o * cn if v == "noaf" else o * tanh(cn)
    d_h, d_c = (None, None) if d is None else d
    out = (_zone(d_h, h, h_new), _zone(d_c, c, c_new))
    return (*out, torch.cat([i, f, o], -1)) if v == "fgr" else out


def reference_forward(m, x, hx, lengths, masks):
    """Unrolled forward (time-major ``x``); ``masks[layer]`` = the zoneout masks the module drew
    (a tuple of (T, B, H)), or None. Returns (output, finals, hidden[l][t] with retain_grad)."""
    T, B, _ = x.shape
    H, n_user = m.hidden_size, (2 if isinstance(m, LSTM) else 1)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T)[:, None] < torch.as_tensor(lengths)[None, :]).unsqueeze(-1)
    finals, hidden = [[] for _ in range(n_user)], []
    for layer in range(m.num_layers):
        P = {n[: -len(f"_l{layer}")]: p for n, p in m.named_parameters()
             if n.endswith(f"_l{layer}")}
        state = [hx[k][layer] if hx is not None else x.new_zeros(B, H) for k in range(n_user)]
        if isinstance(m, LSTM) and m.variant == "fgr":
            state.append(x.new_zeros(B, 3 * H))
        outs, hs = [], []
        for t in range(T):
            d = None
            if m.zoneout and m.training:
                d = tuple(mk[t] for mk in masks[layer])
            elif m.zoneout:
                d = (m.zoneout,) * n_user
            new = reference_step(m, P, x[t], tuple(state), d)
            if valid is not None:  # past the end: the state is frozen, the output 0
                new = tuple(torch.where(valid[t], a, b) for a, b in zip(new, state))
            state = list(new)
            state[0].retain_grad()
            hs.append(state[0])
            outs.append(state[0] if valid is None else state[0] * valid[t])
        for k in range(n_user):
            finals[k].append(state[k])
        hidden.append(hs)
        x = torch.stack(outs)
    return x, tuple(torch.stack(f) for f in finals), hidden


def _capture_masks(m):
    """Record the zoneout masks ``m`` draws, per layer (the module's own per-step inputs)."""
    drawn = {}
    original = m.step_inputs

    def step_inputs(layer, gi):
        drawn[layer] = original(layer, gi)
        return drawn[layer]

    m.step_inputs = step_inputs
    return drawn


def _make(cls, kw, *sizes, **extra):
    return cls(*sizes, compile=extra.pop("compile", False), dtype=F64, **kw, **extra)


def _perturb(m, gen, scale=0.5):
    """Move every parameter off its init (LN gains off 1, biases off 0): a generic point."""
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, dtype=p.dtype, generator=gen))


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


# ---- gradcheck --------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls,kw,name", GRADCHECK, ids=[c[2] for c in GRADCHECK])
def test_gradcheck_layer_norm_and_zoneout(cls, kw, name, train):
    gen = torch.Generator().manual_seed(1)
    lstm = cls is LSTM
    T, B, I, H, L = 3, 3, 2, 2, 2
    m = _make(cls, kw, I, H, L, layer_norm=True, zoneout=0.4).train(train)
    _perturb(m, gen)
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    x = torch.randn(T, B, I, dtype=F64, generator=gen, requires_grad=True)
    hx = tuple(torch.randn(L, B, H, dtype=F64, generator=gen).requires_grad_()
               for _ in range(2 if lstm else 1))
    lengths = torch.tensor([3, 1, 2])

    def f(x, *rest):
        torch.manual_seed(7)  # the same zoneout masks at every call gradcheck makes
        h, ps = rest[: len(hx)], rest[len(hx):]
        out, fin = functional_call(m, dict(zip(names, ps)), (x, h if lstm else h[0]),
                                   {"lengths": lengths})
        return (out, *(fin if lstm else (fin,)))

    if train:  # the masks do something here: some units kept, some not
        torch.manual_seed(7)
        drawn = _capture_masks(m)
        f(x, *hx, *params)
        del m.step_inputs
        d = torch.cat([mk.flatten() for masks in drawn.values() for mk in masks])
        assert 0 < d.sum() < d.numel()
    assert torch.autograd.gradcheck(f, (x, *hx, *params), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_compiled(monkeypatch):
    """The inductor-compiled step graphs with layer norm and zoneout (LSTM: both masks, the
    cell normalisation, peepholes), ragged, one layer; then eval mode through the same graphs."""
    monkeypatch.setattr(compile_cache._CompileState, "compile_after", 1)
    gen = torch.Generator().manual_seed(2)
    kw = {"variant": "vanilla", "layer_norm": True, "zoneout": 0.3}
    m = LSTM(2, 2, 1, compile=True, dtype=F64, **kw)
    _perturb(m, gen)
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    x = torch.randn(3, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    lengths = torch.tensor([3, 2])

    def f(x, *ps):
        torch.manual_seed(3)
        out, (h, c) = functional_call(m, dict(zip(names, ps)), (x,), {"lengths": lengths})
        return out, h, c

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-7, rtol=1e-5)
    fwd = m.recurrence().forward_fn(True, 2)
    assert len(fwd._cache) == 1 and not fwd._failed  # it really ran compiled

    eager = LSTM(2, 2, 1, compile=False, dtype=F64, **kw)
    eager.load_state_dict(m.state_dict())
    got = []
    for module in (m.eval(), eager.eval()):
        out, (h, c) = module(x, lengths=lengths)
        grads = torch.autograd.grad(out.pow(2).sum() + h.sum() + c.sum(), [x, *module.parameters()])
        got.append((out, h, c, module.hidden_grad_norms, *grads))
    for a, b in zip(*got):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert len(fwd._cache) == 1  # eval's d ≡ p has the masks' signature: no second compile


# ---- against the unrolled reference: outputs, every gradient, the recorded norms ------------


OPTIONS = {
    "ln": {"layer_norm": True},
    "zo-train": {"zoneout": 0.35},
    "zo-eval": {"zoneout": 0.35},
    "ln-zo-train": {"layer_norm": True, "zoneout": 0.35},
    "ln-zo-eval": {"layer_norm": True, "zoneout": 0.35},
}


@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("cls,kw,name", ALL, ids=[c[2] for c in ALL])
def test_matches_unrolled_reference_and_norms(cls, kw, name, opt):
    gen = torch.Generator().manual_seed(len(name) + len(opt))
    lstm = cls is LSTM
    T, B, I, H, L = 5, 4, 3, 4, 2
    batch_first = "train" in opt
    m = _make(cls, kw, I, H, L, batch_first=batch_first, **OPTIONS[opt]).train("eval" not in opt)
    _perturb(m, gen)
    x = torch.randn(T, B, I, dtype=F64, generator=gen, requires_grad=True)
    hx = tuple(torch.randn(L, B, H, dtype=F64, generator=gen).requires_grad_()
               for _ in range(2 if lstm else 1))
    lengths = torch.tensor([5, 2, 4, 1])
    wy = torch.randn(T, B, H, dtype=F64, generator=gen)
    wf = [torch.randn(L, B, H, dtype=F64, generator=gen) for _ in hx]

    def loss(out, fin):  # every output and final state matters, each element differently
        return (out * wy).sum() + sum((a * w).sum() for a, w in zip(fin, wf))

    drawn = _capture_masks(m)
    torch.manual_seed(11)
    out, fin = m(x.transpose(0, 1) if batch_first else x, hx if lstm else hx[0], lengths=lengths)
    out = out.transpose(0, 1) if batch_first else out
    fin = fin if lstm else (fin,)
    leaves = [x, *hx, *m.parameters()]
    grads = torch.autograd.grad(loss(out, fin), leaves)
    norms = m.hidden_grad_norms

    rout, rfin, hidden = reference_forward(m, x, hx, lengths, drawn)
    assert _rel(out, rout) <= 1e-12
    for a, b in zip(fin, rfin):
        assert _rel(a, b) <= 1e-12
    loss(rout, rfin).backward()  # fills the leaves' .grad and, by retain_grad, each h_t's
    labels = ["x", "h0", "c0"][: 1 + len(hx)] + [n for n, _ in m.named_parameters()]
    for label, a, leaf in zip(labels, grads, leaves):
        assert _rel(a, leaf.grad) <= 1e-10, label
    # the recorded ‖∂L/∂h_t‖: the total gradient at h_t (0 past a sequence's end)
    ref = torch.stack([h.grad.norm(dim=1) for hs in hidden for h in hs]).reshape(L, T, B)
    ref = ref * (torch.arange(T)[:, None] < lengths[None, :])
    torch.testing.assert_close(norms, ref.float(), rtol=1e-6, atol=1e-7)


# ---- zoneout semantics ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_zoneout_keeps_units_with_probability_p_and_is_reproducible(cls):
    torch.manual_seed(0)
    p, T, B, H = 0.3, 12, 16, 20
    m = cls(3, H, compile=False, zoneout=p)
    x = torch.randn(T, B, 3)
    with torch.no_grad():
        torch.manual_seed(5)
        out, _ = m(x)
        torch.manual_seed(5)
        again, _ = m(x)
        other, _ = m(x)
    assert torch.equal(out, again) and not torch.equal(out, other)
    kept = (out[1:] == out[:-1]).double().mean().item()  # h_t = h_{t-1} exactly: a kept unit
    assert abs(kept - p) < 0.04
    if cls is LSTM:  # c has its own mask: its kept units are (mostly) other units
        torch.manual_seed(5)
        drawn = _capture_masks(m)
        with torch.no_grad():
            m(x)
        d_h, d_c = drawn[0]
        assert not torch.equal(d_h, d_c)
        assert abs(d_c.mean().item() - p) < 0.04


@pytest.mark.parametrize("cls,kw,name", [ALL[0], ALL[3], ALL[6], ALL[-1]],
                         ids=[ALL[i][2] for i in (0, 3, 6, -1)])
def test_zoneout_train_with_p_to_zero_is_the_plain_cell(cls, kw, name):
    torch.manual_seed(0)
    plain = _make(cls, kw, 3, 4, 2, layer_norm=True)
    tiny = _make(cls, kw, 3, 4, 2, layer_norm=True, zoneout=1e-12)
    tiny.load_state_dict(plain.state_dict())
    x = torch.randn(5, 3, 3, dtype=F64)
    lengths = torch.tensor([5, 2, 3])
    results = []
    for m in (plain, tiny):
        out, fin = m(x, lengths=lengths)
        fin = fin if cls is LSTM else (fin,)
        (out.sum() + sum(f.pow(2).sum() for f in fin)).backward()
        results.append((out, *fin, *(p.grad for p in m.parameters()), m.hidden_grad_norms))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_zoneout_eval_is_the_expectation():
    """Eval: h_t = p h_{t-1} + (1 − p) h̃_t, written out for one GRU layer step by step."""
    torch.manual_seed(0)
    p = 0.25
    m = GRU(3, 4, compile=False, dtype=F64, zoneout=p).eval()
    plain = GRU(3, 4, compile=False, dtype=F64)
    plain.load_state_dict(m.state_dict())
    x = torch.randn(6, 2, 3, dtype=F64)
    out, _ = m(x)
    h = torch.zeros(2, 4, dtype=F64)
    for t in range(6):
        _, h_tilde = plain(x[t : t + 1], h[None])
        h = p * h + (1 - p) * h_tilde[0]
        torch.testing.assert_close(out[t], h, rtol=1e-13, atol=1e-15)
    # and the mean over many training masks approaches it (one step from a fixed h0)
    m.train()
    h0 = torch.randn(1, 4096, 4, dtype=F64)
    xs = x[:1, :1].expand(1, 4096, 3)
    with torch.no_grad():
        train_mean = m(xs, h0)[0].mean(1)
        expect = m.eval()(xs, h0)[0].mean(1)
    torch.testing.assert_close(train_mean, expect, atol=0.02, rtol=0)


# ---- options, parameters, init, defaults ------------------------------------------------------


@pytest.mark.parametrize("cls", [GRU, LSTM])
@pytest.mark.parametrize(
    "kw,option",
    [({"zoneout": 1.0}, "zoneout"), ({"zoneout": -0.1}, "zoneout"), ({"zoneout": True}, "zoneout"),
     ({"zoneout": "0.1"}, "zoneout"), ({"zoneout": float("nan")}, "zoneout"),
     ({"layer_norm": 1}, "layer_norm"), ({"layer_norm": "yes"}, "layer_norm"),
     ({"layer_norm": None}, "layer_norm")],
)
def test_bad_options_are_one_clear_line(cls, kw, option):
    with pytest.raises(ValueError) as info:
        cls(3, 4, **kw)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(option)
    assert ("[0, 1)" if option == "zoneout" else "True or False") in msg


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_defaults_unchanged(cls):
    """No new parameters, the same outputs as the explicit defaults and as torch.nn."""
    torch.manual_seed(0)
    ref = getattr(torch.nn, cls.__name__)(3, 4, 2, dtype=F64)
    ours = cls(3, 4, 2, compile=False, dtype=F64)
    explicit = cls(3, 4, 2, compile=False, dtype=F64, layer_norm=False, zoneout=0.0)
    names = [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in ours.named_parameters()] == names
    assert [n for n, _ in explicit.named_parameters()] == names
    ours.load_state_dict(ref.state_dict())
    explicit.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64)
    a, b, r = ours(x)[0], explicit(x)[0], ref(x)[0]
    assert torch.equal(a, b)
    torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-13)
    assert ours.recurrence() is explicit.recurrence()
    assert "layer_norm" not in repr(ours) and "zoneout" not in repr(ours)


def test_parameters_init_repr_and_meta_count():
    G, H, I, L = 12, 3, 2, 2
    m = GRU(I, H, L, layer_norm=True, zoneout=0.1)
    assert [n for n, _ in m.named_parameters()][:6] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "ln_weight_ih_l0",
        "ln_weight_hh_l0"]
    assert (m.ln_weight_ih_l1 == 1).all() and (m.ln_weight_hh_l1 == 1).all()
    assert (m.bias_ih_l0 == 0).all() and (m.bias_hh_l1 == 0).all()  # the LN shifts start at 0
    assert "layer_norm=True, zoneout=0.1" in repr(m)
    lstm = LSTM(I, H, L, variant="vanilla", layer_norm=True, forget_bias=1.0)
    assert lstm.ln_weight_ih_l0.shape == (G,) and lstm.ln_weight_c_l1.shape == (H,)
    assert (lstm.ln_weight_c_l0 == 1).all() and (lstm.ln_bias_c_l0 == 0).all()
    # forget bias: on the bias added after the normalisations (which would cancel it before)
    assert (lstm.bias_ih_l0[H : 2 * H] == 1).all() and (lstm.bias_hh_l0 == 0).all()
    assert (lstm.bias_ih_l0[:H] == 0).all()
    assert "layer_norm=True" in repr(lstm) and "zoneout" not in repr(lstm)
    # init schemes act on weight_hh only and leave the normalisation gains alone
    initialize_recurrent(lstm, "orthogonal", forget_bias=2.0)
    assert (lstm.ln_weight_hh_l0 == 1).all() and (lstm.bias_ih_l1[H : 2 * H] == 2).all()
    initialize_recurrent(m, "identity")
    assert (m.ln_weight_hh_l0 == 1).all()
    # counted on the meta device as param_budget does: +2G per layer, LSTM +2H more
    with torch.device("meta"):
        for cls, kw, extra in [(GRU, {}, 2 * 9), (LSTM, {}, 2 * 12 + 2 * H),
                               (LSTM, {"variant": "cifg"}, 2 * 9 + 2 * H)]:
            def count(m):
                return sum(p.numel() for p in m.parameters())
            plain = count(cls(I, H, L, **kw))
            assert count(cls(I, H, L, layer_norm=True, zoneout=0.5, **kw)) - plain == L * extra
            assert count(cls(I, H, L, zoneout=0.5, **kw)) == plain
