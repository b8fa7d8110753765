"""Figures of gradient flow: norm over t (one line per run) and the heatmap (training step x t).

Built on matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so
the monitor can render inside a training process and scripts can save PNG and PDF.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from .summary import DH, FLOOR

SYMBOL = {DH: r"\partial L/\partial h_t", "dL/dx_t": r"\partial L/\partial x_t"}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def norm_label(quantity: str) -> str:
    return rf"$\|{SYMBOL.get(quantity, quantity)}\|$"


def figure_png(fig, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _positive(values: np.ndarray) -> np.ndarray:
    """Norms to draw on a log scale: 0 (underflowed: below what float32 resolves) and NaN
    (padding) become gaps."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values) & (values >= FLOOR), values, np.nan)


def draw_heatmap(ax, steps: Sequence[int], mean: np.ndarray, quantity: str, title: str = ""):
    """Rows: records (training step), columns: t; log colour scale. Returns the image."""
    from matplotlib.colors import LogNorm

    data = _positive(np.atleast_2d(mean))
    records, T = data.shape
    finite = data[np.isfinite(data)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (1e-3, 1.0)
    if vmax <= vmin:
        vmin, vmax = vmin / 10, vmax * 10
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")  # grey: underflow/padding
    image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", origin="lower",
                      interpolation="nearest", cmap=cmap, norm=LogNorm(vmin=vmin, vmax=vmax),
                      extent=(0.5, T + 0.5, -0.5, records - 0.5))
    ticks = np.unique(np.linspace(0, records - 1, min(records, 6)).round().astype(int))
    ax.set_yticks(ticks, [str(int(steps[i])) for i in ticks])
    ax.set_xlabel("time step t")
    ax.set_ylabel("training step")
    if title:
        ax.set_title(title, fontsize=10)
    return image


def heatmap_figure(steps: Sequence[int], mean: np.ndarray, quantity: str, title: str = ""):
    """One layer's heatmap with its colour bar (what the monitor logs to W&B)."""
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot()
    image = draw_heatmap(ax, steps, mean, quantity, title)
    fig.colorbar(image, ax=ax, label=f"{norm_label(quantity)} (batch mean)")
    return fig


def heatmap_array(mean: np.ndarray, height: int = 240, width: int = 480
                  ) -> tuple[np.ndarray, tuple[float, float]]:
    """The heatmap as an RGB uint8 image without matplotlib's layout machinery (about a
    millisecond instead of a tenth of a second): rows = records, oldest at the bottom; columns =
    t; viridis over log10 of the norm; grey where a value underflowed or is padding. Returns the
    image and the log10 range the colours span."""
    import matplotlib

    data = np.log10(_positive(np.atleast_2d(mean)))
    finite = data[np.isfinite(data)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    cmap = matplotlib.colormaps["viridis"]
    rgb = cmap(np.nan_to_num(np.clip(scaled, 0.0, 1.0)), bytes=True)[..., :3]
    rgb[~np.isfinite(data)] = 217  # grey
    rows, columns = data.shape
    rgb = rgb[::-1]  # first record at the bottom
    rgb = np.repeat(np.repeat(rgb, max(1, height // rows), axis=0), max(1, width // columns), axis=1)
    return np.ascontiguousarray(rgb), (lo, hi)


def pick_record(data: dict[str, Any], record: str | int) -> int:
    """Index of a record: 'first', 'last', an index ('-1') or a training step ('step=500')."""
    steps = np.asarray(data["steps"])
    if record == "first":
        return 0
    if record == "last":
        return len(steps) - 1
    text = str(record)
    if text.startswith("step="):
        step = int(text.split("=", 1)[1])
        return int(np.argmin(np.abs(steps - step)))
    return int(text) % len(steps)


def curves_figure(runs: Sequence[tuple[str, dict[str, Any]]], layer: str = "layer0",
                  records: Sequence[str | int] = ("first", "last"), band: bool = True):
    """Norm vs t on a log axis, one line per run, one panel per record choice."""
    fig = _figure(5.2 * len(records), 4.0)
    axes = fig.subplots(1, len(records), sharey=True, squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(runs))]
    quantities = sorted({data["quantity"] for _, data in runs})
    for ax, record in zip(axes, records):
        shown_steps = set()
        for colour, (label, data) in zip(colours, runs):
            layers = list(data["layers"])
            if layer not in layers:
                continue
            k, i = layers.index(layer), pick_record(data, record)
            mean, p10, p90 = (_positive(data[s][i, k]) for s in ("mean", "p10", "p90"))
            t = np.arange(1, mean.shape[-1] + 1)
            step = int(data["steps"][i])
            shown_steps.add(step)
            ax.semilogy(t, mean, color=colour, lw=1.6, label=f"{label} (step {step})")
            if band:
                ax.fill_between(t, p10, p90, color=colour, alpha=0.15, lw=0)
        which = {"first": "first record", "last": "last record"}.get(str(record), str(record))
        steps_text = ", ".join(str(s) for s in sorted(shown_steps))
        ax.set_title(f"{which} (training step {steps_text})", fontsize=10)
        ax.set_xlabel("time step t")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    label = " / ".join(norm_label(q) for q in quantities)
    axes[0].set_ylabel(f"{label}, {layer} (batch mean; band p10-p90)")
    return fig


def heatmaps_figure(runs: Sequence[tuple[str, dict[str, Any]]], layer: str = "layer0"):
    """One heatmap per run (training step x t), side by side, each with its colour bar."""
    columns = min(len(runs), 3)
    rows = -(-len(runs) // columns)
    fig = _figure(5.0 * columns, 3.4 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (label, data) in zip(axes, runs):
        layers = list(data["layers"])
        if layer not in layers:
            ax.set_visible(False)
            continue
        k = layers.index(layer)
        image = draw_heatmap(ax, data["steps"], data["mean"][:, k], data["quantity"],
                             f"{label}, {layer}")
        fig.colorbar(image, ax=ax, label=norm_label(data["quantity"]))
    for ax in axes[len(runs):]:
        ax.set_visible(False)
    return fig
