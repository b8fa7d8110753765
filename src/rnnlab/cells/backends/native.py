"""The native backend: the commonest cells' time loops as one compiled C++ function each, on the
CPU.

``native_loops.cpp`` holds the whole forward and backward time loop of one layer for the LSTM
(variants ``torch`` and ``np``) and the GRU (variant ``gru``, reset ``after``), without layer norm
or zoneout, the Elman RNN (tanh and ReLU) and IndRNN, in float32 and float64, with variable
lengths and the ∂L/∂h_t record. A step there is
one register-tiled GEMM and one pass over the gates with no call in between, which at small sizes
(B = 64, H = 64) is where the per-step graphs lose their time: a Python call, an ATen matmul call
and a kernel launch per step and direction.

The file is plain C++ (no torch headers): built with the system C++ compiler (``$CXX``, else
``g++``) on first use in about 2.5 CPU-seconds (torch.utils.cpp_extension would take some 35:
the torch headers), for ``-march=$RNNLAB_NATIVE_TARGET`` (else ``native``), cached by its
source, the compiler, the flags and, for ``native``, the CPU (``$RNNLAB_NATIVE_CACHE``, else
``~/.cache/rnnlab/native``), loaded with ctypes; a build says so first, in one line
(``announce``). The platform is checked before a build is attempted (:func:`build_plan`: Linux
on x86-64 or aarch64 with a compiler; glibc's version decides the vector math), and the GEMM's
register tile is chosen for the instruction set the build targets (AVX-512, AVX2, SSE2, NEON:
native_loops.cpp). Its boundary is typed: each entry takes its arrays as descriptors (data,
element type, shape, strides), named here (:data:`ENTRIES`) and checked on both sides; a
mismatch raises one line naming the argument (:class:`BoundaryError`) instead of reading or
writing outside an array.

A cell's loops run here where its equations have a kernel, its tensors are float32 or float64
on the CPU and autocast is off, whether or not its steps compile: ``RNNLAB_NATIVE=0`` is the one
switch. Then, or where a build fails (one warning per process, and recorded:
``base.note_fallback``), the per-step backend runs. Everything around the loops (input
projection, parameter gradients, the saved tensors' layout) is recurrence.py's, so the two paths
agree to rounding: tests/test_cells_native.py holds them to it. Where a layer's loops run here,
the sequence-level products (the input projection and its gradients, projection.py; the weight
gradients, recurrence.py) use the same GEMM (:func:`matmul`, :func:`outer_sum`).

Only torch is imported here.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..announce import announce
from ..compile_cache import env_flag
from .base import Backend

__all__ = ["KERNELS", "BoundaryError", "BuildPlan", "Native", "Unsupported", "build_plan",
           "built_for", "library", "matmul", "native_applies", "native_enabled", "outer_sum"]

# beside the cells (the wheel's package data: cells/*.cpp)
SOURCE = Path(__file__).resolve().parent.parent / "native_loops.cpp"
# -fno-math-errno lets the loops call glibc's vector exp / tanh; no -ffast-math: a diverging run
# must still produce inf and NaN where the per-step path does
FLAGS = ("-O3", "-fopenmp", "-fno-math-errno", "-fPIC", "-shared")
# glibc's libmvec on x86-64 has the vector exp/expf from 2.22, tanh/tanhf from 2.35
VECTOR_EXP_GLIBC, VECTOR_TANH_GLIBC = (2, 22), (2, 35)
_FLOATS = (torch.float32, torch.float64)


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
        return platform.machine() + platform.processor()


class Unsupported(RuntimeError):
    """This platform cannot build the native loops (found before any build is attempted)."""


@dataclass(frozen=True)
class BuildPlan:
    """How the loops are built here: the compiler, the target instruction set (``-march``), the
    flags and the libraries (:func:`build_plan`)."""

    cxx: str
    target: str
    flags: tuple[str, ...]
    libs: tuple[str, ...]

    def command(self, out: str) -> list[str]:
        return [self.cxx, *self.flags, "-o", out, str(SOURCE), *self.libs]


def _system() -> str:
    return sys.platform


def _machine() -> str:
    return platform.machine().lower()


def _glibc() -> tuple[int, int] | None:
    """glibc's version, or None (another C library: musl, ...)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        return None
    name, _, version = text.partition(" ")
    parts = version.split(".")
    if name != "glibc" or len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        return None
    return int(parts[0]), int(parts[1])


