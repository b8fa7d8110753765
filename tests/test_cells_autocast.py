"""Every scratch cell under autocast (bf16 and fp16): the backward gives the same gradients
whether it is called inside the autocast context or after it, compiled as eager, finite, and
within a stated distance of float32 and of torch.nn where torch.nn has the cell.

The backward runs under the forward's autocast state wherever it is called
(``recurrence.under_forward_autocast``); before that, a compiled backward called inside the
context returned inf gradients ([precision])."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import cell_matrix

from rnnlab.cells import compile_cache, minrnn
from rnnlab.cells.compile_cache import StepFunction

# every form of every cell and each feature (layer norm, zoneout) on a cell's own form, from the
# registry; torch.nn's kernel beside the forms it computes
CASES = {case.id: case for case in cell_matrix.forms() + cell_matrix.features()}
TORCH_NN = {case.id for case in cell_matrix.torch_nn_forms()}

# Relative distance ‖g_low − g_f32‖ / ‖g_f32‖ allowed. Measured in this test's setting (T=12,
# B=4, H=16, seed 0, CPU): bf16 0.11–1.4% for every cell but layer-normalised LSTM (3.2%:
# normalising the bf16-rounded products amplifies their rounding; the same with a float32
# backward), fp16 ≤ 0.64%. Compiled against eager: ≤ 0.034% (other fusion, other rounding of the
# intermediate sums). Ours against torch.nn under the same autocast: ≤ 0.44% (bf16), ≤ 0.064%
# (fp16); allowed 2%, the float32-vs-autocast tolerance of the earlier test.
STEPS = 12
TO_FLOAT32 = {torch.bfloat16: 0.06, torch.float16: 0.01}
COMPILED_TO_EAGER = 0.005
TO_TORCH_NN = 0.02


def _grads(module, x, lengths, dtype, inside):
    """All parameter gradients and the recorded ‖∂L/∂h_t‖ after one forward/backward; the
    forward under autocast(dtype) (none: float32), the backward inside the context or after."""
    torch.manual_seed(1)  # the same zoneout masks in every call
    module.zero_grad()
    kwargs = {} if lengths is None else {"lengths": lengths}
    device = next(module.parameters()).device.type
    with torch.autocast(device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = module(x, **kwargs)[0]
        if isinstance(out, torch.nn.utils.rnn.PackedSequence):  # torch.nn on variable lengths
            out = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=STEPS)[0]
        loss = out.float().pow(2).mean()
        if inside:
            loss.backward()
    if not inside:
        loss.backward()
    grads = torch.cat([p.grad.flatten() for p in module.parameters()])
    norms = getattr(module, "hidden_grad_norms", None)
    return grads, norms


def _compiled_autocast(module) -> set:
    """The autocast dtypes the module's step functions hold compiled graphs for (whichever
    test compiled them: the caches are per cell equations, per process)."""
    if hasattr(module, "recurrence"):
        fns = [f for f in module.recurrence()._fns.values() if isinstance(f, StepFunction)]
    else:  # minGRU/minLSTM: their pointwise kernels
        fns = [f for key, f in minrnn._STEP_FUNCTIONS.items() if key[1] is module.equations]
    return {key[0] for f in fns for key in f._cache}


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


# One cell per family (a module of equations: minGRU and minLSTM are one) also runs on variable
# lengths (the masked step is shared machinery) and compiled under fp16; every cell runs compiled
# under bf16 and eager under both. (Compiling is what costs: ~0.8 s a step function on 2 cores.)
FAMILY = tuple(case.id for case in cell_matrix.one_per_family(list(CASES.values())))
PARAMS = [pytest.param(name, False, id=name) for name in CASES] + [
    pytest.param(name, True, id=f"{name}-lengths") for name in FAMILY]


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,masked", PARAMS)
def test_backward_inside_or_after_autocast_gives_the_same_gradients(
    name, masked, device, monkeypatch
):
    case = CASES[name]
    monkeypatch.setattr(compile_cache._CompileState, "compile_after", 1)
    torch.manual_seed(0)
    x = torch.randn(STEPS, 4, 8, device=device)
    lengths = torch.tensor([12, 7, 12, 3]) if masked else None  # on the CPU, as torch.nn's
    eager, compiled = (case.make(8, 16, compile=c, device=device).train() for c in (False, True))
    compiled.load_state_dict(eager.state_dict())
    f32, f32_norms = _grads(eager, x, lengths, None, inside=False)

    for dtype in (torch.bfloat16, torch.float16):
        results = {}
        runs = [("eager", eager)]
        if dtype == torch.bfloat16 or name in FAMILY:
            runs.append(("compiled", compiled))
        for label, module in runs:
            inside, inside_norms = _grads(module, x, lengths, dtype, inside=True)
            after, after_norms = _grads(module, x, lengths, dtype, inside=False)
            assert torch.isfinite(inside).all(), f"{label} {dtype}: non-finite gradients"
            # the same computation, wherever the backward is called from: identical numbers
            assert torch.equal(inside, after), f"{label} {dtype}: inside {_rel(inside, after):.1e}"
            assert torch.equal(inside_norms, after_norms)
            assert _rel(inside, f32) < TO_FLOAT32[dtype], f"{label} {dtype}: {_rel(inside, f32)}"
            assert _rel(inside_norms, f32_norms) < TO_FLOAT32[dtype]
            results[label] = inside
        if "compiled" in results:
            assert _rel(results["compiled"], results["eager"]) < COMPILED_TO_EAGER
            assert dtype in _compiled_autocast(compiled), f"nothing compiled under {dtype}"

        if name in TORCH_NN:
            ref = case.torch_nn(8, 16, device=device)
            ref.load_state_dict(eager.state_dict())
            packed = None if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(
                x, lengths, enforce_sorted=False)
            try:
                ref_low, _ = _grads(ref, x if packed is None else packed, None, dtype,
                                    inside=True)
            except RuntimeError as error:  # oneDNN has no bf16/fp16 LSTM on some CPUs
                assert device == "cpu"
                assert "primitive" in str(error) or "not implemented" in str(error).lower()
                continue
            assert _rel(results["eager"], ref_low) < TO_TORCH_NN

