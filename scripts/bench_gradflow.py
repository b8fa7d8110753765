#!/usr/bin/env python
"""What the gradient-flow monitor costs: training steps/s with and without it, same process.

    python scripts/bench_gradflow.py                      # the settings below, 5 repeats
    python scripts/bench_gradflow.py --repeats 9 --json logs/bench_gradflow.json

Each setting is the quickstart run (copy task, T = 10 blanks so 30 steps, hidden 128, batch 64,
W&B offline + CSV loggers, checkpointing on) trained for ``--steps`` optimizer steps, once with
``callbacks.gradflow`` at its defaults (or the probe named in the setting) and once without it
(``~callbacks.gradflow``). The two alternate (on/off, then off/on) so drift in a shared machine
hits both; throughput counts train steps only, from the first step after ``--warmup`` to the end
of training, validation time taken out (the monitor's epoch-end work, npz and heatmap, stays in).
Reported: the median steps/s of each arm, the median of the per-pair overheads (also over the
"calm" pairs alone: both arms within 25% of their arm's fastest run, i.e. not hit by a burst of
other load), and, less noisy on a shared machine, the share of the timed wall time spent inside
the monitor's hooks, its direct cost. (Not in the hooks: at measured steps the armed model also
computes dL/dx of its input in the backward, one small matmul.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import torch
from lightning.pytorch.callbacks import Callback

SETTINGS = {
    "fused-train": ["model=gru", "model.impl=fused"],
    "scratch-train": ["model=gru", "model.impl=scratch"],
    "fused-fixed": ["model=gru", "model.impl=fused", "callbacks.gradflow.probe=fixed"],
    "scratch-fixed": ["model=gru", "model.impl=scratch", "callbacks.gradflow.probe=fixed"],
}
BASE = ["experiment=quickstart", "trainer.enable_progress_bar=false", "test=false",
        "data.val_size=256"]


HOOKS = ("on_train_start", "on_train_batch_start", "on_before_optimizer_step",
         "on_train_epoch_end", "on_train_end")
_in_window = [False]  # inside the timed part of a run
_hook_seconds: dict[str, float] = {}


def _time_monitor_hooks() -> None:
    """Wrap the monitor's hooks with a clock: the time spent in them is its direct cost."""
    from rnnlab.gradflow.monitor import GradientFlowMonitor

    for name in HOOKS:
        original = getattr(GradientFlowMonitor, name)

        def timed(self, *args, _original=original, _name=name, **kwargs):
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                if _in_window[0]:
                    _hook_seconds[_name] = (_hook_seconds.get(_name, 0.0)
                                            + time.perf_counter() - start)

        setattr(GradientFlowMonitor, name, timed)


