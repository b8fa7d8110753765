"""The time loops as CUDA graphs (rnnlab.cells.backends.cuda_graph), checked on the CPU.

A CUDA graph needs a GPU; what can go wrong around it can be checked without one: the static
inputs refilled per call, the outputs cloned out of the graph's fixed storage (two loops in
flight must not share it), the saved tensors stacked and unstacked, the record, the fallbacks.
``ReplayBackend`` stands in for the capture: its outputs live at fixed addresses that every
"replay" overwrites, as a CUDA graph's do. On a GPU, tests/test_cells_parity.py runs the real
capture (scripts/gpu_check.sh).
"""

from __future__ import annotations

import pytest
import torch

from rnnlab.cells import GRU, LSTM, RNN, backends
from rnnlab.cells.backends import cuda_graph as loop_graph
from rnnlab.cells.compile_cache import StepFunction, frozen


class ReplayBackend:
    """Warm-up run, then a "capture" whose outputs' storage stays fixed; ``replay`` runs the
    loop again on the static inputs and writes into that storage."""

    def __init__(self):
        self.captures = 0
        self.replays = 0

    def supports(self, tensor):
        return True

    def capture(self, fn, static_in):
        self.captures += 1
        fn(*static_in)
        with frozen():
            static_out = tuple(fn(*static_in))

        def replay():
            self.replays += 1
            for static, fresh in zip(static_out, fn(*static_in)):
                static.copy_(fresh)

        return replay, static_out


@pytest.fixture
def replay_backend(monkeypatch):
    backend = ReplayBackend()
    loop_graph.clear()  # the loops are shared by every module of a cell: start with no graphs
    monkeypatch.setattr(loop_graph.GraphedLoop, "backend", backend)
    monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "1")
    yield backend
    loop_graph.clear()


CASES = {
    "rnn": (RNN, {}),
    "gru": (GRU, {}),
    "gru_before_ln": (GRU, {"reset": "before", "layer_norm": True}),
    "lstm": (LSTM, {}),
    "lstm_vanilla": (LSTM, {"variant": "vanilla"}),
    "lstm_fgr_zoneout": (LSTM, {"variant": "fgr", "zoneout": 0.2}),
}


def _run(module, x, lengths, hx):
    module.zero_grad()
    x = x.detach().requires_grad_()
    out, h_n = module(x, hx, lengths=lengths)
    finals = h_n if isinstance(h_n, tuple) else (h_n,)
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum() + sum(f.pow(2).sum()
                                                                  for f in finals)
    loss.backward()
    return {"out": out.detach(), **{f"final{k}": f.detach() for k, f in enumerate(finals)},
            "dx": x.grad, "norms": module.hidden_grad_norms,
            **{name: p.grad.clone() for name, p in module.named_parameters()}}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "lengths"])
def test_a_graphed_loop_gives_the_plain_loops_numbers(case, ragged, replay_backend, monkeypatch):
    cls, options = CASES[case]
    torch.manual_seed(0)
    # two layers of one shape (input size = hidden size): both layers' loops share one graph,
    # and the first layer's outputs must survive the second layer's replay
    module = cls(6, 6, num_layers=2, compile=False, **options).double()
    module.train(False)  # zoneout: the expectation (no random masks), so both runs match
    x = torch.randn(7, 3, 6, dtype=torch.double)
    lengths = torch.tensor([7, 4, 1]) if ragged else None
    want = _run_plain(module, x, lengths, monkeypatch)
    for _ in range(2):  # first call captures, the second replays
        got = _run(module, x, lengths, None)
        assert set(got) == set(want)
        for key in want:
            assert torch.equal(got[key], want[key]), key
    assert replay_backend.captures == 2, "one forward and one backward graph for both layers"
    assert replay_backend.replays == 8, "2 calls x 2 layers x (forward + backward)"


def _run_plain(module, x, lengths, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("RNNLAB_CUDA_GRAPHS", "0")
        return _run(module, x, lengths, None)


def test_training_with_random_masks_and_hx(replay_backend, monkeypatch):
    """Zoneout's per-step masks are loop inputs: the graph sees each call's own."""
    torch.manual_seed(1)
    module = LSTM(5, 4, zoneout=0.3, compile=False).double()
    x = torch.randn(6, 2, 5, dtype=torch.double)
    hx = (torch.randn(1, 2, 4, dtype=torch.double), torch.randn(1, 2, 4, dtype=torch.double))
    for seed in (3, 4):
        torch.manual_seed(seed)
        got = _run(module, x, None, hx)
        torch.manual_seed(seed)
        with monkeypatch.context() as m:
            m.setenv("RNNLAB_CUDA_GRAPHS", "0")
            want = _run(module, x, None, hx)
        for key in want:
            assert torch.equal(got[key], want[key]), (seed, key)
    assert replay_backend.captures == 2


def test_compiled_steps_compile_in_the_warm_up_never_in_the_capture(replay_backend,
                                                                     monkeypatch):
    from rnnlab.cells import compile_cache

    frozen_at_compile = []
    real = compile_cache._inductor_compile

    def spy(fn, args):
        frozen_at_compile.append(getattr(compile_cache._FROZEN, "on", False))
        return real(fn, args)

    monkeypatch.setattr(compile_cache, "_inductor_compile", spy)
    # other tests in this process have compiled GRU steps: compile this shape at its first call
    monkeypatch.setattr(compile_cache._CompileState, "compile_after", 1)
    monkeypatch.setattr(compile_cache._CompileState, "max_signatures", 10**6)
    torch.manual_seed(0)
    module = GRU(7, 11, compile=True)  # a shape no other test compiles
    x = torch.randn(5, 3, 7)
    got = _run(module, x, None, None)
    assert frozen_at_compile == [False, False], "forward and backward step, in the warm-ups"
    want = _run_plain(module, x, None, monkeypatch)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_nothing_compiles_while_frozen():
    step = StepFunction(lambda a: (a * 2,), "double")
    a = torch.randn(3)
    with frozen():
        fn = step.specialize([a], compile=True)
    assert fn is step.fn and not step._cache


def test_a_new_length_captures_again_up_to_the_limit(replay_backend, monkeypatch):
    monkeypatch.setattr(loop_graph, "MAX_GRAPHS", 2)
    module = RNN(3, 4, compile=False).double()
    for steps in (2, 3, 4, 5):
        x = torch.randn(steps, 2, 3, dtype=torch.double)
        got = _run(module, x, None, None)
        want = _run_plain(module, x, None, monkeypatch)
        for key in want:
            assert torch.equal(got[key], want[key]), (steps, key)
    assert replay_backend.captures == 4, "T=2 and T=3, forward and backward; then plain loops"


def test_a_failed_capture_warns_once_and_runs_the_plain_loop(monkeypatch):
    class Failing(ReplayBackend):
        def capture(self, fn, static_in):
            raise RuntimeError("operation not permitted when stream is capturing")

    loop_graph.clear()
    monkeypatch.setattr(loop_graph.GraphedLoop, "backend", Failing())
    monkeypatch.setattr(loop_graph.GraphedLoop, "_warned", False)
    monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "1")
    module = GRU(3, 4, compile=False).double()
    x = torch.randn(4, 2, 3, dtype=torch.double)
    with pytest.warns(RuntimeWarning, match="capturing gru.* as a CUDA graph failed"):
        got = _run(module, x, None, None)
    want = _run_plain(module, x, None, monkeypatch)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    loop_graph.clear()


