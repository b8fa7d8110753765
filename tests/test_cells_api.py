"""Constructor arguments, parameter names/shapes, state dicts, forget_bias, the compile switch."""

from __future__ import annotations

import warnings

import pytest
import torch

from rnnlab import cells
from rnnlab.cells import GRU, LSTM, RNN, compile_cache, initialize_recurrent


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: GRU(3, 4, reset="sideways"), "reset='sideways' is not one of after, before"),
        (lambda: GRU(3, 4, variant="xyz"), "variant='xyz' is not one of gru, no_reset, mgu"),
        (lambda: LSTM(3, 4, variant="xyz"),
         "variant='xyz' is not one of torch, vanilla, nig, nfg, nog, niaf, noaf, np, cifg, fgr"),
        (lambda: RNN(3, 4, nonlinearity="sigmoid"),
         "nonlinearity='sigmoid' is not one of tanh, relu"),
    ],
)
def test_bad_choice_is_one_clear_line(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message


@pytest.mark.parametrize(
    "make",
    [
        lambda: GRU(0, 4),
        lambda: GRU(3, 4, num_layers=0),
        lambda: LSTM(3, 4, dropout=1.5),
        lambda: LSTM(3, 4, bidirectional=True),
        lambda: LSTM(3, 4, forget_bias="big"),
        lambda: LSTM(3, 4, bias=False, forget_bias=1.0),
        lambda: RNN(3, 4, compile="yes"),
    ],
)
def test_other_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_bad_forward_arguments():
    m = GRU(3, 4, compile=False)
    with pytest.raises(ValueError, match="input_size"):
        m(torch.randn(5, 2, 7))
    with pytest.raises(ValueError, match="lengths"):
        m(torch.randn(5, 2, 3), lengths=torch.tensor([6, 2]))
    with pytest.raises(ValueError, match="lengths"):
        m(torch.randn(5, 2, 3), lengths=torch.tensor([5]))
    with pytest.raises(ValueError, match="hx"):
        m(torch.randn(5, 2, 3), torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="tuple"):
        LSTM(3, 4, compile=False)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_torch_state_dict_loads_and_names_match(name):
    ref = getattr(torch.nn, name)(3, 4, num_layers=2)
    ours = getattr(cells, name)(3, 4, num_layers=2, compile=False)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (n1, p1), (n2, p2) in zip(ours.named_parameters(), ref.named_parameters()):
        assert n1 == n2 and p1.shape == p2.shape
    ours.load_state_dict(ref.state_dict())  # strict
    ref.load_state_dict(ours.state_dict())
    torch.manual_seed(0)
    H = 16
    bound = 1 / H**0.5
    fresh = getattr(cells, name)(3, H, num_layers=2, compile=False)
    for p in fresh.parameters():  # torch.nn's init: uniform(-1/sqrt(H), 1/sqrt(H)), std b/sqrt(3)
        assert p.abs().max() <= bound and 0.4 * bound < p.std() < 0.75 * bound


def test_bias_false_and_unbatched():
    torch.manual_seed(0)
    ref = torch.nn.GRU(3, 4, num_layers=2, bias=False)
    ours = GRU(3, 4, num_layers=2, bias=False, compile=False)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3)  # unbatched (T, I), as torch.nn accepts
    (a, ha), (b, hb) = ours(x), ref(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ha, hb)
    assert ha.shape == (2, 4)


