"""The native time loops (rnnlab.cells.backends.native): the same numbers as the per-step path,
where they apply and only there, bitwise the same on any thread count, and a failed build falls
back. The cells they cover are read from the registry (tests/cell_matrix.py): every form or
feature whose Recurrence names a native kernel."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import cell_matrix  # noqa: E402
from test_cells_parity import KINDS as PARITY_KINDS  # noqa: E402
from test_cells_parity import _check_parity  # noqa: E402

from rnnlab.cells import LSTM, announce, backends  # noqa: E402
from rnnlab.cells.backends import native  # noqa: E402

F32, F64 = torch.float32, torch.float64


def _kernel(case) -> str | None:
    """The native kernel (native.KERNELS' key) a registry case's loops run on, or None."""
    if not case.steps_by_recurrence:
        return None
    return case.make(1, 1).recurrence().native


_CASES = cell_matrix.forms() + cell_matrix.features()
# the cases the native loops cover (LSTM torch/np, GRU, tanh/ReLU RNN, IndRNN) and the rest
COVERED = cell_matrix.params([c for c in _CASES if _kernel(c)])
NOT_COVERED = cell_matrix.params([c for c in _CASES if c.steps_by_recurrence and not _kernel(c)])


def _entry(case) -> str:
    """The native entries' stem: ``lstm`` for lstm_forward / lstm_backward."""
    return native.KERNELS[_kernel(case)].entry


def test_the_registry_brings_the_covered_cells():
    ids = {p.id for p in COVERED}
    assert ids == {"lstm-torch", "lstm-np", "gru-gru-after", "rnn-tanh", "rnn-relu", "indrnn"}


@pytest.fixture(autouse=True)
def _native_on(monkeypatch):
    """These tests opt in to the native loops (tests/conftest.py turns them off for the suite)."""
    monkeypatch.setenv("RNNLAB_NATIVE", "1")
    if native.library() is None:
        pytest.skip("the native loops could not be built here")


@contextlib.contextmanager
def _native(on: bool):
    before = os.environ.get("RNNLAB_NATIVE")
    os.environ["RNNLAB_NATIVE"] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RNNLAB_NATIVE", None)
        else:
            os.environ["RNNLAB_NATIVE"] = before


def _calls(monkeypatch):
    """Counts the native time loops called: entry -> calls (not the products: matmul, outer)."""
    seen: dict[str, int] = {}
    real = native._call

    def counting(entry, *args, **kw):
        if entry not in ("matmul", "outer"):
            seen[entry] = seen.get(entry, 0) + 1
        return real(entry, *args, **kw)

    monkeypatch.setattr(native, "_call", counting)
    return seen


def _run(module, x, lengths, hx=None, native=True):
    """Outputs, final states, gradients of x, hx and every parameter, and the ∂L/∂h_t norms of a
    loss that reads the outputs and the final states; on the native loops, or (``native``
    False) the per-step path."""
    with _native(native):
        return _run_here(module, x, lengths, hx)


def _run_here(module, x, lengths, hx):
    x = x.detach().clone().requires_grad_()
    hx = None if hx is None else tuple(h.detach().clone().requires_grad_() for h in hx)
    module.zero_grad()
    arg = hx if hx is None or len(hx) > 1 else hx[0]
    out, final = module(x, arg, lengths=lengths)
    finals = final if isinstance(final, tuple) else (final,)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    loss = (out * weights).sum() + sum((f * f).sum() for f in finals)
    loss.backward()
    got = {"out": out, "x.grad": x.grad, **{f"final{k}": f for k, f in enumerate(finals)}}
    got.update({n: p.grad for n, p in module.named_parameters()})
    if hx is not None:
        got.update({f"hx{k}.grad": h.grad for k, h in enumerate(hx)})
    if module.record_grad_norms:
        got["norms"] = module.hidden_grad_norms
    return {k: v.detach() for k, v in got.items()}


def _pair(case, I, H, L, dtype, seed=0, **kw):
    """Two modules with the same weights: ours for the native loops (which run whether or not
    the steps compile) and the eager per-step reference (``_run(..., native=False)``). ``case``:
    a registry case, or a class (its own form)."""
    make = case.make if isinstance(case, cell_matrix.Case) else case
    torch.manual_seed(seed)
    ours = make(I, H, L, compile=False, dtype=dtype, **kw)
    ref = make(I, H, L, compile=False, dtype=dtype, **kw)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def _user_states(case) -> int:
    return case.make(1, 1).recurrence().num_user_states


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", COVERED)
@pytest.mark.parametrize("size", [(1, 1, 1, 1), (3, 5, 2, 5), (13, 9, 3, 17), (20, 6, 4, 40),
                                  (9, 4, 20, 24)], ids=lambda s: "B{}T{}I{}H{}".format(*s))
def test_native_loops_equal_the_per_step_path(case, size, dtype, monkeypatch):
    """Outputs, final states, every gradient and the recorded norms, against the eager per-step
    path: with and without lengths (frozen steps, a sequence of length 1), hx given, 2 layers.
    Sizes off the GEMM's tiles (rows of 8 and 4, columns of 2 vectors) take every remainder."""
    B, T, I, H = size
    seen = _calls(monkeypatch)
    ours, ref = _pair(case, I, H, 2, dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, generator=gen, dtype=dtype)
    hx = tuple(torch.randn(2, B, H, generator=gen, dtype=dtype)
               for _ in range(_user_states(case)))
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype is F64 else {"rtol": 2e-5, "atol": 2e-6}
    for lengths in (None, torch.randint(1, T + 1, (B,), generator=gen)):
        if lengths is not None:
            lengths[0] = 1
        for h in (None, hx):
            got, want = _run(ours, x, lengths, h), _run(ref, x, lengths, h, native=False)
            assert got.keys() == want.keys()
            for key in want:
                torch.testing.assert_close(got[key], want[key], **tol, msg=key)
    name = _entry(case)
    assert seen == {f"{name}_forward": 2 * 4, f"{name}_backward": 2 * 4}  # 2 layers, 4 calls


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_the_sequence_level_products_equal_torchs(dtype):
    """native.matmul (the input projection and its input gradient: a thin K, a narrow N, the
    tiled GEMM) and native.outer_sum (the weight gradients; accumulating; a column slice, as the
    GRU's gate block of ∂L/∂gi) against torch, at sizes off every tile."""
    gen = torch.Generator().manual_seed(5)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype is F64 else {"rtol": 1e-4, "atol": 1e-4}

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    for rows, k, n in [(37, 2, 20), (37, 20, 2), (37, 33, 47), (5, 16, 16), (64, 1, 256),
                       (3, 40, 7)]:
        a, b = rand(rows, k), rand(k, n)
        torch.testing.assert_close(native.matmul(a, b), a @ b, **tol)
        torch.testing.assert_close(native.matmul(a.view(1, rows, k), b), (a @ b)[None], **tol)
    for rows, m, n in [(37, 20, 17), (300, 48, 40), (5, 3, 16), (129, 64, 33)]:
        d, u = rand(rows, m), rand(rows, n)
        torch.testing.assert_close(native.outer_sum(d, u), d.t() @ u, **tol)
        start = rand(m, n)
        want = start + d.t() @ u
        torch.testing.assert_close(native.outer_sum(d, u, start), want, **tol)
        wide = rand(rows, m + 5)
        torch.testing.assert_close(native.outer_sum(wide[:, :m], u), wide[:, :m].t() @ u, **tol)
    assert native.outer_sum(rand(9, 4), rand(9, 15)) is None  # too narrow: torch's
    assert native.matmul(rand(4, 3), rand(3, 5).to(F64 if dtype is F32 else F32)) is None


@pytest.mark.parametrize("case", COVERED)
def test_native_loops_gradcheck(case, monkeypatch):
    """float64 gradcheck of the whole module through the native loops (ragged lengths)."""
    seen = _calls(monkeypatch)
    torch.manual_seed(3)
    m = case.make(2, 3, 1, compile=True, dtype=F64)
    x = torch.randn(4, 5, 2, dtype=F64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3, 2, 4])

    def f(x, *params):
        with torch.nn.utils.stateless._reparametrize_module(
                m, dict(zip((n for n, _ in m.named_parameters()), params))):
            out, final = m(x, lengths=lengths)
        return out, *(final if isinstance(final, tuple) else (final,))

    assert torch.autograd.gradcheck(f, (x, *(p.detach().requires_grad_() for p in m.parameters())))
    assert seen.get(f"{_entry(case)}_backward")


