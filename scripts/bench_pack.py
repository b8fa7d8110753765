#!/usr/bin/env python
"""The batched member step (rnnlab.cells.members) against the per-member path: member-steps per
second of N models trained side by side (issue 41, item 4: target >= 10x member-steps per hour
over solo runs at N = 32, H = 128 on one GPU).

    python scripts/bench_pack.py --device cuda                 # N = 32 and 8, H = 128, gru
    python scripts/bench_pack.py --device cuda --cells gru,lstm,rnn --json $OUT/pack.json
    RNNLAB_COMPILE=0 RNNLAB_NATIVE=0 python scripts/bench_pack.py --device cpu --quick  # smoke

Each member is the quickstart's model at the asked size (the adding problem's shapes: I = 2, a
last-step regression head, MSE) with its own seed and its own batch (B x T), fixed for the run.
One *member-step* is one member's forward + backward + gradient clipping (``--clip``, the
quickstart's 1.0; 0 for none) + Adam step. Paths, each timed over ``--rounds`` rounds of N
member-steps after ``--warmup`` rounds (compilation happens there), median of ``--repeats``:

- ``solo``: the per-member path, what N solo runs compute: each model's own forward (the scratch
  cells' default backend here: compiled per-step graphs unless RNNLAB_COMPILE=0; on the CPU the
  native loops unless RNNLAB_NATIVE=0; RNNLAB_CUDA_GRAPHS=1 for their loop graphs), backward,
  ``clip_grad_norm_`` and its own Adam, one model after another. The reference of "vs solo".
- ``solo fused``: the same with torch.nn's cuDNN/oneDNN layers (``impl=fused``), for scale.
- ``stacked``: ``stacked_model_forward`` over all members at once, autograd's backward, each
  member clipped by its own norm in one foreach pass (per-member factors), then the optimizer:
  ``per-member`` (N Adam, one after another) or ``one-pass`` (one Adam over every member's
  tensors: members sharing lr and betas; per-tensor arithmetic, so each member's update is the
  one its own Adam makes).
- ``stacked graph`` (CUDA only, ``--graphs``): the whole stacked round (forward, backward,
  clipping, Adam with ``capturable=True``) captured once as one CUDA graph and replayed.

The solo path here is a plain loop: real solo runs also pay Lightning's per-step ~1.5 ms each
(a pack pays it once per pack step), so "vs solo" understates the gain over solo runs.
Prints one markdown table row per (cell, N, path, optimizer) as it is measured (a row that fails
says why and the others go on), then the device, torch and the settings. Not a test: run it on
a quiet machine (on a shared CPU the numbers are noise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # a checkout, uninstalled

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from rnnlab.cells.members import stacked_model_forward  # noqa: E402

INPUT, OUTPUT = 2, 1  # the adding problem: two channels in, one value out, at the last step
COLUMNS = ("device", "cell", "N", "H", "B", "T", "path", "optimizer", "ms / round",
           "member-steps / s", "member-steps / h", "vs solo")


# ---------------------------------------------------------------------------------- models
class BareModel(nn.Module):
    """SequenceModel's forward for the adding problem (identity encoder, last-step head), for a
    machine without rnnlab's config layer (omegaconf): the same cells, head and computation."""

    encoder_kind, encoder = "identity", None
    _flow_watch = False

    class spec:  # noqa: N801 - SequenceModel.spec's one field used here
        per_step = False

    def __init__(self, cell: str, hidden: int, impl: str):
        super().__init__()
        from rnnlab.cells import GRU, LSTM, RNN, FusedGRU, FusedLSTM, FusedRNN

        classes = {"scratch": {"rnn": RNN, "gru": GRU, "lstm": LSTM},
                   "fused": {"rnn": FusedRNN, "gru": FusedGRU, "lstm": FusedLSTM}}
        self.rnn = classes[impl][cell](INPUT, hidden, batch_first=True)
        self.head = nn.Linear(hidden, OUTPUT)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def model_factory():
    """(build(cell, hidden, impl) -> model, which): rnnlab's SequenceModel where it imports."""
    try:
        from rnnlab.data.base import DataSpec
        from rnnlab.model.models import SequenceModel
    except ImportError as error:
        return (lambda cell, hidden, impl: BareModel(cell, hidden, impl),
                f"BareModel ({error.name} missing)")
    spec = DataSpec("last_regression", output_size=OUTPUT, input_size=INPUT)
    return (lambda cell, hidden, impl: SequenceModel(spec, cell=cell, hidden_size=hidden,
                                                     impl=impl), "SequenceModel")