def test_variant_parameter_shapes():
    H, I = 4, 3
    def shapes(m):
        return {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes(GRU(I, H, variant="mgu")) == {
        "weight_ih_l0": (2 * H, I), "weight_hh_l0": (2 * H, H),
        "bias_ih_l0": (2 * H,), "bias_hh_l0": (2 * H,),
    }
    assert shapes(GRU(I, H, variant="no_reset"))["weight_hh_l0"] == (2 * H, H)
    assert shapes(LSTM(I, H, variant="vanilla"))["weight_peephole_l0"] == (3, H)
    assert "weight_peephole_l0" not in shapes(LSTM(I, H, variant="np"))
    assert "weight_peephole_l0" not in shapes(LSTM(I, H, variant="torch"))
    for v in ("nig", "nfg", "nog", "cifg"):
        s = shapes(LSTM(I, H, 2, variant=v))
        assert s["weight_ih_l1"] == (3 * H, H) and s["weight_peephole_l1"] == (2, H)
    s = shapes(LSTM(I, H, variant="fgr"))
    assert s["weight_gg_l0"] == (3 * H, 3 * H) and s["weight_hh_l0"] == (4 * H, H)
    assert GRU(I, H, variant="mgu").reset == "before"
    assert GRU(I, H, variant="mgu", reset="after").reset == "after"


@pytest.mark.parametrize("variant", ["torch", "vanilla", "nig", "nog", "fgr", "cifg", "nfg"])
def test_forget_bias(variant):
    H = 5
    m = LSTM(3, H, 2, variant=variant, forget_bias=1.5, compile=False)
    names = m.gate_names
    for layer in range(2):
        b_ih, b_hh = getattr(m, f"bias_ih_l{layer}"), getattr(m, f"bias_hh_l{layer}")
        if "f" in names:
            k = names.index("f")
            assert ((b_ih[k * H : (k + 1) * H] == 1.5).all()
                    and (b_hh[k * H : (k + 1) * H] == 0).all())
        elif variant == "cifg":  # f = 1 - i = sigmoid(-a_i): the input gate carries -forget_bias
            k = names.index("i")
            assert (b_ih[k * H : (k + 1) * H] == -1.5).all()
    # the shared initialiser agrees (it defers to the cell, which knows its gate layout)
    m2 = LSTM(3, H, 2, variant=variant, compile=False)
    m2.load_state_dict(m.state_dict())
    initialize_recurrent(m2, "default", forget_bias=1.5)
    for (n, a), (_, b) in zip(m.named_parameters(), m2.named_parameters()):
        assert torch.equal(a, b), n


def test_forget_bias_torch_variant_matches_torch_initializer():
    m = LSTM(3, 4, variant="torch", forget_bias=2.0, compile=False)
    ref = torch.nn.LSTM(3, 4)
    ref.load_state_dict(m.state_dict())
    initialize_recurrent(ref, "default", forget_bias=2.0)
    assert torch.equal(ref.bias_ih_l0, m.bias_ih_l0) and torch.equal(ref.bias_hh_l0, m.bias_hh_l0)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    m = GRU(3, 8, num_layers=2, dropout=0.5, compile=False)
    x = torch.randn(6, 4, 3)
    m.eval()
    a, _ = m(x)
    b, _ = m(x)
    torch.testing.assert_close(a, b)
    m.train()
    c, _ = m(x)
    assert not torch.allclose(a, c)
    c.sum().backward()
    assert m.hidden_grad_norms.shape == (2, 6, 4)
    with pytest.warns(UserWarning, match="dropout"):
        GRU(3, 4, dropout=0.2)


def test_compile_switch(monkeypatch):
    monkeypatch.setenv("RNNLAB_COMPILE", "0")
    assert compile_cache.compile_enabled(None) is False
    assert compile_cache.compile_enabled(True) is True
    monkeypatch.setenv("RNNLAB_COMPILE", "1")
    assert compile_cache.compile_enabled(None) is True
    assert compile_cache.compile_enabled(False) is False
    monkeypatch.delenv("RNNLAB_COMPILE")
    assert compile_cache.compile_enabled(None) is True


def test_compiled_step_is_called_directly_only_when_that_gives_the_same_outputs():
    args = (torch.arange(6.0).reshape(2, 3),)
    expected = (args[0] * 2,)

    def wrapped(*a):
        return (a[0] * 2,)

    wrapped.current_callable = lambda boxed: (boxed[0] * 2,)  # the generated code's convention
    direct = compile_cache._direct(wrapped, args, expected)
    assert direct is not None and torch.equal(direct(*args)[0], expected[0])
    wrapped.current_callable = lambda boxed: (boxed[0] * 3,)  # not the same function: refused
    assert compile_cache._direct(wrapped, args, expected) is None
    wrapped.current_callable = lambda a, b: a  # another calling convention: refused
    assert compile_cache._direct(wrapped, args, expected) is None
    del wrapped.current_callable  # nothing to unwrap
    assert compile_cache._direct(wrapped, args, expected) is None


def test_a_step_graph_compiled_again_is_loaded_from_inductors_cache(monkeypatch, tmp_path):
    """A second process (here: a second compile of the same graph) loads the generated code from
    the FX graph cache instead of generating it again; without a ShapeEnv inductor bypasses that
    cache and every run paid about a second per step function."""
    from torch._dynamo.utils import counters

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    args = (torch.randn(4, 8), torch.randn(8, 8))

    def step(x, w):
        return (torch.tanh(x @ w + 1.0),)

    counters.clear()
    first = compile_cache._inductor_compile(step, args)
    assert counters["inductor"]["fxgraph_cache_bypass"] == 0
    assert counters["inductor"]["fxgraph_cache_miss"] == 1
    again = compile_cache._inductor_compile(step, args)
    assert counters["inductor"]["fxgraph_cache_hit"] == 1
    assert torch.equal(first(*args)[0], again(*args)[0])
    torch.testing.assert_close(again(*args)[0], step(*args)[0])


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken(fn, args):
        raise RuntimeError("no C++ compiler found\nsecond line")

    monkeypatch.setattr(compile_cache, "_inductor_compile", broken)
    monkeypatch.setattr(compile_cache._CompileState, "failed", False)
    # A shape no other test compiled (step functions cache per shape across tests in a worker),
    # compiled at its first sight.
    monkeypatch.setattr(compile_cache._CompileState, "compile_after", 1)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2)
    m = RNN(2, 11, compile=True)
    eager = RNN(2, 11, compile=False)
    eager.load_state_dict(m.state_dict())
    # the tanh RNN's step functions are shared by every RNN in this worker: fresh ones here, so
    # that their "failed, run eager" state does not leak into later tests
    shared = m.recurrence()._fns
    before = dict(shared)
    shared.clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out, _ = m(x)
            out.sum().backward()
            out2, _ = m(x)
    finally:
        shared.clear()
        shared.update(before)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1 and "eager" in msgs[0] and "\n" not in msgs[0]
    torch.testing.assert_close(out, eager(x)[0])
    torch.testing.assert_close(out2, out)