def test_results_are_bitwise_the_same_on_any_thread_count():
    """Each thread runs whole rows of the batch with the same arithmetic: 1, 2 or 3 threads
    give the same bits (the split, multiples of 4 rows, leaves 4-, 8- and 1-row tiles) in what
    the loops compute: outputs, final states, the ∂L/∂h_t norms. (The parameter gradients are
    torch's GEMMs over the loops' results, whose sums torch splits by its thread count.)"""
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            for param in COVERED:
                (case,) = param.values
                ours, _ = _pair(case, 3, 33, 1, F32)
                x = torch.randn(7, 29, 3, generator=torch.Generator().manual_seed(2))
                results.append((threads, param.id, _run(ours, x, torch.arange(29) % 7 + 1)))
    finally:
        torch.set_num_threads(before)
    base = {name: r for t, name, r in results if t == 1}
    for threads, name, got in results:
        for key in ("out", "final0", "norms"):
            assert torch.equal(got[key], base[name][key]), (threads, name, key)


@pytest.mark.parametrize("case", NOT_COVERED)
def test_the_native_loops_run_only_where_they_compute_the_cells_equations(case, monkeypatch):
    """Every other form or feature of the registry's step cells (Greff's LSTM variants, the GRU
    with reset before, MGU, layer norm, zoneout) runs step by step."""
    seen = _calls(monkeypatch)
    monkeypatch.setenv("RNNLAB_COMPILE", "1")
    monkeypatch.setattr(native, "native_enabled", lambda: True)
    from rnnlab.cells import compile_cache

    monkeypatch.setattr(compile_cache, "_inductor_compile", lambda fn, args: fn)  # no inductor
    m = case.make(2, 4, compile=True)
    m(torch.randn(3, 2, 2))[0].sum().backward()
    assert seen == {}