def members(build, cell: str, n: int, hidden: int, impl: str, device) -> list[nn.Module]:
    out = []
    for i in range(n):
        torch.manual_seed(i)
        out.append(build(cell, hidden, impl).to(device).train())
    return out


# ------------------------------------------------------------------------------ the steps
def clip_members_(groups: list[list[torch.Tensor]], max_norm: float) -> None:
    """Each member's gradients scaled as its own ``clip_grad_norm_(params, max_norm)`` does (its
    own total norm, never one over all members), in one foreach norm pass for all of them."""
    grads = [p.grad for g in groups for p in g]
    norms = torch.stack(torch._foreach_norm(grads)).view(len(groups), -1)
    totals = torch.linalg.vector_norm(norms, 2, dim=1)
    coefs = (max_norm / (totals + 1e-6)).clamp(max=1.0)
    for coef, g in zip(coefs.unbind(0), groups):
        torch._foreach_mul_([p.grad for p in g], coef)


def make_optimizer(models, mode: str, lr: float, capturable: bool = False):
    """``step()`` of the members' optimizers: ``per-member`` Adams, or ``one-pass``."""
    kw = {"lr": lr, "foreach": True}
    if capturable:
        kw["capturable"] = True
    if mode == "one-pass":
        opt = torch.optim.Adam([p for m in models for p in m.parameters()], **kw)
        return opt.step, [opt]
    opts = [torch.optim.Adam(m.parameters(), **kw) for m in models]

    def step():
        for opt in opts:
            opt.step()
    return step, opts


def solo_round(models, opts, x, y, clip: float) -> None:
    for model, opt, xi, yi in zip(models, opts, x, y):
        loss = F.mse_loss(model(xi), yi)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)


def stacked_round_fn(models, step, opts, x, y, clip: float, zero: bool = True):
    groups = [list(m.parameters()) for m in models]

    def round_():
        out = stacked_model_forward(models, x)  # [N, B, 1]
        loss = ((out - y) ** 2).mean(dim=(1, 2)).sum()  # each member's MSE; d/d(own) = its own
        loss.backward()
        if clip:
            clip_members_(groups, clip)
        step()
        if zero:
            for opt in opts:
                opt.zero_grad(set_to_none=True)
    return round_


def graphed(models, mode, lr, x, y, clip, warmup: int):
    """The whole stacked round as one CUDA graph (PyTorch's whole-network capture recipe)."""
    step, opts = make_optimizer(models, mode, lr, capturable=True)
    eager = stacked_round_fn(models, step, opts, x, y, clip, zero=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 3)):
            eager()
    torch.cuda.current_stream().wait_stream(side)
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        stacked_round_fn(models, step, opts, x, y, clip, zero=False)()
    return graph.replay