def _fresh_rnn_steps(m):
    """The tanh RNN's step functions are shared by every RNN in this worker: a test that breaks
    compilation swaps in fresh ones, so that their "failed, run eager" state does not leak."""
    shared = m.recurrence()._fns
    before = dict(shared)
    shared.clear()
    return lambda: (shared.clear(), shared.update(before))


def test_a_failed_compile_is_recorded_and_its_whole_message_shown_on_request(monkeypatch):
    def broken(fn, args):
        raise RuntimeError("CppCompileError: g++ failed\nerror: the whole message")

    monkeypatch.setattr(compile_cache, "_inductor_compile", broken)
    monkeypatch.setattr(compile_cache._CompileState, "failed", False)
    monkeypatch.setattr(compile_cache._CompileState, "compile_after", 1)
    monkeypatch.setenv("RNNLAB_COMPILE_ERRORS", "full")
    m = RNN(2, 13, compile=True)
    mark = compile_cache.eager_calls()
    restore = _fresh_rnn_steps(m)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m(torch.randn(4, 3, 2))[0].sum().backward()
    finally:
        restore()
    assert any("error: the whole message" in str(w.message) for w in caught)
    fallbacks = compile_cache.eager_fallbacks(mark)
    assert fallbacks and all(e == "RuntimeError: CppCompileError: g++ failed"
                             for e in fallbacks.values())
    assert compile_cache.eager_fallbacks(compile_cache.eager_calls()) == {}  # since a new mark