@pytest.mark.parametrize("case", COVERED)
def test_the_native_loops_run_with_compilation_off(case, monkeypatch):
    """RNNLAB_NATIVE is their only switch: RNNLAB_COMPILE=0 and compile=False leave them on."""
    seen = _calls(monkeypatch)
    monkeypatch.setenv("RNNLAB_COMPILE", "0")
    case.make(2, 4)(torch.randn(3, 2, 2))[0].sum().backward()
    case.make(2, 4, compile=False)(torch.randn(3, 2, 2))[0].sum().backward()
    name = _entry(case)
    assert seen == {f"{name}_forward": 2, f"{name}_backward": 2}


def test_the_switch_autocast_and_other_dtypes_take_the_per_step_path(monkeypatch):
    from rnnlab.cells import compile_cache

    monkeypatch.setattr(compile_cache, "_inductor_compile", lambda fn, args: fn)
    seen = _calls(monkeypatch)
    m = LSTM(2, 4, compile=True)
    x = torch.randn(3, 2, 2)
    monkeypatch.setenv("RNNLAB_NATIVE", "0")
    m(x)[0].sum().backward()
    monkeypatch.setenv("RNNLAB_NATIVE", "1")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        m(x)[0].float().sum().backward()
    LSTM(2, 4, compile=True, dtype=torch.bfloat16)(x.bfloat16())[0].sum().backward()
    assert seen == {}
    m(x)[0].sum().backward()
    assert seen == {"lstm_forward": 1, "lstm_backward": 1}


