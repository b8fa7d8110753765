"""The end-of-sweep table on the console fits the terminal; summary.md keeps every column."""

from __future__ import annotations

import io

from test_results import write_run

from rnnlab.results import aggregate, load_runs
from rnnlab.results.tables import display_frame, print_rich, render


def test_the_console_table_fits_100_columns_and_names_what_it_left_out(tmp_path):
    for i, (cell, loss) in enumerate([("rnn", 0.16), ("rnn", 0.17), ("gru", 0.001),
                                      ("gru", 0.002), ("lstm", 0.003), ("lstm", 0.004)]):
        write_run(tmp_path, str(i), {"model.cell": cell}, seed=i % 2,
                  metrics={"test/loss": loss, "test/mae": loss * 2, "test/acc": 0.5,
                           "baseline/loss": 1 / 6}, overrides=[f"model={cell}"])
    table = aggregate(load_runs([tmp_path]))
    shown, _ = display_frame(table)
    assert len(shown.to_markdown(index=False).splitlines()[0]) > 100  # all of it would not fit
    buffer = io.StringIO()
    print_rich(table, "", width=100, file=buffer)
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(line for line in lines if "cell" in line)
    for column in ("cell", "test/loss (mean±std)", "95% CI", "solved", "verdict"):
        assert column in header, column
    assert any(line.startswith("(") and "more column" in line and "summary.md" in line
               for line in lines)
    # summary.md (render) keeps every column
    assert all(c in render(table, "md") for c in shown.columns)
