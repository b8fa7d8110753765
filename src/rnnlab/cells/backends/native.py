"""The native backend: the commonest cells' time loops as one compiled C++ function each, on the
CPU.

``native_loops.cpp`` holds the whole forward and backward time loop of one layer for the LSTM
(variants ``torch`` and ``np``) and the GRU (variant ``gru``, reset ``after``), without layer norm
or zoneout, in float32 and float64, with variable lengths and the ∂L/∂h_t record. A step there is
one register-tiled GEMM and one pass over the gates with no call in between, which at small sizes
(B = 64, H = 64) is where the per-step graphs lose their time: a Python call, an ATen matmul call
and a kernel launch per step and direction.

The file is plain C++ (no torch headers): built with the system C++ compiler (``$CXX``, else
``g++``) on first use in about a second, cached by its source, the compiler and the CPU
(``$RNNLAB_NATIVE_CACHE``, else ``~/.cache/rnnlab/native``), loaded with ctypes. A cell uses it
where it compiles (``compile`` on, ``RNNLAB_COMPILE``), its tensors are float32 or float64 on the
CPU and autocast is off; ``RNNLAB_NATIVE=0`` turns it off, and then, or where a build fails (one
warning per process, and recorded: ``base.note_fallback``), the per-step backend runs.
Everything around the loops (input projection, parameter gradients, the saved tensors' layout) is
recurrence.py's, so the two paths agree to rounding: tests/test_cells_native.py holds them to
it. Where a layer's loops run here, the sequence-level products (the input projection and its
gradients, projection.py; the weight gradients, recurrence.py) use the same GEMM
(:func:`matmul`, :func:`outer_sum`).

Only torch is imported here.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from ..compile_cache import env_flag
from .base import Backend

__all__ = ["KERNELS", "Native", "library", "matmul", "native_applies", "native_enabled",
           "outer_sum"]

# beside the cells (the wheel's package data: cells/*.cpp)
SOURCE = Path(__file__).resolve().parent.parent / "native_loops.cpp"
# -fno-math-errno lets the loops call glibc's vector exp / tanh; no -ffast-math: a diverging run
# must still produce inf and NaN where the per-step path does
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fPIC", "-shared")
LIBS = ("-lmvec", "-lm")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def native_enabled() -> bool:
    """``RNNLAB_NATIVE`` (default on)."""
    return env_flag("RNNLAB_NATIVE", True)


def _cache_dir() -> Path:
    env = os.environ.get("RNNLAB_NATIVE_CACHE", "").strip()
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(base).expanduser() / "rnnlab" / "native"


def _cpu_key() -> str:
    # -march=native: a library built on one CPU may not run on another (a shared home directory)
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        import platform

        return platform.machine() + platform.processor()


def _build() -> Path:
    cxx = os.environ.get("CXX", "").strip() or "g++"
    if shutil.which(cxx) is None:
        raise RuntimeError(f"no C++ compiler {cxx!r} on PATH")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join(
        [SOURCE.read_text(), cxx, version, *FLAGS, *LIBS, _cpu_key()]).encode()).hexdigest()[:20]
    out = _cache_dir() / f"native_loops_{key}.so"
    if out.exists():
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = out.parent
    except OSError:  # an unwritable home: build in the temporary directory instead
        tmp_dir = Path(tempfile.gettempdir())
        out = tmp_dir / out.name
        if out.exists():
            return out
    # built beside its final name and renamed: processes building at once never load half a file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=tmp_dir)
    os.close(fd)
    try:
        proc = subprocess.run([cxx, *FLAGS, "-o", tmp, str(SOURCE), *LIBS],
                              capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{cxx} failed: {(proc.stderr or proc.stdout).strip()[:300]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


_I, _P = ctypes.c_int, ctypes.c_void_p
_SIGNATURES = {  # entry -> number of pointer arguments between (steps, batch, hidden) and threads
    "lstm_forward": 13, "lstm_backward": 13, "gru_forward": 10, "gru_backward": 12,
}


_FAILURE: list[str] = []  # why the library is not there (one line), once library() said None


@functools.cache
def library() -> ctypes.CDLL | None:
    """The built library, or None (with one warning) where it cannot be built or loaded."""
    _FAILURE.clear()
    try:
        lib = ctypes.CDLL(str(_build()))
        for sfx in _SUFFIX.values():
            for name, n in _SIGNATURES.items():
                fn = getattr(lib, f"{name}_{sfx}")
                fn.argtypes = [_I, _I, _I, *([_P] * n), _I]
                fn.restype = _I
            # (M, N, K, A, lda, B, ldb, C, [accumulate,] threads)
            getattr(lib, f"outer_{sfx}").argtypes = [_I, _I, _I, _P, _I, _P, _I, _P, _I, _I]
            getattr(lib, f"matmul_{sfx}").argtypes = [_I, _I, _I, _P, _I, _P, _I, _P, _P, _I]
        return lib
    except Exception as err:  # noqa: BLE001  (no compiler, no libmvec, an unwritable disk)
        text = str(err).strip().splitlines()
        _FAILURE.append(f"{type(err).__name__}: {text[0][:200] if text else ''}")
        warnings.warn(
            f"rnnlab.cells: building the native time loops failed ({type(err).__name__}: "
            f"{text[0][:200] if text else ''}); the per-step graphs run instead (slower)",
            RuntimeWarning, stacklevel=2)
        return None


def _ptr(t: Tensor | None):
    return None if t is None else t.data_ptr()


def _call(entry: str, dtype: torch.dtype, steps: int, batch: int, hidden: int, *tensors) -> None:
    fn = getattr(library(), f"{entry}_{_SUFFIX[dtype]}")
    # the threads share the batch's rows (at least 4 each): torch's intra-op thread count
    if fn(steps, batch, hidden, *(_ptr(t) for t in tensors), torch.get_num_threads()):
        raise MemoryError(f"rnnlab.cells.native: {entry} could not allocate its work memory")


def _rows(t: Tensor) -> Tensor | None:
    """t as a (rows, width) matrix with unit column stride, without a copy; None if it is not
    one (then torch does the product)."""
    try:
        m = t.view(-1, t.shape[-1])
    except RuntimeError:
        return None
    return m if m.stride(1) == 1 or m.shape[1] == 1 else None


def _gemm_ready(*tensors: Tensor) -> bool:
    dtype = tensors[0].dtype
    return (dtype in _SUFFIX and all(t.dtype == dtype and t.device.type == "cpu" for t in tensors)
            and library() is not None)


# The sequence-level products of a layer whose loops run native use the loops' GEMM too: at the
# sizes of docs/benchmarks.md it takes 0.5-0.95x torch's (MKL) time for these shapes, on one
# thread and on two. A weight gradient narrower than 16 (W_ih of an input of 2 features) stays
# with torch: it would be all remainder columns here.
def outer_sum(d: Tensor, u: Tensor, out: Tensor | None = None) -> Tensor | None:
    """``Σ_rows dᵀ u`` for d (..., M), u (..., N) with the same leading shape: (M, N), added into
    ``out`` if given; None where it does not apply (then torch computes it)."""
    if u.shape[-1] < 16 or not _gemm_ready(d, u):
        return None
    d2, u2 = _rows(d), _rows(u)
    if d2 is None or u2 is None or d2.shape[0] != u2.shape[0]:
        return None
    M, N = d2.shape[1], u2.shape[1]
    acc = out is not None
    if out is None:
        out = d2.new_empty(M, N)
    getattr(library(), f"outer_{_SUFFIX[d.dtype]}")(
        M, N, d2.shape[0], d2.data_ptr(), d2.stride(0), u2.data_ptr(), u2.stride(0),
        out.data_ptr(), int(acc), torch.get_num_threads())
    return out


def matmul(a: Tensor, b: Tensor) -> Tensor | None:
    """``a @ b`` for a (..., K) and b (K, N): (..., N); None where it does not apply. For an
    input of 2 features (K or N < 16) a row-by-row kernel: (3,200 x 2) by (2 x 256) and the
    gradient back, 0.15 and 0.40 ms through torch, 0.09 and 0.13 ms here (1 thread)."""
    if not _gemm_ready(a, b):
        return None
    a2 = _rows(a)
    if a2 is None:
        return None
    M, K, N = a2.shape[0], a2.shape[1], b.shape[1]
    narrow = N < 16 <= K
    bt = b.t().contiguous() if narrow else None  # read by rows: dot products along K
    b = b if narrow else b.contiguous()
    out = a2.new_empty(M, N)
    getattr(library(), f"matmul_{_SUFFIX[a.dtype]}")(
        M, N, K, a2.data_ptr(), a2.stride(0), b.data_ptr(), b.stride(0),
        None if bt is None else bt.data_ptr(), out.data_ptr(), torch.get_num_threads())
    return out.view(*a.shape[:-1], N)


def _state_buffer(s0: Tensor, steps: int, masked: bool) -> tuple[Tensor, Tensor]:
    """(buffer, seq): h's buffer as recurrence._States lays it out (the output itself, or with
    a mask (T+1, B, H) holding h_0 first) and the (T, B, H) view the loop writes step t into."""
    if not masked:
        buf = s0.new_empty(steps, *s0.shape)
        return buf, buf
    buf = s0.new_empty(steps + 1, *s0.shape)
    buf[0].copy_(s0)
    return buf, buf[1:]


def _mask_bytes(mask: Tensor | None) -> Tensor | None:
    return None if mask is None else mask.reshape(mask.shape[0], mask.shape[1]).contiguous()


class _LSTM:
    """lstm.py's variants torch / np: states (h, c), saved (i, f, g, o, tanh c'), no extras."""

    @staticmethod
    def forward(gi, mask, state0, params):
        steps, batch, _ = gi.shape
        h0, c0 = state0
        hidden = h0.shape[1]
        hbuf, hseq = _state_buffer(h0, steps, mask is not None)
        cbuf = c0.new_empty(steps + 1, *c0.shape)
        cbuf[0].copy_(c0)
        stacks = [h0.new_empty(steps, batch, hidden) for _ in range(5)]
        w_hh, b_ih, b_hh = (p.contiguous() for p in params[:3])
        _call("lstm_forward", gi.dtype, steps, batch, hidden, gi, _mask_bytes(mask),
              h0.contiguous(), w_hh, b_ih, b_hh, hseq, cbuf, *stacks)
        return [hbuf, cbuf], stacks

    @staticmethod
    def backward(dout, mask, dstate, state0, buffers, stacks, params, record):
        steps, batch, hidden = dout.shape
        dh, dc = (d.clone(memory_format=torch.contiguous_format) for d in dstate)
        dgi = dout.new_empty(steps, batch, 4 * hidden)
        norms = dout.new_empty(steps, batch) if record else None
        _call("lstm_backward", dout.dtype, steps, batch, hidden, dout.contiguous(),
              _mask_bytes(mask), buffers[1], *stacks, params[0].contiguous(), dgi, norms, dh, dc)
        return dgi, norms, (dh, dc), ()


class _GRU:
    """gru.py's variant gru, reset after: state (h,), saved (g = [r, z], n, gh_n), extras
    (∂L/∂gh_n,)."""

    @staticmethod
    def forward(gi, mask, state0, params):
        steps, batch, _ = gi.shape
        (h0,) = state0
        hidden = h0.shape[1]
        hbuf, hseq = _state_buffer(h0, steps, mask is not None)
        stacks = [h0.new_empty(steps, batch, 2 * hidden), h0.new_empty(steps, batch, hidden),
                  h0.new_empty(steps, batch, hidden)]
        w_hh, b_ih, b_hh = (p.contiguous() for p in params[:3])
        _call("gru_forward", gi.dtype, steps, batch, hidden, gi, _mask_bytes(mask),
              h0.contiguous(), w_hh, b_ih, b_hh, hseq, *stacks)
        return [hbuf], stacks

    @staticmethod
    def backward(dout, mask, dstate, state0, buffers, stacks, params, record):
        steps, batch, hidden = dout.shape
        h0 = state0[0].contiguous()
        hseq = buffers[0][1:] if mask is not None else buffers[0]
        (dh,) = (d.clone(memory_format=torch.contiguous_format) for d in dstate)
        dgi = dout.new_empty(steps, batch, 3 * hidden)
        dghn = dout.new_empty(steps, batch, hidden)
        norms = dout.new_empty(steps, batch) if record else None
        _call("gru_backward", dout.dtype, steps, batch, hidden, dout.contiguous(),
              _mask_bytes(mask), h0, hseq, *stacks, params[0].contiguous(), dgi, dghn, norms, dh)
        return dgi, norms, (dh,), (dghn,)


KERNELS = {"lstm": _LSTM, "gru": _GRU}


def native_applies(name: str | None, compile: bool, x: Tensor, tensors=()) -> bool:
    """Whether the native loops compute a call: ``name`` (a Recurrence's ``native``) names a
    kernel, compile on, RNNLAB_NATIVE on, ``x`` and every one of ``tensors`` float32 or float64
    on the CPU and of one dtype, autocast off. (Whether the library could be built is
    :meth:`Native.unavailable`'s.) A Recurrence names a kernel only where its equations take no
    per-step inputs."""
    if name is None or not compile or x.device.type != "cpu":
        return False
    if x.dtype not in _SUFFIX or torch.is_autocast_enabled("cpu"):
        return False
    if any(t.dtype != x.dtype or t.device.type != "cpu" for t in tensors):
        return False
    return native_enabled()


class Native(Backend):
    """The whole loop in one C++ call per direction, where :func:`native_applies`; unavailable
    where the library cannot be built."""

    name = "native"
    takes_any_batch = True  # no compiled shapes to reuse: no padding
    native_products = True

    def applies(self, rec, compile, x, tensors) -> bool:
        return native_applies(rec.native, compile, x, tensors)

    def unavailable(self) -> str | None:
        if library() is not None:
            return None
        return f"the build failed ({_FAILURE[0] if _FAILURE else 'unknown'})"

    def forward(self, rec, compile, gi, mask, inputs, state0, params):
        buffers, stacks = KERNELS[rec.native].forward(gi, mask, state0, params)
        return buffers, stacks, None

    def backward(self, rec, compile, record, dout, mask, inputs, dstate, states, stacks,
                 saved_steps, params):
        return KERNELS[rec.native].backward(dout, mask, dstate, states.initial, states.buffers,
                                            stacks, params, record)