class StepTimer(Callback):
    """Train-loop wall time from batch ``warmup`` on, validation excluded."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start: float | None = None
        self.elapsed = 0.0
        self.validation = 0.0
        self.steps = 0
        self._val_start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.perf_counter()
            _in_window[0] = True

    def on_validation_start(self, trainer, pl_module):
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if self.start is not None:
            self.validation += time.perf_counter() - self._val_start

    def on_train_end(self, trainer, pl_module):
        # the timer runs after the monitor (callbacks run in list order): its end-of-training
        # work is inside the window
        self.elapsed = time.perf_counter() - self.start - self.validation
        self.steps = trainer.global_step - self.warmup
        _in_window[0] = False


def compose(overrides: list[str], run_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from rnnlab.run.train import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.runtime.cwd = str(run_dir)
        cfg.hydra.job.num = 0
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir / "logs")
        cfg.paths.data_dir = os.environ.get("RNNLAB_DATA", str(run_dir / "data"))
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def steps_per_second(overrides: list[str], steps: int, warmup: int, root: Path
                     ) -> tuple[float, float, float]:
    """(steps/s, share of the time spent inside the monitor's recurring hooks, seconds in its
    once-per-run end of training). The end of training (the final fixed probe, the labelled
    heatmap, the last npz) is taken out of the rate: it is paid once per run, not per step."""
    from rnnlab.run import tracking
    from rnnlab.run.train import build

    run_dir = Path(tempfile.mkdtemp(dir=root))
    cfg = compose([*BASE, *overrides, f"trainer.max_steps={steps + warmup}"], run_dir)
    datamodule, task, trainer = build(cfg)
    timer = StepTimer(warmup)
    trainer.callbacks.append(timer)
    _hook_seconds.clear()
    try:
        trainer.fit(task, datamodule=datamodule)
    finally:
        _in_window[0] = False
        tracking.finish_wandb()
    recurring = sum(v for k, v in _hook_seconds.items() if k != "on_train_end")
    end = _hook_seconds.get("on_train_end", 0.0)
    return timer.steps / (timer.elapsed - end), recurring / (timer.elapsed - end), end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated, from: {', '.join(SETTINGS)}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500,
                        help="timed optimizer steps per run (a multiple of every_n_steps=100)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    _time_monitor_hooks()
    root = Path(tempfile.mkdtemp(prefix="bench_gradflow_"))
    report = {"steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
              "threads": torch.get_num_threads(), "compile": os.environ.get("RNNLAB_COMPILE", "1"),
              "settings": {}}
    for name in args.settings.split(","):
        overrides = SETTINGS[name]
        arms = {"on": overrides, "off": [*overrides, "~callbacks.gradflow"]}
        # one untimed run per arm first: compile caches, imports, W&B service
        for arm in ("on", "off"):
            steps_per_second(arms[arm], 20, 5, root)
        rates: dict[str, list[float]] = {"on": [], "off": []}
        overheads, in_hooks, ends = [], [], []
        for repeat in range(args.repeats):
            order = ("on", "off") if repeat % 2 == 0 else ("off", "on")
            pair = {arm: steps_per_second(arms[arm], args.steps, args.warmup, root)
                    for arm in order}
            for arm, (rate, _, _) in pair.items():
                rates[arm].append(rate)
            overheads.append(100.0 * (1.0 - pair["on"][0] / pair["off"][0]))
            in_hooks.append(100.0 * pair["on"][1])
            ends.append(pair["on"][2])
            print(f"{name} #{repeat}: on {pair['on'][0]:.1f} steps/s, off {pair['off'][0]:.1f} "
                  f"steps/s, overhead {overheads[-1]:+.1f}%, in the monitor's hooks "
                  f"{in_hooks[-1]:.2f}% of the time (+{ends[-1]:.2f} s once at the end)",
                  file=sys.stderr, flush=True)
        result = {"on_steps_per_s": rates["on"], "off_steps_per_s": rates["off"],
                  "overhead_pct": overheads, "in_hooks_pct": in_hooks, "end_s": ends,
                  "median_on": statistics.median(rates["on"]),
                  "median_off": statistics.median(rates["off"]),
                  "median_overhead_pct": statistics.median(overheads),
                  "median_in_hooks_pct": statistics.median(in_hooks),
                  "median_end_s": statistics.median(ends)}
        result["overhead_of_medians_pct"] = 100.0 * (1 - result["median_on"] / result["median_off"])
        # Pairs no burst of other load hit: both arms within 25% of their arm's fastest run.
        fastest = {arm: max(rates[arm]) for arm in rates}
        calm = [i for i in range(args.repeats)
                if all(rates[arm][i] >= 0.75 * fastest[arm] for arm in rates)]
        result["calm_pairs"] = calm
        if calm:
            result["calm_median_overhead_pct"] = statistics.median(overheads[i] for i in calm)
            result["calm_median_in_hooks_pct"] = statistics.median(in_hooks[i] for i in calm)
        report["settings"][name] = result
        print(f"{name}: {result['median_off']:.1f} -> {result['median_on']:.1f} steps/s, median "
              f"paired overhead {result['median_overhead_pct']:+.1f}% (of medians "
              f"{result['overhead_of_medians_pct']:+.1f}%); time in the monitor's hooks "
              f"{result['median_in_hooks_pct']:.2f}% (+{result['median_end_s']:.2f} s once at the "
              "end)", flush=True)
        if calm:
            print(f"{name}, the {len(calm)} calm pairs: paired overhead "
                  f"{result['calm_median_overhead_pct']:+.1f}%, in the hooks "
                  f"{result['calm_median_in_hooks_pct']:.2f}%", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
