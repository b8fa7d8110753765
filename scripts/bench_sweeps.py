"""Sweeps of small models: packs (hydra/launcher=pack) against today's way (hydra/launcher=joblib
n_jobs=2, one thread per job), whole `rnnlab-train -m` commands, the arms alternated round by
round so that a drift of the machine's speed hits both.

    python scripts/bench_sweeps.py                    # both measurements, 2 rounds
    python scripts/bench_sweeps.py --rounds 3 --only steady

- wall: the wall time of `-m experiment=quickstart seed=0,...,7` (the preset sweeps
  model=rnn,gru,lstm: 24 jobs; default loggers: W&B offline + CSV, the test split, the report),
  joblib against pack.
- steady: member-steps per hour in the steady state at the quickstart size, packs of 8: 16 jobs
  (`seed=0,...,15`, logger=csv, test=false, no report figures) at two budgets (--short and
  --long epochs of 128 steps); (time(long) - time(short)) / (16 x 128 x (long - short)) is the
  time of one member-step once set-up, first compiles and the test are paid.

Nothing else should run on the machine meanwhile (the script prints the load average before and
after). Prints a markdown table: per arm the medians over rounds and each round's value, and the
ratio joblib / pack (> 1: packs are faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = [str(Path(sys.executable).parent / "rnnlab-train")]
ARMS = {
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "pack": ["hydra/launcher=pack", "hydra.launcher.parallel=2"],
}


def _sweep(arm: str, overrides: list[str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [*TRAIN, "-m", *overrides, *ARMS[arm], f"hydra.sweep.dir={out}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{arm}: exit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=("wall", "steady"))
    parser.add_argument("--short", type=int, default=2, help="epochs of the short budget")
    parser.add_argument("--long", type=int, default=6, help="epochs of the long budget")
    parser.add_argument("--cell", default="gru")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_sweeps_"))
    print(f"# load average before: {os.getloadavg()}; cell {args.cell}; {args.rounds} rounds")
    wall: dict[str, list[float]] = {arm: [] for arm in ARMS}
    steady: dict[str, list[float]] = {arm: [] for arm in ARMS}
    # the command: the preset sweeps model=rnn,gru,lstm, so 24 jobs
    quick = ["experiment=quickstart", f"seed={','.join(map(str, range(8)))}"]
    many = ["experiment=quickstart", f"model={args.cell}", "logger=csv", "test=false",
            "hydra.callbacks.sweep_summary.figures=false",
            f"seed={','.join(map(str, range(16)))}"]
    for round_ in range(args.rounds):
        order = list(ARMS) if round_ % 2 == 0 else list(reversed(ARMS))
        for arm in order:
            if args.only in (None, "wall"):
                wall[arm].append(_sweep(arm, quick, work / f"wall-{arm}"))
                print(f"round {round_} {arm} wall: {wall[arm][-1]:.1f} s", flush=True)
            if args.only in (None, "steady"):
                short = _sweep(arm, [*many, f"trainer.max_epochs={args.short}"], work / "s")
                long = _sweep(arm, [*many, f"trainer.max_epochs={args.long}"], work / "l")
                steps = 16 * 128 * (args.long - args.short)
                steady[arm].append(3600.0 * steps / (long - short))
                print(f"round {round_} {arm} steady: {short:.1f} s / {long:.1f} s -> "
                      f"{steady[arm][-1]:,.0f} member-steps/hour", flush=True)
    print(f"# load average after: {os.getloadavg()}")
    print("\n| measurement | joblib n_jobs=2 | pack (parallel=2) | ratio |")
    print("|---|---:|---:|---:|")
    if wall["pack"]:
        j, p = statistics.median(wall["joblib"]), statistics.median(wall["pack"])
        rounds = " / ".join(", ".join(f"{x:.1f}" for x in wall[arm]) for arm in ARMS)
        print(f"| wall, 24 quickstart jobs (s; rounds {rounds}) | {j:.1f} | {p:.1f} | "
              f"**{j / p:.2f}x** |")
    if steady["pack"]:
        j, p = statistics.median(steady["joblib"]), statistics.median(steady["pack"])
        print(f"| member-steps per hour, steady state | {j:,.0f} | {p:,.0f} | **{p / j:.2f}x** |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