def test_inf_and_nan_come_out_as_on_the_per_step_path():
    """A diverging run must show it: no fast-math in the build (it would assume finite); a
    ReLU passes NaN on as torch.relu does."""
    for param in COVERED:
        (case,) = param.values
        ours, ref = _pair(case, 2, 8, 1, F32)
        x = torch.randn(5, 3, 2)
        x[2, 1, 0] = float("inf")
        x[3, 2, 1] = float("nan")
        got, want = _run(ours, x, None), _run(ref, x, None, native=False)
        for key in want:
            assert torch.equal(got[key].isnan(), want[key].isnan()), (param.id, key)
            assert torch.equal(got[key].isinf(), want[key].isinf()), (param.id, key)


@pytest.mark.parametrize("cxx,words,reason", [
    ("no-such-compiler", "cannot be built here (no C++ compiler", "platform unsupported: no C++"),
    ("false", "building the native time loops failed (RuntimeError: ", "build failed: Runtime"),
], ids=["no_compiler", "compiler_fails"])
def test_a_failed_build_warns_once_is_recorded_and_the_per_step_path_runs(cxx, words, reason,
                                                                            monkeypatch, tmp_path):
    monkeypatch.setenv("RNNLAB_NATIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(tmp_path / cxx) if cxx == "no-such-compiler" else cxx)
    native.library.cache_clear()
    mark = backends.mark()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ours, ref = _pair(LSTM, 2, 4, 1, F64)
            x = torch.randn(3, 2, 2, dtype=F64)
            got = _run(ours, x, None)
            _run(ours, x, None)
        msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(msgs) == 1 and "native time loops" in msgs[0] and "\n" not in msgs[0]
        assert words in msgs[0] and cxx in msgs[0]
        want = _run(ref, x, None, native=False)
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-12, atol=1e-12)
        assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
        used = backends.used(mark)
        assert used["step/eager"] == 3 and "native" not in used  # 2 runs of ours, 1 of ref
        assert list(used["fallbacks"]) == ["native"]
        assert used["fallbacks"]["native"].startswith(reason) and cxx in used["fallbacks"]["native"]
    finally:
        native.library.cache_clear()


def test_the_platform_is_checked_before_a_build(monkeypatch, tmp_path):
    """Not Linux, not x86-64/aarch64, no compiler: refused in one line (warned once, recorded)
    without running a compiler; glibc's version decides which vector math the build calls."""
    calls = []
    monkeypatch.setattr(native.subprocess, "run", lambda *a, **kw: calls.append(a))
    monkeypatch.setenv("RNNLAB_NATIVE_CACHE", str(tmp_path))
    for patch, value, words in [("_system", lambda: "darwin", "darwin is not supported"),
                                ("_machine", lambda: "riscv64", "riscv64 is not a supported")]:
        with monkeypatch.context() as m:
            m.setattr(native, patch, value)
            native.library.cache_clear()
            with pytest.warns(RuntimeWarning, match=f"cannot be built here \\({words}"):
                assert native.library() is None
            assert native.Native().unavailable().startswith(f"platform unsupported: {words}")
    native.library.cache_clear()
    assert calls == [] and not any(tmp_path.iterdir())

    def plan(glibc, machine="x86_64"):
        with monkeypatch.context() as m:
            m.setattr(native, "_glibc", lambda: glibc)
            m.setattr(native, "_machine", lambda: machine)
            p = native.build_plan()
        return [f for f in p.flags if f.startswith("-D")], p.libs

    vector = ["-DRNNLAB_VECTOR_EXP=1", "-DRNNLAB_VECTOR_TANH=1"]
    assert plan((2, 36)) == (vector, ("-lmvec", "-lm"))
    assert plan((2, 31)) == (["-DRNNLAB_VECTOR_EXP=1", "-DRNNLAB_VECTOR_TANH=0"], ("-lmvec", "-lm"))
    scalar = (["-DRNNLAB_VECTOR_EXP=0", "-DRNNLAB_VECTOR_TANH=0"], ("-lm",))
    assert plan(None) == plan((2, 36), "aarch64") == scalar  # musl; aarch64: scalar math
    monkeypatch.setenv("RNNLAB_NATIVE_TARGET", "x86-64-v3")
    assert "-march=x86-64-v3" in native.build_plan().flags


