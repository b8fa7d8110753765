"""The gradient-flow and dynamics figures read without the docs (issue 39, item 6): an empty panel
says "n/a" and why, no legend without labels (matplotlib's warning), dashed means one thing and a
legend says which, the textbook cases are explained on the figure, every record is labelled with
its true training step (and the record cadence where the last record precedes the end), and a
per-row figure says it draws one run per row. Synthetic records, Agg canvas: no training."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnnlab.gradflow.dynamics_plots import dynamics_figure
from rnnlab.gradflow.plots import curves_figure, final_step
from rnnlab.results.figures import one_run_per_row

T, K = 20, 4
TAU_BINS = np.array([2.0 ** k for k in range(13)] + [np.inf])


def _dynamics(gates: tuple[str, ...], cases: tuple[str, ...], steps=(0, 1024)) -> dict:
    rng = np.random.default_rng(0)
    R, G = len(steps), len(gates)
    shares = rng.dirichlet(np.ones(len(cases)), size=(R, 1)) if cases else np.zeros((R, 1, 0))
    hist = rng.integers(0, 5, size=(R, 1, 13)) if gates else np.zeros((R, 1, 13))
    return {
        "layers": np.array(["layer0"]), "jacobian_steps": np.array(steps),
        "jacobian_norm_mean": rng.uniform(0.5, 2, (R, 1, T)),
        "jacobian_norm_p10": np.full((R, 1, T), 0.4), "jacobian_norm_p90": np.full((R, 1, T), 2.1),
        "log10_product_mean": rng.normal(size=(R, 1, T)), "lyapunov": rng.normal(size=(R, 1, K)),
        "gate_names": np.array(gates, dtype=str), "gate_mean": rng.uniform(size=(R, 1, G, T)),
        "tau_bins": TAU_BINS, "tau_hist": hist,
        "case_names": np.array(cases, dtype=str), "case_shares": shares,
    }


RNN = _dynamics((), ())
GRU = _dynamics(("r", "z"), ("carry", "reset", "through_w", "mixed"))


def _draw(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "No artists with labels found to put in legend" ...
        fig = fn(*args, **kwargs)
    return fig


def _texts(ax) -> str:
    return " | ".join(t.get_text() for t in ax.texts)


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def test_a_tanh_rnn_alone_has_no_empty_panel_and_no_legend_warning():
    ax = _draw(dynamics_figure, [("rnn", RNN)]).axes
    for panel in (2, 4, 5):  # gate means, timescales, textbook cases: none for a cell without gates
        assert "n/a" in _texts(ax[panel]) and "rnn" in _texts(ax[panel]), panel
        assert ax[panel].get_legend() is None
    assert "keep" in _texts(ax[4]) and "gates" in _texts(ax[5])


def test_dashes_mean_first_record_and_a_legend_says_so_with_the_steps():
    ax = _draw(dynamics_figure, [("rnn", RNN), ("gru", GRU)]).axes
    said = _legend(ax[1])
    assert said == ["dashed: first record (training step 0)",
                    "solid: last record (training step 1024)"]
    # the gate panel tells gates apart by marker, never by dashes
    drawn = [line for line in ax[2].get_lines() if len(line.get_xdata())]
    assert {line.get_linestyle() for line in drawn} == {"-"}
    assert len({line.get_marker() for line in drawn}) == 2
    assert "n/a (no gates): rnn" in _legend(ax[2])  # in the legend: it hides no line
    assert "n/a (no keep gate): rnn" in _legend(ax[4])


def test_the_textbook_cases_are_explained_on_the_figure():
    ax = _draw(dynamics_figure, [("gru", GRU), ("rnn", RNN)]).axes
    legend = _legend(ax[5])
    assert legend[0].startswith("carry: keep > 0.9") and "gradient passes" in legend[0]
    assert any(t.startswith("reset: keep < 0.1, r < 0.1") for t in legend)
    assert any(t.startswith("through W:") and "W_hn" in t for t in legend)
    assert any(t.startswith("mixed:") for t in legend)
    assert "n/a (no gates)" in _texts(ax[5])  # the rnn's row
    assert "keep = the coefficient of h_{t−1}" in ax[5].get_title()


def _flow(steps, end, every=100) -> dict:
    R = len(steps)
    mean = np.tile(np.logspace(-6, -1, T), (R, 1, 1))
    return {"layers": np.array(["layer0"]), "quantity": "dL/dh_t", "steps": np.array(steps),
            "mean": mean, "p10": mean / 2, "p90": mean * 2, "every_n_steps": np.array(every),
            "param_steps": np.array([*steps, end])}


def test_the_last_record_is_labelled_with_its_true_step_and_why_it_is_not_the_end():
    data = _flow(list(range(0, 1001, 100)), 1024)
    assert final_step(data) == 1024
    ax = _draw(curves_figure, [("rnn", data), ("gru", data)]).axes
    assert ax[0].get_title() == "first record (training step 0)"
    assert ax[1].get_title().startswith("last record (training step 1000)")
    assert "a record every 100 training steps; training ended at step 1024" in ax[1].get_title()
    assert _legend(ax[1]) == ["rnn (step 1000)", "gru (step 1000)"]
    # a record at the end: nothing to explain
    done = _flow(list(range(0, 1025, 128)), 1024, every=128)
    assert _draw(curves_figure, [("rnn", done)]).axes[1].get_title() == \
        "last record (training step 1024)"


@pytest.mark.parametrize("seeds, words", [(3, "lowest seed"), (1, "one run per row")])
def test_a_per_row_figure_says_it_draws_one_run_per_row(seeds, words):
    note = one_run_per_row(seeds)
    assert words in note and (seeds == 1 or "not a mean over its 3 seeds" in note)
    fig = _draw(curves_figure, [("cell=rnn, seed 0", _flow([0, 100], 100))], note=note)
    assert fig.get_suptitle() == note
    fig = _draw(dynamics_figure, [("cell=gru, seed 0", GRU)], note=note)
    assert fig.get_suptitle().endswith(note)
