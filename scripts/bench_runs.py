#!/usr/bin/env python
"""Time whole rnnlab-train runs, each a fresh process: what a run costs before and around its
training steps (start-up, compiling or loading the step graphs, validation, test, reports).

    python scripts/bench_runs.py                         # the 1-step runs, 5 rounds
    python scripts/bench_runs.py --multirun 2            # and `make run`'s sweep, 2 rounds
    python scripts/bench_runs.py --compare /tmp/old/src  # also another checkout's src

Commands (the quickstart preset, GRU, CSV logger for the 1-step runs):

- 1-step scratch, warm: ``rnnlab-train experiment=quickstart model=gru trainer.max_steps=1
  logger=csv`` with the inductor cache this machine already has;
- 1-step scratch, cold: the same with an empty ``TORCHINDUCTOR_CACHE_DIR`` (each time a new one);
- 1-step fused: the same with ``model.impl=fused`` (torch.nn's cells, nothing to compile);
- make run: ``rnnlab-train --multirun experiment=quickstart`` (rnn, gru, lstm; 1,024 steps each).

The commands alternate round after round (and, with ``--compare``, the two versions alternate
within each round, in turn first), so a noisy machine slows them alike; the table gives medians
and the ratios the [speed] targets name (scratch / fused warm, cold / warm).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
ONE_STEP = ["experiment=quickstart", "model=gru", "trainer.max_steps=1", "logger=csv"]
COMMANDS = {  # name: (overrides, empty inductor cache)
    "1-step scratch, warm": (ONE_STEP, False),
    "1-step scratch, cold": (ONE_STEP, True),
    "1-step fused": ([*ONE_STEP, "model.impl=fused"], False),
}
MULTIRUN = "make run (3 x 1,024 steps)"


def _time(overrides: list[str], src: str | None, cold: bool, multirun: bool) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    if cold:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor")
    where = (["--multirun", "experiment=quickstart", f"hydra.sweep.dir={work / 'sweep'}"]
             if multirun else [*overrides, f"paths.output_dir={work / 'run'}"])
    # python -c: the console script's entry point, importing rnnlab from PYTHONPATH when given
    argv = [PY, "-c", "from rnnlab.commands.train import main; main()", *where]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="rounds of the 1-step runs")
    p.add_argument("--multirun", type=int, default=0, help="rounds of make run's sweep (0: none)")
    p.add_argument("--compare", default=None, metavar="SRC",
                   help="also time with this checkout's src first on the module path")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    versions = {"new": None} if args.compare is None else {"old": args.compare, "new": None}
    load0 = os.getloadavg()
    times = {v: {name: [] for name in [*COMMANDS, MULTIRUN]} for v in versions}
    for src in versions.values():  # warm-up: page cache, .pyc files, the warm cache
        _time(ONE_STEP, src, False, False)
    for r in range(max(args.repeats, args.multirun)):
        order = list(versions) if r % 2 == 0 else list(versions)[::-1]
        if r < args.repeats:
            for name, (overrides, cold) in COMMANDS.items():
                for version in order:
                    times[version][name].append(_time(overrides, versions[version], cold, False))
        if r < args.multirun:
            for version in order:
                times[version][MULTIRUN].append(_time([], versions[version], False, True))
        print(f"round {r + 1} done", file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    print(f"# {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}  nproc="
          f"{os.cpu_count()}, load average {load0[0]:.2f} -> {load1[0]:.2f}")
    head = "| command |" + "".join(f" {v} median s (min–max) |" for v in versions)
    print(head + "\n|---|" + "---:|" * len(versions))
    med = {v: {n: statistics.median(t) for n, t in times[v].items() if t} for v in versions}
    for name in [*COMMANDS, MULTIRUN]:
        if not times["new"][name]:
            continue
        cells = "".join(f" {med[v][name]:.2f} ({min(times[v][name]):.2f}–"
                        f"{max(times[v][name]):.2f}) |" for v in versions)
        print(f"| {name} |{cells}")
    for v in versions if args.repeats else ():  # the ratios need the 1-step runs
        m = med[v]
        print(f"{v}: scratch / fused (warm) {m['1-step scratch, warm'] / m['1-step fused']:.2f}x, "
              f"cold / warm {m['1-step scratch, cold'] / m['1-step scratch, warm']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"load": [load0[0], load1[0]], "times_s": times},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