_V3 = {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"}  # x86-64-v3's (with LZCNT, XSAVE)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(ln.split(":", 1)[1].split()) for ln in f if ln.startswith("flags")),
                        set())
    except OSError:
        return set()


@pytest.mark.skipif(native._machine() not in ("x86_64", "amd64") or not _V3 <= _cpu_flags(),
                    reason="builds for x86-64-v3: needs an x86-64 CPU with AVX2 and FMA")
@pytest.mark.parametrize("glibc", [None, (2, 31)], ids=["this_glibc", "glibc_2.31"])
def test_the_loops_built_for_avx2_equal_the_per_step_path(glibc, monkeypatch, tmp_path):
    """The path most users' CPUs take: the loops built for x86-64-v3 (AVX2, FMA; not AVX-512),
    their 6x2 tile of 32-byte vectors, against the per-step path; and, as on a glibc older than
    2.35, without libmvec's vector tanh (the library must not name it: it would not load)."""
    monkeypatch.setenv("RNNLAB_NATIVE_TARGET", "x86-64-v3")
    monkeypatch.setenv("RNNLAB_NATIVE_CACHE", str(tmp_path))
    if glibc is not None:
        monkeypatch.setattr(native, "_glibc", lambda: glibc)
    native.library.cache_clear()
    try:
        built = native.built_for()
        assert built is not None
        assert built.startswith("isa=avx2 vector=32 tile=6x2 vector_exp=1"), built
        assert built.endswith(f"vector_tanh={0 if glibc else 1}"), built
        (lib,) = tmp_path.iterdir()  # its own key: the target is in it
        code = lib.read_bytes()
        assert b"_ZGVeN16v_" not in code  # no AVX-512 variant of anything
        # AVX2's vector tanh only where glibc has it (without it the gate loops, which call
        # tanh, run scalar: no vector exp either)
        assert (b"_ZGVdN8v_tanhf" in code) == (b"_ZGVdN8v_expf" in code) == (glibc is None)
        seen = _calls(monkeypatch)
        # 13 rows: tiles of 6, 6 and 1; H = 20: 2-vector, 1-vector and scalar columns; every
        # kernel (each covered case) in float32 and float64
        want_calls = {}
        for param, dtype in [(p, d) for d in (F32, F64) for p in COVERED]:
            (case,) = param.values
            for way in ("forward", "backward"):
                key = f"{_entry(case)}_{way}"
                want_calls[key] = want_calls.get(key, 0) + 2
            ours, ref = _pair(case, 3, 20, 2, dtype)
            gen = torch.Generator().manual_seed(4)
            x = torch.randn(6, 13, 3, generator=gen, dtype=dtype)
            lengths = torch.randint(1, 7, (13,), generator=gen)
            got, want = _run(ours, x, lengths), _run(ref, x, lengths, native=False)
            tol = {"rtol": 1e-12, "atol": 1e-12} if dtype is F64 else {"rtol": 2e-5, "atol": 2e-6}
            for key in want:
                torch.testing.assert_close(got[key], want[key], **tol, msg=key)
        assert seen == want_calls
    finally:
        native.library.cache_clear()


