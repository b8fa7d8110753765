"""The figure of the dynamics record (dynamics.py; rnnlab-plot-gradflow, the sweep report): per
run, at its first record (dashed: initialisation) and its last (solid),

1. ‖J_t‖₂ over t (batch mean, band p10-p90 of the last record), log y;
2. log10 ‖∂s_T/∂s_t‖₂ over t, the product of the factors back from the last step;
3. the gates' means over t (last record; one marker per gate, every line solid);
4. the top Lyapunov exponents (index 1..k);
5. the timescale τ = 1/(1 − keep) histogram (last record, share per bin);
6. the case shares of the textbook analysis (last record; carry, reset, through W, ...), each case
   explained in the panel's legend.

The figure reads without the docs: dashed means "first record" wherever it is drawn (a legend in
panel 2 says so, with the records' training steps), a panel or row that does not apply to a run
(a cell without gates: no gate means, timescales or cases) says "n/a" and why, and a legend is
drawn only where something carries a label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .plots import _figure

MARKERS = ("o", "s", "^", "D", "v", "P")  # one per gate in panel 3 (dashes mean "first record")
CASE_COLOURS = {"carry": "#1b9e77", "reset": "#d95f02", "through_w": "#7570b3",
                "forget": "#e7298a", "mixed": "#bdbdbd"}
# what each textbook case means (rnnlab.gradflow.gates): keep = the coefficient of h_{t−1} in the
# update (GRU z, LSTM f, ...), r = the GRU family's reset gate
CASE_TEXT = {"carry": "carry: keep > 0.9, ∂h_t/∂h_{t−1} ≈ I (the gradient passes)",
             "reset": "reset: keep < 0.1, r < 0.1 (the past is cut)",
             "through_w": "through W: keep < 0.1, r > 0.9 (factor (1 − n²) W_hn)",
             "forget": "forget: keep < 0.1 (the past is cut)",
             "mixed": "mixed: every other (t, sample, unit)"}
NA = "n/a"


def has_dynamics(data: dict[str, Any]) -> bool:
    return len(data.get("jacobian_steps", ())) > 0


def _not_applicable(ax, text: str) -> None:
    """An empty panel says why it is empty."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10,
            color="0.35", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(ax, **kwargs) -> None:
    """A legend where something is labelled (no matplotlib warning on an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _names(labels: Sequence[str]) -> str:
    return ", ".join(labels) if len(labels) <= 3 else f"{len(labels)} runs"


def dynamics_figure(runs: Sequence[tuple[str, dict[str, Any]]], layer: str = "layer0",
                    note: str | None = None):
    """The six panels above for the runs that have a dynamics record (None if none has).
    ``note``: a line under the title (e.g. which run of each row is drawn)."""
    from matplotlib.lines import Line2D

    runs = [(label, d) for label, d in runs if has_dynamics(d) and layer in list(d["layers"])]
    if not runs:
        return None
    fig = _figure(15.0, 7.6)
    ax = fig.subplots(2, 3).ravel()
    labelled: set[str] = set()  # each case's colour in the legend once
    firsts, lasts = set(), set()
    no_gates, no_tau, no_cases = [], [], []
    for n, (label, d) in enumerate(runs):
        colour = f"C{n % 10}"
        k = list(d["layers"]).index(layer)
        steps = d["jacobian_steps"]
        firsts.add(int(steps[0]))
        lasts.add(int(steps[-1]))
        t = np.arange(1, d["jacobian_norm_mean"].shape[-1] + 1)
        for i, style in ((0, "--"), (-1, "-")):
            ax[0].semilogy(t, d["jacobian_norm_mean"][i, k], style, color=colour, lw=1.4,
                           label=f"{label} (step {int(steps[i])})" if i else None)
            ax[1].plot(t, d["log10_product_mean"][i, k], style, color=colour, lw=1.4)
            lyap = d["lyapunov"][i, k]
            ax[3].plot(np.arange(1, len(lyap) + 1), lyap, style, color=colour, marker="o", ms=3)
        ax[0].fill_between(t, d["jacobian_norm_p10"][-1, k], d["jacobian_norm_p90"][-1, k],
                           color=colour, alpha=0.15, lw=0)
        if not len(d["gate_names"]):
            no_gates.append(label)
        for g, name in enumerate(d["gate_names"]):
            ax[2].plot(t, d["gate_mean"][-1, k, g], "-", marker=MARKERS[g % len(MARKERS)],
                       markevery=max(1, len(t) // 10), ms=4, color=colour, lw=1.3,
                       label=f"{label}: {name}")
        hist = np.asarray(d["tau_hist"][-1, k], dtype=np.float64)
        if hist.sum() > 0:
            edges = np.asarray(d["tau_bins"], dtype=np.float64)
            centres = np.arange(len(hist))
            ax[4].step(centres, hist / hist.sum(), where="mid", color=colour, label=label)
            ax[4].set_xticks(centres[::2], [f"{e:g}" for e in edges[:-1][::2]])
        else:
            no_tau.append(label)
        shares = d["case_shares"][-1, k]
        if not len(d["case_names"]):
            no_cases.append(label)
        left = 0.0
        for c, name in enumerate(d["case_names"]):
            ax[5].barh(n, shares[c], left=left, color=CASE_COLOURS.get(str(name), "grey"),
                       label=None if str(name) in labelled else CASE_TEXT.get(str(name),
                                                                               str(name)))
            labelled.add(str(name))
            left += shares[c]
    ax[0].set_title("‖J_t‖₂ = ‖∂s_t/∂s_{t−1}‖₂ (dashed: first record)", fontsize=10)
    ax[0].set_ylabel("spectral norm (batch mean; band p10-p90, last record)")
    _legend(ax[0], fontsize=7)
    ax[1].set_title("log10 ‖∂s_T/∂s_t‖₂: the factors' product back from T", fontsize=10)
    steps_of = lambda said: ", ".join(str(s) for s in sorted(said))  # noqa: E731
    ax[1].legend(handles=[
        Line2D([], [], color="k", ls="--", lw=1.4,
               label=f"dashed: first record (training step {steps_of(firsts)})"),
        Line2D([], [], color="k", ls="-", lw=1.4,
               label=f"solid: last record (training step {steps_of(lasts)})")],
        fontsize=7, title="in panels 1, 2 and 4", title_fontsize=7)
    gated = [label for label, _ in runs if label not in no_gates]
    ax[2].set_title("gate means over t (last record; a marker per gate)", fontsize=10)
    if not gated:
        _not_applicable(ax[2], f"{NA}: {_names(no_gates)} has no gates")
    else:
        ax[2].set_ylim(0, 1)
        ax[2].set_xlabel("time step t")
        if no_gates:  # said in the legend, where it cannot hide a line
            ax[2].plot([], [], ls="none", label=f"{NA} (no gates): {_names(no_gates)}")
        _legend(ax[2], fontsize=7, ncol=2)
    ax[3].set_title("top Lyapunov exponents (nats per step)", fontsize=10)
    ax[3].axhline(0, color="k", lw=0.6)
    ax[3].set_xlabel("exponent index")
    ax[4].set_title("timescale τ = 1/(1 − keep), last record", fontsize=10)
    if len(no_tau) == len(runs):
        _not_applicable(ax[4], f"{NA}: {_names(no_tau)} has no keep gate\n(τ = 1/(1 − keep) "
                               "needs the coefficient of h_{t−1})")
    else:
        ax[4].set_xlabel("τ (steps, bin start)")
        ax[4].set_ylabel("share of (t, sample, unit)")
        if no_tau:
            ax[4].plot([], [], ls="none", label=f"{NA} (no keep gate): {_names(no_tau)}")
        _legend(ax[4], fontsize=7)
    ax[5].set_title("textbook cases of ∂h_t/∂h_{t−1}, last record\n(share of (t, sample, unit); "
                    "keep = the coefficient of h_{t−1})", fontsize=9)
    if len(no_cases) == len(runs):
        _not_applicable(ax[5], f"{NA}: {_names(no_cases)} has no gates\n(the cases sort each "
                               "unit by its keep and reset gates)")
    else:
        ax[5].set_yticks(range(len(runs)), [label for label, _ in runs], fontsize=7)
        for n, (label, _) in enumerate(runs):
            if label in no_cases:
                ax[5].text(0.02, n, f"{NA} (no gates)", va="center", fontsize=8, color="0.35")
        ax[5].set_xlim(0, 1)
        ax[5].set_ylim(-0.6, len(runs) - 0.4 + 0.45 * len(labelled))  # room for the legend
        _legend(ax[5], fontsize=6.5, loc="upper right")
    for a in ax[:2]:
        a.set_xlabel("time step t")
    for a in ax:
        a.grid(True, alpha=0.3)
    title = (f"step Jacobians and gates, {layer} (probe rows; state s = h, or (h, c) for "
             "the LSTM)")
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=11)
    return fig