def test_off_by_default_and_never_on_the_cpu(monkeypatch):
    monkeypatch.delenv("RNNLAB_CUDA_GRAPHS", raising=False)
    assert not loop_graph.graphs_enabled(torch.zeros(1))
    monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "1")
    assert not loop_graph.graphs_enabled(torch.zeros(1)), "the real backend captures CUDA only"


def test_a_loop_first_run_under_inference_mode_then_trained(replay_backend, monkeypatch):
    """Lightning validates under torch.inference_mode (the sanity check runs first): a graph
    captured there must not serve training, whose inputs cannot be copied into inference
    tensors."""
    torch.manual_seed(0)
    module = GRU(3, 5, compile=False).double()
    x = torch.randn(4, 2, 3, dtype=torch.double)
    with torch.inference_mode():
        seen, _ = module(x)
    got = _run(module, x, None, None)
    want = _run_plain(module, x, None, monkeypatch)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert torch.equal(seen, want["out"])
    assert replay_backend.captures == 3, (
        "an inference forward, then a training forward and backward")


@pytest.mark.parametrize("graphed", [True, False], ids=["graphed", "plain"])
def test_the_backward_runs_where_the_forward_ran(graphed, replay_backend, monkeypatch):
    """The backend is chosen once per call: switching RNNLAB_CUDA_GRAPHS between a forward and
    its backward changes neither where the backward runs nor a bit of the result."""
    torch.manual_seed(0)
    module = LSTM(3, 5, variant="vanilla", compile=False).double()
    x = torch.randn(4, 2, 3, dtype=torch.double, requires_grad=True)
    want = _run_plain(module, x, None, monkeypatch)
    module.zero_grad()
    monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "1" if graphed else "0")
    out, (h, c) = module(x, lengths=None)
    monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "0" if graphed else "1")
    x.grad = None
    ((out * torch.linspace(-1, 1, 5)).sum() + h.pow(2).sum() + c.pow(2).sum()).backward()
    assert replay_backend.captures == (2 if graphed else 0)
    assert torch.equal(out.detach(), want["out"]) and torch.equal(x.grad, want["dx"])
    assert torch.equal(module.hidden_grad_norms, want["norms"])
    for name, p in module.named_parameters():
        assert torch.equal(p.grad, want[name]), name


def test_the_record_names_the_graphs_and_a_failed_capture(monkeypatch):
    """backends.used(): the layer calls run as graphs, and once a capture has failed, the
    fallback and its reason."""

    class Failing(ReplayBackend):
        def capture(self, fn, static_in):
            raise RuntimeError("operation not permitted when stream is capturing")

    loop_graph.clear()
    monkeypatch.setattr(loop_graph.GraphedLoop, "backend", ReplayBackend())
    monkeypatch.setenv("RNNLAB_CUDA_GRAPHS", "1")
    module = GRU(3, 4, num_layers=2, compile=False).double()
    x = torch.randn(4, 2, 3, dtype=torch.double)
    mark = backends.mark()
    _run(module, x, None, None)
    assert backends.used(mark) == {"cuda_graph/eager": 2, "fallbacks": {}}
    loop_graph.clear()
    monkeypatch.setattr(loop_graph.GraphedLoop, "backend", Failing())
    monkeypatch.setattr(loop_graph.GraphedLoop, "_warned", True)  # warned before: no warning
    mark = backends.mark()
    _run(module, x, None, None)
    used = backends.used(mark)
    assert used["cuda_graph/eager"] == 2
    assert list(used["fallbacks"]) == ["cuda_graph"]
    assert "capturing gru" in used["fallbacks"]["cuda_graph"]
    assert "operation not permitted" in used["fallbacks"]["cuda_graph"]
    assert backends.used(backends.mark()) == {"fallbacks": {}}  # since a new mark: nothing
    loop_graph.clear()
