"""The figure of the dynamics record (dynamics.py; rnnlab-plot-gradflow, the sweep report): per
run, at its first record (dashed: initialisation) and its last (solid),

1. ‖J_t‖₂ over t (batch mean, band p10-p90 of the last record), log y;
2. log10 ‖∂s_T/∂s_t‖₂ over t, the product of the factors back from the last step;
3. the gates' means over t (last record; one line style per gate);
4. the top Lyapunov exponents (index 1..k);
5. the timescale τ = 1/(1 − keep) histogram (last record, share per bin);
6. the case shares of the textbook analysis (last record; carry, reset, through W, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .plots import _figure

STYLES = ("-", "--", ":", "-.")
CASE_COLOURS = {"carry": "#1b9e77", "reset": "#d95f02", "through_w": "#7570b3",
                "forget": "#e7298a", "mixed": "#bdbdbd"}


def has_dynamics(data: dict[str, Any]) -> bool:
    return len(data.get("jacobian_steps", ())) > 0


def dynamics_figure(runs: Sequence[tuple[str, dict[str, Any]]], layer: str = "layer0"):
    """The six panels above for the runs that have a dynamics record (None if none has)."""
    runs = [(label, d) for label, d in runs if has_dynamics(d) and layer in list(d["layers"])]
    if not runs:
        return None
    fig = _figure(15.0, 7.6)
    ax = fig.subplots(2, 3).ravel()
    labelled: set[str] = set()  # each case's colour in the legend once
    for n, (label, d) in enumerate(runs):
        colour = f"C{n % 10}"
        k = list(d["layers"]).index(layer)
        steps = d["jacobian_steps"]
        t = np.arange(1, d["jacobian_norm_mean"].shape[-1] + 1)
        for i, style in ((0, "--"), (-1, "-")):
            ax[0].semilogy(t, d["jacobian_norm_mean"][i, k], style, color=colour, lw=1.4,
                           label=f"{label} (step {int(steps[i])})" if i else None)
            ax[1].plot(t, d["log10_product_mean"][i, k], style, color=colour, lw=1.4)
            lyap = d["lyapunov"][i, k]
            ax[3].plot(np.arange(1, len(lyap) + 1), lyap, style, color=colour, marker="o", ms=3)
        ax[0].fill_between(t, d["jacobian_norm_p10"][-1, k], d["jacobian_norm_p90"][-1, k],
                           color=colour, alpha=0.15, lw=0)
        for g, name in enumerate(d["gate_names"]):
            ax[2].plot(t, d["gate_mean"][-1, k, g], STYLES[g % len(STYLES)], color=colour,
                       lw=1.3, label=f"{label}: {name}")
        hist = np.asarray(d["tau_hist"][-1, k], dtype=np.float64)
        if hist.sum() > 0:
            edges = np.asarray(d["tau_bins"], dtype=np.float64)
            centres = np.arange(len(hist))
            ax[4].step(centres, hist / hist.sum(), where="mid", color=colour, label=label)
            ax[4].set_xticks(centres[::2], [f"{e:g}" for e in edges[:-1][::2]])
        shares = d["case_shares"][-1, k]
        left = 0.0
        for c, name in enumerate(d["case_names"]):
            ax[5].barh(n, shares[c], left=left, color=CASE_COLOURS.get(str(name), "grey"),
                       label=None if str(name) in labelled else str(name))
            labelled.add(str(name))
            left += shares[c]
    ax[0].set_title("‖J_t‖₂ = ‖∂s_t/∂s_{t−1}‖₂ (dashed: first record)", fontsize=10)
    ax[0].set_ylabel("spectral norm (batch mean; band p10-p90, last record)")
    ax[0].legend(fontsize=7)
    ax[1].set_title("log10 ‖∂s_T/∂s_t‖₂: the factors' product back from T", fontsize=10)
    ax[2].set_title("gate means over t (last record)", fontsize=10)
    ax[2].set_ylim(0, 1)
    if any(len(d["gate_names"]) for _, d in runs):
        ax[2].legend(fontsize=7, ncol=2)
    ax[3].set_title("top Lyapunov exponents (nats per step)", fontsize=10)
    ax[3].axhline(0, color="k", lw=0.6)
    ax[3].set_xlabel("exponent index")
    ax[4].set_title("timescale τ = 1/(1 − keep), last record", fontsize=10)
    ax[4].set_xlabel("τ (steps, bin start)")
    ax[4].set_ylabel("share of (t, sample, unit)")
    ax[5].set_title("textbook cases, last record", fontsize=10)
    ax[5].set_yticks(range(len(runs)), [label for label, _ in runs], fontsize=7)
    ax[5].set_xlim(0, 1)
    ax[5].legend(fontsize=7, loc="lower right")
    for a in ax[:3]:
        a.set_xlabel("time step t")
    for a in ax:
        a.grid(True, alpha=0.3)
    fig.suptitle(f"step Jacobians and gates, {layer} (probe rows; state s = h, or (h, c) for "
                 "the LSTM)", fontsize=11)
    return fig