def test_the_build_is_cached_by_source_and_written_whole(monkeypatch, tmp_path, capsys):
    """A second process (here: a cleared cache) loads the file the first built, without calling
    the compiler; nothing but the library is left in the cache directory. A build says so in
    one line before it starts (issue 39: a cold first run is not silent); a cached one does not."""
    monkeypatch.setenv("RNNLAB_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(announce, "_PRINTER", [])  # stderr (an in-process run sets its own)
    capsys.readouterr()
    built = native._build()
    assert capsys.readouterr().err.splitlines() == [
        f"rnnlab: building the native time loops (first use on this machine, a few seconds; "
        f"cached in {tmp_path}) ..."]
    assert built.parent == tmp_path and [p.name for p in tmp_path.iterdir()] == [built.name]
    calls = []
    real_run = native.subprocess.run

    def spy(cmd, *a, **kw):
        calls.append(cmd)
        return real_run(cmd, *a, **kw)

    monkeypatch.setattr(native.subprocess, "run", spy)
    assert native._build() == built
    assert all("--version" in c for c in calls)  # asked the compiler its version, built nothing
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RNNLAB_NATIVE_TARGET", "x86-64-v3")  # another target: another library
    assert native._key(native.build_plan()) != built.stem.removeprefix("native_loops_")


@pytest.mark.parametrize("form", [p.id for p in COVERED if p.id in PARITY_KINDS])
def test_parity_with_torch_nn(form, monkeypatch):
    """The native loops give torch.nn's numbers (test_cells_parity's compiled cases hold the
    per-step graphs to them, with the native loops off)."""
    seen = _calls(monkeypatch)
    force = {"T": 7, "B": 4, "I": 3, "H": 8, "L": 2, "with_hx": True, "ragged": True}
    _check_parity(form, F32, 7, compile=False, force=force)
    _check_parity(form, F64, 9, compile=False, force=dict(force, ragged=False))
    name = _entry(next(c for c in _CASES if c.id == form))
    assert seen == {f"{name}_forward": 4, f"{name}_backward": 4}  # 2 layers, 2 cases


def _lstm_forward_args(T=5, B=4, H=8, dtype=F32):
    def e(*shape):
        return torch.empty(*shape, dtype=dtype)

    return {"gi": e(T, B, 4 * H), "mask": None, "h0": e(B, H).zero_(), "w_hh": e(4 * H, H).zero_(),
            "b_ih": e(4 * H).zero_(), "b_hh": e(4 * H).zero_(), "hseq": e(T, B, H),
            "cbuf": e(T + 1, B, H).zero_(), "i": e(T, B, H), "f": e(T, B, H), "g": e(T, B, H),
            "o": e(T, B, H), "tc": e(T, B, H)}


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(w_hh=a["w_hh"][:8]), "argument 'w_hh' has size 8 in dimension 0, "
                                              "expected 32"),
    (lambda a: a.update(cbuf=a["hseq"]), "argument 'cbuf' has size 5 in dimension 0, expected 6"),
    (lambda a: a.update(o=a["o"].transpose(0, 1).contiguous().transpose(0, 1)),
     "argument 'o' has stride 40 in dimension 1, expected 8 (not contiguous)"),
    (lambda a: a.update(tc=a["tc"][..., None]), "argument 'tc' has 4 dimensions, expected 3"),
    (lambda a: a.update(h0=a["h0"].double()), "argument 'h0' is float64, expected float32"),
    (lambda a: a.update(mask=torch.ones(5, 3, dtype=torch.bool)),
     "argument 'mask' has size 3 in dimension 1, expected 4"),
    (lambda a: a.update(b_ih=None), "argument 'b_ih' is missing"),
    (lambda a: a.update(gi=a["gi"].to(torch.int32)), "argument 'gi' is a 3-d torch.int32 tensor"),
], ids=["shape", "swapped", "stride", "ndim", "dtype", "mask", "missing", "type"])
def test_a_mismatched_argument_raises_one_line_naming_it(change, message):
    """The boundary is typed: every array's shape and strides are checked (in C++, against the
    sizes the first arguments fix; here, its type and device) before the loops touch memory."""
    args = _lstm_forward_args()
    native._call("lstm_forward", **args)  # as given: runs
    change(args)
    with pytest.raises(ValueError) as err:
        native._call("lstm_forward", **args)
    text = str(err.value)
    assert text.startswith("rnnlab.cells.backends.native: lstm_forward: ") and "\n" not in text
    assert message in text
    with pytest.raises(TypeError, match="lstm_forward takes gi, mask?"):
        native._call("lstm_forward", **{**_lstm_forward_args(), "c0": None})
