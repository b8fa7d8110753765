"""Run directories -> tables, figures and reports a researcher can trust.

    from rnnlab.results import load_runs, aggregate, render
    runs = load_runs(["logs/multiruns/gru_variants"])    # one row per run
    table = aggregate(runs)                               # one row per setting, seeds pooled
    print(render(table, "md"))                            # with 95% intervals and Welch tests
    welch(a_losses, b_losses).p                           # the same test on any two samples

Rows are every setting that differs between the runs except ``seed`` (:func:`row_keys`).
"""

from rnnlab.config.naming import run_name
from rnnlab.config.references import Reference, parse_references
from rnnlab.results.aggregate import aggregate
from rnnlab.results.rowkeys import row_keys
from rnnlab.results.runs import find_results, load_runs
from rnnlab.results.stats import t_interval, welch
from rnnlab.results.tables import render
from rnnlab.run.verdict import verdict

__all__ = ["Reference", "aggregate", "find_results", "load_runs", "parse_references", "render",
           "row_keys", "run_name", "t_interval", "verdict", "welch"]
