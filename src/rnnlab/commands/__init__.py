"""Every console script, thin: parse the command line, call a package, print. One module per
command (pyproject.toml's [project.scripts]):

- train: rnnlab-train, and ``python -m rnnlab.train`` (checks the command line before torch
  loads, then runs rnnlab.run.train);
- compare, reproduce: rnnlab-compare and rnnlab-reproduce (the studies of rnnlab.studies);
- aggregate, report: rnnlab-aggregate and rnnlab-report (rnnlab.results: tables, figures);
- dashboard, wandb_sweep: rnnlab-dashboard and rnnlab-wandb-sweep (rnnlab.wandb);
- plot_gradflow, lyapunov: rnnlab-plot-gradflow and rnnlab-lyapunov (rnnlab.gradflow);
- by_position: rnnlab-by-position (rnnlab.results.by_position).

A command imports its package's work after its arguments are parsed where it can, so ``--help``
stays quick."""

from __future__ import annotations

import sys


def refuse(prog: str, message: str) -> SystemExit:
    """Bad input (a missing or empty run dir, an unknown metric or setting): one line on stderr
    and exit 2, as every rnnlab command does (rnnlab-lyapunov, rnnlab-by-position, rnnlab-train).
    Raise what it returns."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return SystemExit(2)
