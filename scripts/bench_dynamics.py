#!/usr/bin/env python
"""What a step-Jacobian / gate record costs (rnnlab.gradflow.dynamics), against a training step
of the same model, in one process, interleaved round by round.

    python scripts/bench_dynamics.py                  # quickstart size (B=64, T=50, H=64), 1 thread
    python scripts/bench_dynamics.py --T 100 --H 128 --rows 4 --repeats 5

Per cell: the median seconds of one record (``DynamicsRecorder.measure`` on ``--rows`` rows)
and of one optimizer step (forward, backward, Adam) at batch ``--B``, and what the default
schedule (a record at the start and at the end of training) adds to a run of ``--steps``
steps, in percent.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnnlab.data.base import DataSpec
from rnnlab.gradflow.dynamics import DynamicsRecorder
from rnnlab.model.models import SequenceModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn,gru,lstm")
    parser.add_argument("--B", type=int, default=64)
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--I", type=int, default=2)
    parser.add_argument("--H", type=int, default=64)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = DataSpec(task_kind="last_regression", output_size=1, input_size=args.I)
    print(f"B={args.B} T={args.T} I={args.I} H={args.H} rows={args.rows} "
          f"threads={args.threads}; median of {args.repeats}")
    print("| cell | record (s) | train step (s) | record / step | default schedule "
          f"over {args.steps} steps |")
    print("|:--|--:|--:|--:|--:|")
    for cell in args.cells.split(","):
        torch.manual_seed(0)
        model = SequenceModel(spec, cell=cell, hidden_size=args.H)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        x, y = torch.randn(args.B, args.T, args.I), torch.randn(args.B, 1)
        batch = {"x": x, "y": y}

        def train_step(model=model, opt=opt, x=x, y=y):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()

        for _ in range(3):
            train_step()  # compile / warm up
        recorder = DynamicsRecorder(rows=args.rows)
        recorder.keep_batch(batch)
        recorder.measure(model, 0, 0)
        record, step = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            recorder.measure(model, 0, 0)
            record.append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(10):
                train_step()
            step.append((time.perf_counter() - t) / 10)
        r, s = statistics.median(record), statistics.median(step)
        share = 100 * 2 * r / (args.steps * s)
        print(f"| {cell} | {r:.3f} | {s:.4f} | {r / s:.1f} | {share:.2f}% |")


if __name__ == "__main__":
    main()