def test_new_shapes_compile_only_when_they_recur(monkeypatch):
    compiled = []

    def fake_compile(fn, args):  # stands in for inductor: records which shapes get compiled
        compiled.append(args[0].shape[0])
        return fn

    monkeypatch.setattr(compile_cache, "_inductor_compile", fake_compile)
    monkeypatch.setattr(compile_cache._CompileState, "failed", False)
    sf = compile_cache.StepFunction(lambda a: (a + 1,), "test")
    def call(b):
        return sf.specialize((torch.zeros(b, 3),), True)
    call(8)
    assert compiled == [8]  # the first shape at once
    call(5), call(5)
    assert compiled == [8]  # a one-off shape runs eager
    call(5)
    assert compiled == [8, 5]  # ... until it has come back compile_after times
    call(8), call(5)
    assert compiled == [8, 5]
    # the counts of shapes not (yet) compiled stay bounded: a stream of one-off shapes
    for b in range(100, 100 + 10 * compile_cache._CompileState.max_signatures):
        call(b)
    assert compiled == [8, 5]
    assert len(sf._seen) <= 4 * compile_cache._CompileState.max_signatures


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_a_smaller_batch_is_padded_onto_the_compiled_graphs(cls, monkeypatch):
    """An epoch's ragged last batch reuses the graphs compiled for the full batch (no compile
    mid-run), with the same outputs, gradients and recorded norms as eager; a batch more than
    4x smaller, and a training batch that draws random numbers per row, are not padded."""
    batches = []

    def fake_compile(fn, args):  # stands in for inductor: records the batch of each graph
        batches.append(args[0].shape[0])
        return fn

    monkeypatch.setenv("RNNLAB_NATIVE", "0")  # the per-step graphs (the native loops: no graphs)
    monkeypatch.setattr(compile_cache, "_inductor_compile", fake_compile)
    monkeypatch.setattr(compile_cache._CompileState, "failed", False)
    monkeypatch.setattr(compile_cache._CompileState, "compile_after", 1)
    torch.manual_seed(0)
    m = cls(3, 5, 2, batch_first=True, compile=True, dtype=torch.float64)
    ref = cls(3, 5, 2, batch_first=True, compile=False, dtype=torch.float64)
    ref.load_state_dict(m.state_dict())
    m(torch.randn(12, 7, 3, dtype=torch.float64))[0].sum().backward()
    assert set(batches) == {12}
    for lengths in (None, torch.tensor([7, 2, 5, 1])):
        x = torch.randn(4, 7, 3, dtype=torch.float64, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_()
        m.zero_grad(), ref.zero_grad()
        out, _ = m(x, lengths=lengths)
        out_ref, _ = ref(x_ref, lengths=lengths)
        (out * out).sum().backward()
        (out_ref * out_ref).sum().backward()
        torch.testing.assert_close(out, out_ref)
        torch.testing.assert_close(x.grad, x_ref.grad)
        for p, q in zip(m.parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad)
        torch.testing.assert_close(m.hidden_grad_norms, ref.hidden_grad_norms)
    assert set(batches) == {12}, "the batch of 4 ran on the graphs compiled for 12"
    m(torch.randn(2, 7, 3, dtype=torch.float64))  # 6x smaller: its own graphs
    assert 2 in batches
    dropped = cls(3, 5, 2, batch_first=True, compile=True, dropout=0.5)
    dropped(torch.randn(12, 7, 3))
    batches.clear()
    dropped(torch.randn(4, 7, 3))  # training with dropout: rows draw random numbers
    assert 4 in batches


def test_a_graph_traced_under_autocast_never_serves_a_float32_call(monkeypatch):
    traced = []

    def fake_compile(fn, args):  # records the autocast state each graph was traced under
        traced.append(torch.is_autocast_enabled("cpu"))
        return fn

    monkeypatch.setattr(compile_cache, "_inductor_compile", fake_compile)
    monkeypatch.setattr(compile_cache._CompileState, "compile_after", 1)
    sf = compile_cache.StepFunction(lambda a: (a + 1,), "test")
    args = (torch.zeros(4, 3),)  # the same tensors both times: only the autocast state differs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sf.specialize(args, True)
    sf.specialize(args, True)
    assert traced == [True, False]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sf.specialize(args, True)
    assert traced == [True, False]  # cached per state


def test_compiles_are_serialised_and_a_failure_stays_with_its_step_function(monkeypatch):
    import threading
    import time

    active, peak = [0], [0]

    def fake_compile(fn, args):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        active[0] -= 1
        if fn is broken_fn:
            raise RuntimeError("inductor bug")
        return fn

    def broken_fn(a):
        return (a - 1,)

    monkeypatch.setattr(compile_cache, "_inductor_compile", fake_compile)
    monkeypatch.setattr(compile_cache._CompileState, "failed", False)
    functions = [compile_cache.StepFunction(lambda a, k=k: (a + k,), f"f{k}") for k in range(4)]
    broken = compile_cache.StepFunction(broken_fn, "broken")
    threads = [threading.Thread(target=f.specialize, args=((torch.zeros(2, 2),), True))
               for f in [*functions, broken]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert peak[0] == 1  # never two compiles at once
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert broken.specialize((torch.zeros(2, 2),), True) is broken_fn  # eager from now on
    assert all(len(f._cache) == 1 for f in functions)  # the others compiled all the same


_NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# on the CPU every cell, both dtypes and both placements of the backward: test_cells_autocast.py
AUTOCAST_CASES = [
    pytest.param("cuda", dtype, compile, marks=_NEEDS_CUDA,
                 id=f"cuda-{str(dtype)[6:]}-{'compiled' if compile else 'eager'}")
    for dtype in (torch.bfloat16, torch.float16) for compile in (False, True)
]


@pytest.mark.parametrize("device,dtype,compile", AUTOCAST_CASES)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_autocast_gradients_are_finite_and_close_to_float32_and_torch_nn(
    cell, device, dtype, compile
):
    """Autocast runs the step matmuls in bf16/fp16 (states and gates stay float32), as it does
    for torch.nn's cells: gradients within 2% (relative norm) of float32 and of torch.nn (cuDNN
    on CUDA) under the same autocast."""
    from rnnlab.cells import GRU, LSTM

    torch.manual_seed(0)
    ours = {"gru": GRU, "lstm": LSTM}[cell](16, 32, compile=compile, device=device)
    ref = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](16, 32, device=device)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(20, 8, 16, device=device)

    def grads(module, autocast):
        module.zero_grad()
        with torch.autocast(device, dtype=dtype, enabled=autocast):
            out, _ = module(x)
        out.float().pow(2).mean().backward()
        return torch.cat([p.grad.flatten() for p in module.parameters()])

    low, f32 = grads(ours, True), grads(ours, False)
    assert torch.isfinite(low).all()
    assert (low - f32).norm() / f32.norm() < 0.02
    try:
        nn_low = grads(ref, True)
    except RuntimeError as error:  # oneDNN has no bf16 LSTM on CPUs without bf16 support
        assert device == "cpu" and "primitive" in str(error)
        return
    assert (low - nn_low).norm() / f32.norm() < 0.02
