"""rnnlab-lyapunov: the Lyapunov spectrum, step-Jacobian norms and gate statistics of a trained
run, on demand, from its checkpoint (docs/gradflow.md, "Step Jacobians").

    rnnlab-lyapunov RUN_DIR [--checkpoint best|last] [--rows 16] [--k 8]

Rebuilds the run's model from its config (results.json, else ``.hydra/config.yaml``), loads
the checkpoint's weights, takes the first ``--rows`` rows of the first validation batch and
measures what the monitor's dynamics record holds (rnnlab.gradflow.dynamics), in eval mode.
Prints one line per layer and
writes ``RUN_DIR/lyapunov.json`` (atomically): per layer the top-k exponents, the summary
scalars, and the checkpoint's step. Scratch cells only (torch.nn's kernels have no step
equations of ours).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnnlab.run.trained import CHECKPOINTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnlab-lyapunov", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best",
                        help="which checkpoint (default: best, the one the test split used)")
    parser.add_argument("--rows", type=int, default=16, help="validation rows (default 16)")
    parser.add_argument("--k", type=int, default=8, help="top exponents (default 8)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.k < 1:
        print("rnnlab-lyapunov: error: --rows and --k must be >= 1", file=sys.stderr)
        return 2
    from rnnlab.gradflow.lyapunov import measure_run

    try:
        result = measure_run(args.run_dir, args.checkpoint, args.rows, args.k)
    except ValueError as error:
        print(f"rnnlab-lyapunov: error: {error}", file=sys.stderr)
        return 2
    from rnnlab.run.atomic import atomic_open

    out = args.run_dir / "lyapunov.json"
    with atomic_open(out, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"{args.run_dir} ({args.checkpoint}.ckpt, step {result['step']}, {result['rows']} "
          f"validation rows, state size {result['state_size']}):")
    for name, layer in result["layers"].items():
        exps = ", ".join(f"{v:.4f}" for v in layer["lyapunov"])
        extra = "".join(f", {key} {layer[key]:.3g}" for key in ("jacobian_norm_mean",
                        "tau_median", "case_carry") if key in layer)
        print(f"  {name}: λ (nats/step) = [{exps}]{extra}")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
