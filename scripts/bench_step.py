#!/usr/bin/env python
"""Where a training step's time goes: the cell, the rest of the model and the loss, the
optimizer, the data, and Lightning (its loop, hooks, callbacks, logging and metrics).

    python scripts/bench_step.py                          # quickstart and ref sizes, gru/lstm/rnn
    python scripts/bench_step.py --sizes quickstart --cells gru --epochs 6
    python scripts/bench_step.py --compare /tmp/old/src   # the same, also for another checkout

Each (size, cell) is a real run built as ``rnnlab-train`` builds it (the quickstart preset: the
adding problem, W&B offline + CSV loggers, the default callbacks with the gradient-flow monitor
and the progress bar), trained for ``--epochs`` epochs. The Lightning step is the time between
consecutive training batches' starts within an epoch (so validation, at epoch ends, is out),
median over the steps. At each epoch end, in the same process (so that load hits both alike), a
copy of the model and an optimizer of the same kind time ``--plain`` steps of each part alone:

- cell: the recurrent stack's forward + backward on the encoded batch (scratch: its compiled
  step graphs and hand backward);
- model + loss: encoder, cell, head and the task's loss, forward + backward;
- optimizer: gradient clipping as configured (the quickstart clips the norm at 1.0),
  ``optimizer.step()`` and ``zero_grad()``;
- data: drawing a batch from the train dataloader.

The gradient-flow monitor's hooks are timed in the run itself, per step. Reported (medians, ms;
steps where the monitor records, every 100, are outside the median as they are rare: their cost
is in docs/gradflow.md): the Lightning step, each part, "Lightning" = step − model − optimizer −
data − monitor (the loop, the other callbacks' hooks, ``self.log``, torchmetrics, the
progress bar, the loggers), and "outside the cell" = (step − cell) / step. ``--hooks`` also
times every callback's per-step hooks and the task's methods and lists them (µs per step,
means). ``--compare SRC`` runs every measurement also with ``SRC`` (another checkout's ``src``)
first on the module path, alternating the two in fresh processes, and prints the two side by
side.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# (overrides on top of experiment=quickstart, what the table calls it)
SIZES = {
    "quickstart": ([], "B=64 T=50 I=2 H=64"),
    "ref": (["data.seq_len=100", "model.hidden_size=128"], "B=64 T=100 I=2 H=128"),
}
CELLS = ("gru", "lstm", "rnn")
PARTS = ("step", "cell", "model", "optimizer", "data", "monitor")
STEP_HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward",
              "on_before_zero_grad", "on_before_optimizer_step", "on_train_batch_end")


def _timed(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def plain_parts(task, trainer, n: int) -> dict[str, float]:
    """Seconds per call of each part alone, on copies (the run's weights and optimizer state are
    left as they were; drawing batches here advances the loader's shuffle, so the run's later
    epochs see another order than an unbenchmarked run: its timings, not its results, count)."""
    import torch

    from rnnlab.model.metrics import task_loss

    model = copy.deepcopy(task.model)
    model.train()
    optimizer = task.optimizer_factory(params=model.parameters())
    loader = trainer.train_dataloader
    fresh = iter(loader)
    batch = next(fresh)
    data = _timed(lambda: next(fresh), n)

    x, y, lengths = batch["x"], batch["y"], batch.get("lengths")
    kind = task.spec.task_kind
    inputs = model.encode(x).detach()
    with torch.no_grad():
        upstream = torch.randn_like(model.rnn(inputs, lengths=lengths)[0])

    def cell():
        output, _ = model.rnn(inputs, lengths=lengths)
        output.backward(upstream)

    def whole():
        loss = task_loss(kind, model(x, lengths), y)
        loss.backward()

    clip, algorithm = trainer.gradient_clip_val, trainer.gradient_clip_algorithm

    def step():  # as Lightning steps: clip (when configured), step, zero the gradients
        if clip:
            if str(algorithm) == "value":
                torch.nn.utils.clip_grad_value_(model.parameters(), clip)
            else:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()

    # warm: a signature first seen here compiles once it has recurred (compile_cache)
    for _ in range(4):
        cell()
        whole()
    # call by call in turn, medians: the cell and the whole model see the same moments of load
    calls: dict[str, list[float]] = {"cell": [], "model": [], "optimizer": []}
    for _ in range(n):
        for name, fn in (("cell", cell), ("model", whole), ("optimizer", step)):
            calls[name].append(_timed(fn, 1))
    return {**{name: statistics.median(v) for name, v in calls.items()}, "data": data}


def measure(size: str, cell: str, epochs: int, plain: int, extra: list[str] = (),
            hooks: bool = False) -> dict[str, list[float]]:
    """One run of (size, cell): its Lightning step periods and the parts' times per round."""
    from lightning.pytorch.callbacks import Callback

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_gradflow import compose

    from rnnlab.run import tracking
    from rnnlab.run.build import build

    class Rounds(Callback):
        def __init__(self):
            self.periods: list[float] = []
            self.parts: dict[str, list[float]] = {p: [] for p in PARTS[1:-1]}
            self.monitor: list[float] = []  # seconds in the gradient-flow monitor's hooks
            self._last: float | None = None

        def on_train_epoch_start(self, trainer, pl_module):
            self._last = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            now = time.perf_counter()
            if self._last is not None and batch_idx > 1:  # the epoch's first step warms up
                self.periods.append(now - self._last)
                self.monitor.append(monitor_step[0])
            self._last = now
            monitor_step[0] = 0.0

        def on_train_epoch_end(self, trainer, pl_module):
            for name, value in plain_parts(pl_module, trainer, plain).items():
                self.parts[name].append(value)

    monitor_step = [0.0]  # seconds in the monitor's hooks during the current step

    def time_hooks(trainer, task, every: bool) -> dict[str, list[float]]:
        """Wrap the gradient-flow monitor's per-step hooks (and with ``every``, each callback's
        and the task's per-step methods) with a clock: seconds per training step in each."""
        from rnnlab.gradflow import GradientFlowMonitor

        spent: dict[str, float] = {}
        targets = [(cb, type(cb).__name__, STEP_HOOKS) for cb in trainer.callbacks
                   if not isinstance(cb, Rounds)
                   and (every or isinstance(cb, GradientFlowMonitor))]
        if every:
            targets.append((task, "task", ("training_step", "configure_gradient_clipping",
                                           "optimizer_zero_grad", "log")))
        for obj, owner, names in targets:
            for name in names:
                original = getattr(obj, name)
                label = f"{owner}.{name}"

                def timed(*a, _original=original, _label=label, **k):
                    start = time.perf_counter()
                    try:
                        return _original(*a, **k)
                    finally:
                        if trainer.training and not trainer.sanity_checking:
                            took = time.perf_counter() - start
                            spent[_label] = spent.get(_label, 0.0) + took
                            if _label.startswith("GradientFlowMonitor."):
                                monitor_step[0] += took

                setattr(obj, name, timed)
        return spent

    run_dir = Path(tempfile.mkdtemp(prefix="bench_step_"))
    overrides = ["experiment=quickstart", f"model={cell}", *SIZES[size][0],
                 f"trainer.max_epochs={epochs}", "test=false", *extra]
    cfg = compose(overrides, run_dir)
    with tracking.temp_files_in(str(run_dir)):
        datamodule, task, trainer = build(cfg)
        rounds = Rounds()
        trainer.callbacks.insert(0, rounds)
        spent = time_hooks(trainer, task, every=hooks)
        try:
            trainer.fit(task, datamodule=datamodule)
        finally:
            tracking.finish_wandb()
    steps = max(trainer.global_step, 1)
    return {"step": rounds.periods, **rounds.parts, "monitor": rounds.monitor,
            "hooks": {k: v / steps for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
            if hooks else {}}


def summarise(raw: dict[str, list[float]]) -> dict[str, float]:
    ms = {p: 1e3 * statistics.median(raw[p]) for p in PARTS}
    ms["lightning"] = (ms["step"] - ms["model"] - ms["optimizer"] - ms["data"]
                       - ms["monitor"])
    ms["head_loss"] = ms["model"] - ms["cell"]
    ms["outside_pct"] = 100.0 * (ms["step"] - ms["cell"]) / ms["step"]
    ms["steps_per_hour"] = 3.6e6 / ms["step"]
    return ms


def _row(label: str, size: str, cell: str, s: dict[str, float]) -> str:
    def pct(v):
        return f"{v:.2f} ({100 * v / s['step']:.0f}%)"

    return (f"| {label}{size} | {cell} | {s['step']:.2f} | "
            f"{pct(s['cell'])} | "
            f"{pct(s['head_loss'])} | {pct(s['optimizer'])} | {pct(s['data'])} | "
            f"{pct(s['monitor'])} | {pct(s['lightning'])} | **{s['outside_pct']:.0f}%** | "
            f"{s['steps_per_hour']:,.0f} |")


HEADER = ("| {}size | cell | step ms | cell | encoder+head+loss | optimizer (+clipping) | data | "
          "gradient-flow monitor | Lightning (loop, other hooks, logging, metrics) | "
          "outside the cell | steps/hour |\n"
          "|{}---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def _worker(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    raw = measure(args.sizes, args.cells, args.epochs, args.plain, args.overrides, args.hooks)
    print("RESULT " + json.dumps(raw))
    return 0


def _run_worker(src: str | None, size: str, cell: str, args) -> dict[str, list[float]]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, __file__, "--_worker", "--sizes", size, "--cells", cell,
           "--epochs", str(args.epochs), "--plain", str(args.plain),
           "--threads", str(args.threads), *(["--hooks"] if args.hooks else []),
           *args.overrides]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"bench_step: the worker for {size}/{cell} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(SIZES), help=f"any of {', '.join(SIZES)}")
    p.add_argument("--cells", default=",".join(CELLS))
    p.add_argument("--epochs", type=int, default=4, help="epochs of 128 steps per run (rounds)")
    p.add_argument("--repeats", type=int, default=1,
                   help="processes per size, cell and version (columns: medians over them)")
    p.add_argument("--plain", type=int, default=20, help="calls per part and round")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--compare", default=None, metavar="SRC",
                   help="also measure with this checkout's src first on the module path")
    p.add_argument("--hooks", action="store_true",
                   help="also list the time per step in each callback hook and task method")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="further rnnlab-train overrides for every run,\n"
                   "e.g. trainer.enable_progress_bar=false ~callbacks.gradflow logger=csv")
    args = p.parse_args(argv)
    if args._worker:
        return _worker(args)
    for size in args.sizes.split(","):
        if size not in SIZES:
            p.error(f"--sizes: {size!r} is not one of {', '.join(SIZES)}")
    arms = {"new": None} if args.compare is None else {"old": args.compare, "new": None}
    results: dict[str, dict[str, dict]] = {arm: {} for arm in arms}
    for size in args.sizes.split(","):
        for cell in args.cells.split(","):
            key = f"{size}/{cell}"
            for repeat in range(args.repeats):
                flip = (len(results["new"]) + repeat) % 2 == 1
                for arm in (list(arms)[::-1] if flip else list(arms)):
                    raw = _run_worker(arms[arm], size, cell, args)
                    entry = results[arm].setdefault(key, {"raw": [], "runs": []})
                    entry["raw"].append(raw)
                    entry["runs"].append(summarise(raw))
                    print(f"{arm} {key} #{repeat}: step {entry['runs'][-1]['step']:.2f} ms",
                          file=sys.stderr, flush=True)
            for arm in arms:  # each column: the median over the processes
                runs = results[arm][key]["runs"]
                results[arm][key]["ms"] = {k: statistics.median(r[k] for r in runs)
                                           for k in runs[0]}
    label = "" if args.compare is None else "version | "
    print(HEADER.format(label, "---|" if args.compare else ""))
    for key in results["new"]:
        size, cell = key.split("/")
        for arm in arms:
            prefix = "" if args.compare is None else f"{arm} | "
            print(_row(prefix, f"{size} ({SIZES[size][1]})", cell, results[arm][key]["ms"]))
    if args.hooks:
        for key, entry in results["new"].items():
            print(f"\n{key}: µs per step (mean) in each hook")
            for name, seconds in entry["raw"][0]["hooks"].items():
                if seconds >= 2e-6:
                    print(f"  {1e6 * seconds:8.1f}  {name}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "epochs": args.epochs,
                                         "compare": args.compare, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
