#!/usr/bin/env python
"""Time what rnnlab-train answers before any training, against ``python -c "import torch"``.

Each command runs as a fresh process, the commands interleaved round after round (a noisy
machine slows them alike); the table gives the median wall time of each and its ratio to the
median of ``import torch`` (the target of the [house] work: ≤ 1.5× for --help and for a refused
typo).

    python scripts/bench_cli.py                 # 9 rounds
    python scripts/bench_cli.py --repeats 15 --json logs/bench_cli.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
# the console script, as a user runs it (beside this interpreter in a venv)
_SCRIPT = Path(PY).with_name("rnnlab-train")
TRAIN = [str(_SCRIPT)] if _SCRIPT.exists() else [PY, "-m", "rnnlab.train"]
COMMANDS = {  # name: (argv, expected exit status)
    "python -c 'import torch'": ([PY, "-c", "import torch"], 0),
    "rnnlab-train --help": ([*TRAIN, "--help"], 0),
    "rnnlab-train model=lstm --help": ([*TRAIN, "model=lstm", "--help"], 0),
    "rnnlab-train model=gruu (refused)": ([*TRAIN, "model=gruu"], 2),
    "rnnlab-train model.hiden_size=8 (refused)": ([*TRAIN, "model.hiden_size=8"], 2),
    "rnnlab-train monitor.mode=up (refused)": ([*TRAIN, "monitor.mode=up"], 2),
}
BASELINE = "python -c 'import torch'"


def _time(argv: list[str], expected: int, cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != expected:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}, expected {expected}:\n"
                         f"{done.stderr[-2000:]}")
    return elapsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=9, help="rounds (each runs every command once)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    # an empty folder: the commands write nothing (refusals) and read no local config
    cwd = Path(os.environ.get("TMPDIR", "/tmp")) / "rnnlab_bench_cli"
    cwd.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _name, (cmd, code) in COMMANDS.items():  # warm-up: the page cache, .pyc files
        _time(cmd, code, cwd)
    for _ in range(args.repeats):
        for name, (cmd, code) in COMMANDS.items():
            times[name].append(_time(cmd, code, cwd))
    load1 = os.getloadavg()
    base = statistics.median(times[BASELINE])
    print(f"# {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}  "
          f"{args.repeats} rounds, nproc={os.cpu_count()}, load average {load0[0]:.2f} -> "
          f"{load1[0]:.2f}")
    print(f"{'command':44} {'median s':>9} {'min s':>7} {'x import torch':>15}")
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append({"command": name, "median_s": median, "min_s": min(values),
                     "ratio": median / base, "times_s": values})
        print(f"{name:44} {median:9.2f} {min(values):7.2f} {median / base:15.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"load_average": [load0, load1], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
