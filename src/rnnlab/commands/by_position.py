"""rnnlab-by-position: a trained run's accuracy at each position t of the sequence, on the test
split at the length it trained on and on fresh test sets at longer lengths (length
generalisation).

    rnnlab-by-position RUN_DIR [RUN_DIR ...] [--seq-len 64,128,256] [--bins 8]
                       [--checkpoint best|last]

For tasks scored at every step (``step_classification``: copy, selective copy, parity). The
headline accuracy averages over positions, which hides *where* a model fails: on parity a cell
that tracks the state only over a short window is exact at the first steps and at chance after.
Per run, per length: the accuracy over all scored steps (at the trained length, the run's own
test split, so it equals results.json's test/acc for the best checkpoint) and the accuracy in
``--bins`` equal ranges of the scored positions. Prints a table and writes
``RUN_DIR/by_position.json`` (atomically) with the per-position counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnnlab.run.trained import CHECKPOINTS


def _lengths(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seq-len must be comma-separated integers, got "
                                         f"{text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--seq-len values must be >= 1, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnlab-by-position",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    parser.add_argument("--seq-len", type=_lengths, default=None,
                        help="test lengths, e.g. 64,128,256 (default: the trained length)")
    parser.add_argument("--bins", type=int, default=8, help="position ranges (default 8)")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best",
                        help="which checkpoint (default: best, the one the test split used)")
    args = parser.parse_args(argv)
    if args.bins < 1:
        parser.error("--bins must be >= 1")
    from rnnlab.results.by_position import by_position, render

    results = []
    for run_dir in args.run_dirs:
        try:
            results.append(by_position(run_dir, args.seq_len, args.bins, args.checkpoint))
        except ValueError as error:
            print(f"rnnlab-by-position: error: {error}", file=sys.stderr)
            return 2
    from rnnlab.run.atomic import atomic_open

    for result in results:
        with atomic_open(Path(result["run_dir"]) / "by_position.json", "w") as handle:
            json.dump(result, handle)
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
