"""Gradient-flow statistics and the scalars a sweep can sort or optimise on (docs/gradflow.md).

Per record and layer the monitor keeps three curves over the time steps t = 1..T of the batch:
the mean over samples of the per-sample norm ||g_t|| (g_t = dL/dh_t or dL/dx_t) and its 10th
and 90th percentiles. From the mean curve m_t it derives, per layer:

- ``log10_first_over_last`` = log10(m_1 / m_T): below 0 the gradient vanishes going back in time,
  above 0 it explodes;
- ``horizon`` = T + 1 - min{t : m_t >= f * max_s m_s}: how many steps back from the last step
  (the loss) the gradient still arrives with at least the fraction f (default 0.01) of its peak;
- ``log10_decay_per_step`` = b of the least-squares fit log10 m_t ~ a + b t: the decades lost per
  step going back from the loss (positive: vanishing, negative: exploding).

Norms are floored at the smallest normal float32 (1.2e-38, log10 = -37.9) before taking logs, so
an underflowed norm gives a finite (and recognisable) number instead of -inf. Steps where no
sample of the batch is valid (padding) are NaN in the curves and left out of the summaries.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlab.cells.sequence import lengths_mask
from rnnlab.run.atomic import atomic_open
from rnnlab.run.rundir import RunDir

DH = "dL/dh_t"  # total gradient at each layer's hidden state (scratch cells)
DX = "dL/dx_t"  # gradient reaching the first layer's input (fused cells)
# Metric-name prefix per quantity, so the two are never mistaken for one another.
PREFIX = {DH: "gradflow", DX: "gradflow_input"}
SUMMARIES = ("log10_first_over_last", "horizon", "log10_decay_per_step")
DEFAULT_HORIZON_FRACTION = 0.01
FLOOR = float(np.finfo(np.float32).tiny)


def metric_key(quantity: str, layer: str, name: str) -> str:
    """``gradflow/<layer>/<name>`` for dL/dh_t, ``gradflow_input/<layer>/<name>`` for dL/dx_t."""
    return f"{PREFIX[quantity]}/{layer}/{name}"


def valid_steps(steps: int, lengths: torch.Tensor | None, device=None) -> torch.Tensor | None:
    """(T, B) bool: t < lengths[b]; None when every step is valid."""
    if lengths is None:
        return None
    return lengths_mask(torch.as_tensor(lengths, device=device), steps)


def batch_stats(norms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """(T, B) per-sample norms -> (3, T) float32: batch mean, 10th and 90th percentile.

    Padded steps (t >= lengths[b]) are left out; a step with no valid sample is NaN.
    """
    norms = norms.detach().double()
    valid = valid_steps(norms.shape[0], lengths, norms.device)
    if valid is not None:
        norms = norms.masked_fill(~valid, float("nan"))
    mean = torch.nanmean(norms, dim=1)
    q = torch.tensor([0.1, 0.9], dtype=norms.dtype, device=norms.device)
    p10, p90 = torch.nanquantile(norms, q, dim=1)
    return torch.stack([mean, p10, p90]).float()


def curve_summaries(mean: np.ndarray | torch.Tensor,
                    fraction: float = DEFAULT_HORIZON_FRACTION) -> dict[str, float]:
    """The three scalars of one mean curve m_t, t = 1..T (NaN entries are skipped)."""
    m = np.asarray(mean.cpu() if isinstance(mean, torch.Tensor) else mean, dtype=np.float64)
    t = np.arange(1, m.shape[-1] + 1, dtype=np.float64)
    keep = np.isfinite(m)
    if not keep.any():
        return {name: math.nan for name in SUMMARIES}
    t, m = t[keep], np.maximum(m[keep], FLOOR)
    log_m = np.log10(m)
    first_over_last = float(log_m[0] - log_m[-1])
    if len(t) >= 2:
        tc = t - t.mean()
        slope = float((tc * (log_m - log_m.mean())).sum() / (tc * tc).sum())
    else:
        slope = math.nan
    reached = t[m >= fraction * m.max()]
    horizon = float(t[-1] - reached.min() + 1)
    return {"log10_first_over_last": first_over_last, "horizon": horizon,
            "log10_decay_per_step": slope}


# ------------------------------------------------------------------------------ gradflow.npz
class GradflowFile:
    """A run's gradflow.npz: the one code that writes and reads it. Its arrays are those of
    docs/gradflow.md, led by ``version`` (:attr:`VERSION`, the layout they follow); the file's
    name and place are the run dir's (rnnlab.run.rundir.RunDir.gradflow)."""

    VERSION = 1

    def __init__(self, path: str | os.PathLike):
        """``path``: the file, or the run dir that holds it (an existing folder)."""
        path = Path(path)
        self.path = RunDir(path).gradflow if path.is_dir() else path

    def write(self, arrays: dict[str, Any], durable: bool = True) -> Path:
        """``np.savez`` of ``version`` then ``arrays``, so that a reader sees the old file or the
        new one, never half of one; ``durable`` also fsyncs before the rename."""
        arrays = {"version": np.int64(self.VERSION), **arrays}
        with atomic_open(self.path, "wb", durable=durable) as handle:
            np.savez(handle, **arrays)
        return self.path

    def read(self) -> dict[str, Any]:
        """The arrays, in a dict; strings as ``str``."""
        with np.load(self.path, allow_pickle=False) as data:
            out = {key: data[key] for key in data.files}
        for key, value in list(out.items()):
            if value.ndim == 0 and value.dtype.kind == "U":
                out[key] = str(value)
            elif value.dtype.kind == "U":
                out[key] = [str(v) for v in value]
        return out


def load_gradflow(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``gradflow.npz`` (a file or the run dir holding it) into a dict; strings as ``str``."""
    return GradflowFile(path).read()