def build_plan() -> BuildPlan:
    """The build for this platform, checked before anything is built; :class:`Unsupported`
    (one line) where there is none: not Linux, not x86-64 or aarch64, no compiler (``$CXX``,
    else ``g++``). The target is ``$RNNLAB_NATIVE_TARGET`` (a ``-march`` value), else
    ``native``: the instruction set picks the GEMM's register tile (native_loops.cpp). glibc's
    vector exp and tanh (libmvec) are called where its version has them for x86-64 (exp from
    2.22, tanh from 2.35: an AVX2 build on an older glibc would link ``_ZGVdN8v_tanhf`` and not
    load); elsewhere (aarch64, another C library) the scalar functions, and then the gate loops,
    which call tanh, run scalar (slower, the same equations)."""
    system, machine = _system(), _machine()
    if not system.startswith("linux"):
        raise Unsupported(f"{system} is not supported: the loops are built on Linux, with GCC")
    if machine not in ("x86_64", "amd64", "aarch64", "arm64"):
        raise Unsupported(f"{machine} is not a supported architecture: x86-64, aarch64")
    cxx = os.environ.get("CXX", "").strip() or "g++"
    if shutil.which(cxx) is None:
        raise Unsupported(f"no C++ compiler {cxx!r} on PATH")
    target = os.environ.get("RNNLAB_NATIVE_TARGET", "").strip() or "native"
    glibc = _glibc() if machine in ("x86_64", "amd64") else None
    vexp = glibc is not None and glibc >= VECTOR_EXP_GLIBC
    vtanh = glibc is not None and glibc >= VECTOR_TANH_GLIBC
    flags = (*FLAGS, f"-march={target}", f"-DRNNLAB_VECTOR_EXP={int(vexp)}",
             f"-DRNNLAB_VECTOR_TANH={int(vtanh)}")
    return BuildPlan(cxx, target, flags, ("-lmvec", "-lm") if vexp or vtanh else ("-lm",))


def _key(plan: BuildPlan) -> str:
    """The library's name in the cache: the source, the compiler (and its version), the flags
    (the target among them), the libraries and, for ``-march=native``, the CPU."""
    version = subprocess.run([plan.cxx, "--version"], capture_output=True, text=True).stdout
    cpu = _cpu_key() if plan.target == "native" else ""
    return hashlib.sha256("\0".join([SOURCE.read_text(), plan.cxx, version, *plan.flags,
                                     *plan.libs, cpu]).encode()).hexdigest()[:20]