# ------------------------------------------------------------------------------- timing
def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_round(fn, device, warmup: int, rounds: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        sync(device)
        times.append((time.perf_counter() - start) / rounds)
    return statistics.median(times)


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def row(values: dict) -> str:
    return "| " + " | ".join(str(values.get(c, "")) for c in COLUMNS) + " |"


def bench_config(args, build, device, graphs: bool, timing: dict, report, base: dict) -> None:
    """Every path's row for one (cell, N) (``base``: the row's fixed columns)."""
    cell, n, H, B, T = base["cell"], base["N"], base["H"], base["B"], base["T"]
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(n, B, T, INPUT, generator=g).to(device)
    y = torch.rand(n, B, OUTPUT, generator=g).to(device)
    solo_s = None

    def measure(path: str, optim: str, make) -> None:
        nonlocal solo_s
        try:
            fn = make()
            seconds = seconds_per_round(fn, device, **timing)
        except Exception as error:  # noqa: BLE001 - a failed row says why; the others go on
            report({**base, "path": path, "optimizer": optim,
                    "ms / round": f"error: {type(error).__name__}: "
                                  f"{str(error).splitlines()[0][:120]}"})
            return
        rate = n / seconds
        if path == "solo":
            solo_s = seconds
        report({**base, "path": path, "optimizer": optim,
                "ms / round": f"{seconds * 1e3:.2f}",
                "member-steps / s": f"{rate:.0f}",
                "member-steps / h": f"{rate * 3600:.3g}",
                "vs solo": "" if solo_s is None else f"{solo_s / seconds:.2f}x"})

    def solo(impl: str):
        def make():
            models = members(build, cell, n, H, impl, device)
            opts = [torch.optim.Adam(m.parameters(), lr=args.lr, foreach=True) for m in models]
            return lambda: solo_round(models, opts, x, y, args.clip)
        return make

    def stacked(mode: str):
        def make():
            models = members(build, cell, n, H, "scratch", device)
            step, opts = make_optimizer(models, mode, args.lr)
            return stacked_round_fn(models, step, opts, x, y, args.clip)
        return make

    def stacked_graph(mode: str):
        def make():
            models = members(build, cell, n, H, "scratch", device)
            return graphed(models, mode, args.lr, x, y, args.clip, args.warmup)
        return make

    measure("solo", "per-member", solo("scratch"))
    if not args.no_fused:
        measure("solo fused", "per-member", solo("fused"))
    for mode in args.optim.split(","):
        measure("stacked", mode, stacked(mode))
    if graphs:
        for mode in args.optim.split(","):
            measure("stacked graph", mode, stacked_graph(mode))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--cells", default="gru", help="comma-separated: rnn,gru,lstm")
    parser.add_argument("--members", default="32,8", help="N values, comma-separated")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--optim", default="per-member,one-pass",
                        help="stacked path's optimizers: per-member,one-pass")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip", type=float, default=1.0, help="max grad norm; 0: no clipping")
    parser.add_argument("--no-fused", action="store_true", help="skip the 'solo fused' rows")
    parser.add_argument("--graphs", action=argparse.BooleanOptionalAction, default=None,
                        help="also the stacked round as one CUDA graph (default: on cuda)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="smoke sizes: N=4, H=16, B=8, T=10, 1 warm-up, 2 rounds, 1 repeat")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.hidden, args.batch, args.seq_len = "4", 16, 8, 10
        args.warmup, args.rounds, args.repeats = 1, 2, 1
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here", file=sys.stderr)
        return 2
    graphs = device.type == "cuda" if args.graphs is None else args.graphs
    if graphs and device.type != "cuda":
        print("--graphs needs --device cuda", file=sys.stderr)
        return 2
    build, model_kind = model_factory()
    name = device_name(device)
    H, B, T = args.hidden, args.batch, args.seq_len
    timing = dict(warmup=args.warmup, rounds=args.rounds, repeats=args.repeats)
    print(f"# bench_pack: {name}; torch {torch.__version__}; model {model_kind}; "
          f"RNNLAB_COMPILE={os.environ.get('RNNLAB_COMPILE', '(default on)')} "
          f"RNNLAB_NATIVE={os.environ.get('RNNLAB_NATIVE', '(default on)')} "
          f"RNNLAB_CUDA_GRAPHS={os.environ.get('RNNLAB_CUDA_GRAPHS', '(default off)')}; "
          f"clip={args.clip} lr={args.lr}; {timing}", flush=True)
    print(row({c: c for c in COLUMNS}))
    print("|" + "---|" * len(COLUMNS), flush=True)
    rows = []

    def report(values: dict) -> None:
        rows.append(values)
        print(row(values), flush=True)

    for cell in args.cells.split(","):
        for n in (int(v) for v in args.members.split(",")):
            bench_config(args, build, device, graphs, timing, report,
                         {"device": name, "cell": cell, "N": n, "H": H, "B": B, "T": T})
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__,
                                         "model": model_kind, "args": vars(args) | {
                                             "json": str(args.json)}, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