def _build(plan: BuildPlan | None = None) -> Path:
    plan = plan or build_plan()
    out = _cache_dir() / f"native_loops_{_key(plan)}.so"
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
    announce(f"building the native time loops (first use on this machine, a few seconds; "
             f"cached in {out.parent})")
    # built beside its final name and renamed: processes building at once never load half a file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=tmp_dir)
    os.close(fd)
    try:
        proc = subprocess.run(plan.command(tmp), capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{plan.cxx} failed: {(proc.stderr or proc.stdout).strip()[:300]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


# ---- the typed boundary (native_loops.cpp, "the C ABI") ---------------------------------------
# Each entry takes its arrays as descriptors (data, element type, shape, strides) in the order
# below, named here; "?" marks one that may be absent. Both sides check: here, that each is a
# CPU tensor of a type the loops take (and the call's arguments are exactly these names); there,
# every shape and stride against the sizes the first arguments fix. A mismatch raises one line
# naming the argument.
ENTRIES = {
    "lstm_forward": ("gi", "mask?", "h0", "w_hh", "b_ih", "b_hh", "hseq", "cbuf", "i", "f", "g",
                     "o", "tc"),
    "lstm_backward": ("dy", "mask?", "cbuf", "i", "f", "g", "o", "tc", "w_hh", "dgi", "norms?",
                      "dh", "dc"),
    "gru_forward": ("gi", "mask?", "h0", "w_hh", "b_ih", "b_hh", "hseq", "g", "n", "ghn"),
    "gru_backward": ("dy", "mask?", "h0", "hseq", "g", "n", "ghn", "w_hh", "dgi", "dghn",
                     "norms?", "dh"),
    "rnn_forward": ("gi", "mask?", "h0", "w_hh", "b_ih", "b_hh", "hseq"),  # flags 1: ReLU
    "rnn_backward": ("dy", "mask?", "hseq", "w_hh", "dgi", "norms?", "dh"),  # flags 1: ReLU
    "indrnn_forward": ("gi", "mask?", "h0", "u", "b_ih", "b_hh", "hseq"),
    "indrnn_backward": ("dy", "mask?", "hseq", "u", "dgi", "norms?", "dh"),
    "outer": ("d", "u", "out"),
    "matmul": ("a", "b", "bt?", "out"),
}
ABI = 3  # native_loops.cpp's RNNLAB_ABI
_CODES = {torch.float32: 1, torch.float64: 2, torch.bool: 3, torch.uint8: 3}
_TYPE_NAMES = {0: "absent", 1: "float32", 2: "float64", 3: "bool"}
_WHAT = {  # native_loops.cpp's RNNLAB_WHAT_*: (got, expected, dim) -> the words
    2: lambda g, e, d: "is missing",
    3: lambda g, e, d: f"is {_TYPE_NAMES.get(g, g)}, expected {_TYPE_NAMES.get(e, e)}",
    4: lambda g, e, d: f"has {g} dimensions, expected {e}",
    5: lambda g, e, d: f"has size {g} in dimension {d}, expected {e}",
    6: lambda g, e, d: f"has stride {g} in dimension {d}, expected {e} (not contiguous)",
    7: lambda g, e, d: f"has rows {g} elements apart, expected at least {e}",
    8: lambda g, e, d: f"has size {g} in dimension {d}, more than {e}",
}
_DESCRIPTOR = "Pii4q4q"  # struct rnnlab_array: data, dtype, ndim, shape[4], strides[4]


class _Error(ctypes.Structure):  # struct rnnlab_error
    _fields_ = [("arg", ctypes.c_int32), ("what", ctypes.c_int32), ("dim", ctypes.c_int32),
                ("got", ctypes.c_int64), ("expected", ctypes.c_int64)]


class BoundaryError(ValueError):
    """An argument of a native entry that does not match what the loops assume."""


_PAD = [(0,) * (4 - n) for n in range(5)]


def _describe(t: Tensor | None, name: str, entry: str) -> tuple:
    """The values of one ``struct rnnlab_array`` for ``t`` (``name`` in ``entry``'s list)."""
    if t is None:
        if not name.endswith("?"):
            raise BoundaryError(f"rnnlab.cells.backends.native: {entry}: argument {name!r} is "
                                "missing")
        return (0,) * 11
    code, shape = _CODES.get(t.dtype), t.shape
    if code is None or not t.is_cpu or len(shape) > 4:
        raise BoundaryError(
            f"rnnlab.cells.backends.native: {entry}: argument {name.rstrip('?')!r} is a "
            f"{t.dim()}-d {t.dtype} tensor on {t.device}, expected float32, float64 or bool on "
            "the CPU, at most 4-d")
    pad = _PAD[len(shape)]
    return (t.data_ptr(), code, len(shape), *shape, *pad, *t.stride(), *pad)


@functools.cache
def _keys(entry: str) -> dict[str, str]:
    """``entry``'s keyword names -> their names in :data:`ENTRIES`, in its order."""
    return {n.rstrip("?"): n for n in ENTRIES[entry]}


@functools.cache
def _layout(n: int) -> struct.Struct:
    return struct.Struct("@" + _DESCRIPTOR * n)


def _call(entry: str, flags: int = 0, **arrays: Tensor | None) -> None:
    """Call the native entry ``entry`` with its arrays by name (:data:`ENTRIES`) and ``flags``;
    the threads share the batch's rows (or the product's): torch's intra-op thread count."""
    names = ENTRIES[entry]
    keys = _keys(entry)
    if arrays.keys() != keys.keys():
        raise TypeError(f"rnnlab.cells.backends.native: {entry} takes "
                        f"{', '.join(names)}; got {', '.join(arrays)}")
    values = []
    for key, name in keys.items():
        values.extend(_describe(arrays[key], name, entry))
    layout = _layout(len(names))
    descriptors = ctypes.create_string_buffer(layout.size)
    layout.pack_into(descriptors, 0, *values)
    err = _Error()
    rc = getattr(library(), f"rnnlab_{entry}")(descriptors, len(names), flags,
                                               torch.get_num_threads(), ctypes.byref(err))
    if rc == 1:
        raise MemoryError(f"rnnlab.cells.backends.native: {entry} could not allocate its work "
                          "memory")
    if rc:
        raise BoundaryError(_mismatch(entry, rc, err))


def _mismatch(entry: str, rc: int, err: _Error) -> str:
    """The one line for a nonzero return code other than 1 (native_loops.cpp's RNNLAB_BAD_*)."""
    names = ENTRIES[entry]
    where = f"rnnlab.cells.backends.native: {entry}"
    if rc != 2:
        return f"{where} returned {rc}"
    if err.what == 1:  # RNNLAB_WHAT_COUNT
        return f"{where} got {err.got} arguments, the library expects {err.expected}"
    name = names[err.arg].rstrip("?") if 0 <= err.arg < len(names) else f"#{err.arg}"
    words = _WHAT.get(err.what, lambda g, e, d: f"does not match (code {err.what})")
    return f"{where}: argument {name!r} {words(err.got, err.expected, err.dim)}"


_FAILURE: list[str] = []  # why the library is not there (one line), once library() said None


def _unavailable(kind: str, err: Exception) -> None:
    text = str(err).strip().splitlines()
    line = text[0][:200] if text else ""
    _FAILURE.append(f"{kind}: {line}" if isinstance(err, Unsupported)
                    else f"{kind}: {type(err).__name__}: {line}")
    if isinstance(err, Unsupported):
        message = (f"rnnlab.cells: the native time loops cannot be built here ({line}); the "
                   "per-step graphs run instead (slower)")
    else:
        message = (f"rnnlab.cells: building the native time loops failed ({type(err).__name__}: "
                   f"{line}); the per-step graphs run instead (slower)")
    warnings.warn(message, RuntimeWarning, stacklevel=3)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The built library, or None (with one warning, and the reason kept for the record:
    :meth:`Native.unavailable`) where the platform cannot build it (:func:`build_plan`), the
    build fails or the library does not load."""
    _FAILURE.clear()
    try:
        plan = build_plan()
    except Unsupported as err:
        return _unavailable("platform unsupported", err)
    try:
        path = _build(plan)
    except Exception as err:  # noqa: BLE001  (a compiler error, an unwritable disk)
        return _unavailable("build failed", err)
    try:
        lib = ctypes.CDLL(str(path))
        abi = lib.rnnlab_abi_version()
        if abi != ABI:
            raise RuntimeError(f"the library's boundary is version {abi}, this module's {ABI}")
        for entry in ENTRIES:
            fn = getattr(lib, f"rnnlab_{entry}")
            fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                           ctypes.POINTER(_Error)]
            fn.restype = ctypes.c_int
        lib.rnnlab_target.restype = ctypes.c_char_p
        return lib
    except Exception as err:  # noqa: BLE001  (a missing symbol of libmvec, another ABI)
        return _unavailable("load failed", err)


def built_for() -> str | None:
    """What the loaded library was built for: ``"isa=avx2 vector=32 tile=6x2 vector_exp=1
    vector_tanh=1"`` (native_loops.cpp's ``rnnlab_target``), or None where there is none."""
    lib = library()
    return None if lib is None else lib.rnnlab_target().decode()


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
    return (dtype in _FLOATS and all(t.dtype == dtype and t.device.type == "cpu" for t in tensors)
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
    acc = out is not None
    if out is None:
        out = d2.new_empty(d2.shape[1], u2.shape[1])
    _call("outer", int(acc), d=d2, u=u2, out=out)
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
    K, N = a2.shape[1], b.shape[1]
    bt = b.t().contiguous() if N < 16 <= K else None  # read by rows: dot products along K
    out = a2.new_empty(a2.shape[0], N)
    _call("matmul", a=a2, b=b.contiguous(), bt=bt, out=out)
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

    entry = "lstm"  # its entries: lstm_forward, lstm_backward

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
        i, f, g, o, tc = stacks
        _call("lstm_forward", gi=gi, mask=_mask_bytes(mask), h0=h0.contiguous(), w_hh=w_hh,
              b_ih=b_ih, b_hh=b_hh, hseq=hseq, cbuf=cbuf, i=i, f=f, g=g, o=o, tc=tc)
        return [hbuf, cbuf], stacks

    @staticmethod
    def backward(dout, mask, dstate, state0, buffers, stacks, params, record):
        steps, batch, hidden = dout.shape
        dh, dc = (d.clone(memory_format=torch.contiguous_format) for d in dstate)
        dgi = dout.new_empty(steps, batch, 4 * hidden)
        norms = dout.new_empty(steps, batch) if record else None
        i, f, g, o, tc = stacks
        _call("lstm_backward", dy=dout.contiguous(), mask=_mask_bytes(mask), cbuf=buffers[1],
              i=i, f=f, g=g, o=o, tc=tc, w_hh=params[0].contiguous(), dgi=dgi, norms=norms,
              dh=dh, dc=dc)
        return dgi, norms, (dh, dc), ()


class _GRU:
    """gru.py's variant gru, reset after: state (h,), saved (g = [r, z], n, gh_n), extras
    (∂L/∂gh_n,)."""

    entry = "gru"

    @staticmethod
    def forward(gi, mask, state0, params):
        steps, batch, _ = gi.shape
        (h0,) = state0
        hidden = h0.shape[1]
        hbuf, hseq = _state_buffer(h0, steps, mask is not None)
        stacks = [h0.new_empty(steps, batch, 2 * hidden), h0.new_empty(steps, batch, hidden),
                  h0.new_empty(steps, batch, hidden)]
        w_hh, b_ih, b_hh = (p.contiguous() for p in params[:3])
        g, n, ghn = stacks
        _call("gru_forward", gi=gi, mask=_mask_bytes(mask), h0=h0.contiguous(), w_hh=w_hh,
              b_ih=b_ih, b_hh=b_hh, hseq=hseq, g=g, n=n, ghn=ghn)
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
        g, n, ghn = stacks
        _call("gru_backward", dy=dout.contiguous(), mask=_mask_bytes(mask), h0=h0, hseq=hseq,
              g=g, n=n, ghn=ghn, w_hh=params[0].contiguous(), dgi=dgi, dghn=dghn, norms=norms,
              dh=dh)
        return dgi, norms, (dh,), (dghn,)


class _Elman:
    """rnn.py's tanh and ReLU RNN (entry ``rnn``, ReLU in its flags) and indrnn.py's IndRNN
    (entry ``indrnn``, its recurrent vector u): state (h,), nothing saved (the backward reads h'
    from the state sequence), no extras."""

    def __init__(self, entry: str, weight: str, relu: bool = False):
        self.entry, self.weight, self.flags = entry, weight, int(relu)

    def forward(self, gi, mask, state0, params):
        steps = gi.shape[0]
        (h0,) = state0
        hbuf, hseq = _state_buffer(h0, steps, mask is not None)
        w_hh, b_ih, b_hh = (p.contiguous() for p in params[:3])
        _call(f"{self.entry}_forward", self.flags, gi=gi, mask=_mask_bytes(mask),
              h0=h0.contiguous(), **{self.weight: w_hh}, b_ih=b_ih, b_hh=b_hh, hseq=hseq)
        return [hbuf], []

    def backward(self, dout, mask, dstate, state0, buffers, stacks, params, record):
        steps, batch, hidden = dout.shape
        hseq = buffers[0][1:] if mask is not None else buffers[0]
        (dh,) = (d.clone(memory_format=torch.contiguous_format) for d in dstate)
        dgi = dout.new_empty(steps, batch, hidden)
        norms = dout.new_empty(steps, batch) if record else None
        _call(f"{self.entry}_backward", self.flags, dy=dout.contiguous(), mask=_mask_bytes(mask),
              hseq=hseq, **{self.weight: params[0].contiguous()}, dgi=dgi, norms=norms, dh=dh)
        return dgi, norms, (dh,), ()


# a Recurrence's ``native`` -> the kernel that computes its equations
KERNELS = {"lstm": _LSTM, "gru": _GRU, "rnn_tanh": _Elman("rnn", "w_hh"),
           "rnn_relu": _Elman("rnn", "w_hh", relu=True), "indrnn": _Elman("indrnn", "u")}


def native_applies(name: str | None, compile: bool, x: Tensor, tensors=()) -> bool:
    """Whether the native loops compute a call: ``name`` (a Recurrence's ``native``) names a
    kernel, RNNLAB_NATIVE on (whatever ``compile``), ``x`` and every one of ``tensors`` float32
    or float64 on the CPU and of one dtype, autocast off. (Whether the library could be built
    is :meth:`Native.unavailable`'s.) A Recurrence names a kernel only where its equations take
    no per-step inputs."""
    if name is None or x.device.type != "cpu":
        return False
    if x.dtype not in _FLOATS or torch.is_autocast_enabled("cpu"):
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
        return _FAILURE[0] if _FAILURE else "unavailable"

    def forward(self, rec, compile, gi, mask, inputs, state0, params):
        buffers, stacks = KERNELS[rec.native].forward(gi, mask, state0, params)
        return buffers, stacks, None

    def backward(self, rec, compile, record, dout, mask, inputs, dstate, states, stacks,
                 saved_steps, params):
        return KERNELS[rec.native].backward(dout, mask, dstate, states.initial, states.buffers,
                                            stacks, params, record)
