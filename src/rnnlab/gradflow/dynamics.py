"""The monitor's record of *why* the gradient vanishes (docs/gradflow.md, "Step Jacobians" and
"Gates"): at chosen training steps, on the same few held-out rows every time, each layer's step
Jacobian norms ‖J_t‖₂ and the norms of their products over t, the top Lyapunov exponents, the
gate statistics over t, the timescale histogram and the textbook case shares. Torch and numpy
only; GradientFlowMonitor (monitor.py) decides when and logs.

Cost (docs/gradflow.md gives the measurements): one eager pass of the cell's own step and S
backward rows per row and step (S = the state's size, 2H for the LSTM), then an eigen
decomposition of an S x S matrix per row and step, twice, in the model's dtype (float32:
relative error < 1e-6 against float64). Hence few rows (``rows``, default 4)
and few records: the first (initialisation), every ``every_n_steps`` (default: none) and the end
of training.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .gates import TAU_BINS, case_shares, gate_stats, timescales
from .jacobian import lyapunov_exponents, product_log10_norms, spectral_norms, step_jacobians
from .probe import take_rows
from .stats import batch_stats

CASE_NAMES = ("carry", "reset", "through_w", "forget", "mixed")


def _has_scratch_stack(model) -> bool:
    stack = getattr(model, "rnn", None)
    return hasattr(stack, "recurrence") or hasattr(stack, "equations")


class DynamicsRecorder:
    """Step Jacobians, Lyapunov exponents and gate statistics at chosen steps (module doc).

    Args:
        rows: probe rows measured (0: never).
        every_n_steps: also every n optimizer steps (None: the first record and the end only).
        lyapunov_k: how many of the top exponents (at most the state's size).
    """

    def __init__(self, rows: int = 4, every_n_steps: int | None = None, lyapunov_k: int = 8):
        if not isinstance(rows, int) or rows < 0:
            raise ValueError(f"callbacks.gradflow.jacobian_rows must be an int >= 0, got {rows!r}")
        if every_n_steps is not None and (not isinstance(every_n_steps, int) or every_n_steps < 1):
            raise ValueError("callbacks.gradflow.jacobian_every_n_steps must be an int >= 1 or "
                             f"null, got {every_n_steps!r}")
        if not isinstance(lyapunov_k, int) or lyapunov_k < 1:
            raise ValueError(f"callbacks.gradflow.lyapunov_k must be an int >= 1, got "
                             f"{lyapunov_k!r}")
        self.rows, self.every_n_steps, self.lyapunov_k = rows, every_n_steps, lyapunov_k
        self.records: list[dict[str, Any]] = []
        self.batch: dict | None = None

    @property
    def on(self) -> bool:
        return self.rows > 0

    def due(self, step: int) -> bool:
        if not self.on:
            return False
        if not self.records:
            return True
        if self.records[-1]["step"] == step:
            return False
        return self.every_n_steps is not None and step % self.every_n_steps == 0

    def keep_batch(self, batch: dict) -> None:
        """The rows every record measures (the first batch offered: the fixed probe's, or the
        first training batch's)."""
        if self.batch is None and self.on:
            self.batch = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                          for k, v in take_rows(batch, self.rows).items()}

    # ------------------------------------------------------------------------- measuring
    def measure(self, model, step: int, epoch: int) -> dict[str, float]:
        """Record the dynamics of ``model`` (rnnlab.model.models.SequenceModel) at ``step`` on the
        kept rows, in eval mode (modes restored); the summary scalars, {} if nothing was
        measured (no rows kept, or a torch.nn stack, which has no step equations of ours)."""
        if self.batch is None:
            return {}
        if not _has_scratch_stack(model):  # torch.nn's kernels: no step equations to read
            return {}
        lengths = self.batch.get("lengths")
        modes = [(module, module.training) for module in model.modules()]
        try:
            model.eval()
            with torch.no_grad():
                layers = step_jacobians(model.rnn, model.encode(self.batch["x"]), lengths)
        finally:
            for module, mode in modes:
                module.training = mode
        if lengths is not None:
            lengths = lengths.cpu()
        record: dict[str, Any] = {"step": int(step), "epoch": int(epoch), "layers": []}
        for lj in layers:
            # in the model's dtype: float32 eigenvalues of JᵀJ cost 0.6x float64's at S = 128 and
            # agree to < 1e-6 relative (the top eigenvalue of a Gram matrix is well conditioned;
            # tests/test_jacobian.py checks the record against float64); stats are float64
            J = lj.J.detach().cpu()
            valid = None if lj.valid is None else lj.valid.cpu()
            k = min(self.lyapunov_k, J.shape[-1])
            counts, median = (timescales(lj.gates["keep"].cpu(), valid) if "keep" in lj.gates
                              else (torch.zeros(len(TAU_BINS) - 1, dtype=torch.long), math.nan))
            shares = case_shares({n: g.cpu() for n, g in lj.gates.items()}, valid)
            record["layers"].append({
                "norm": batch_stats(spectral_norms(J), lengths).numpy(),
                # log10 values: their mean and percentiles over rows (not floored)
                "log10_product": _stats(product_log10_norms(J), valid),
                "lyapunov": lyapunov_exponents(J, k, lengths=lengths).double().mean(0).numpy(),
                "gates": {n: s.numpy() for n, s in
                          gate_stats({n: g.cpu() for n, g in lj.gates.items()}, valid).items()},
                "tau_hist": counts.numpy(), "tau_median": median,
                "cases": shares, "state_size": J.shape[-1],
            })
        self.records.append(record)
        return self.scalars(record)

    @staticmethod
    def scalars(record: dict[str, Any]) -> dict[str, float]:
        """Per layer: lyapunov_max (λ₁), jacobian_norm_mean (‖J_t‖₂ averaged over t and rows),
        log10_product_first (log10 ‖∂s_T/∂s_1‖₂, row mean), gate_saturation (share of gate
        values below 0.1 or above 0.9), tau_median and case_<name> shares."""
        out = {}
        for i, layer in enumerate(record["layers"]):
            key = f"gradflow/layer{i}"
            out[f"{key}/lyapunov_max"] = float(layer["lyapunov"][0])
            out[f"{key}/jacobian_norm_mean"] = float(np.nanmean(layer["norm"][0]))
            out[f"{key}/log10_product_first"] = float(layer["log10_product"][0, 0])
            if layer["gates"]:
                sat = [np.nanmean(g[1] + g[2]) for g in layer["gates"].values()]
                out[f"{key}/gate_saturation"] = float(np.mean(sat))
                out[f"{key}/tau_median"] = float(layer["tau_median"])
            for name, share in layer["cases"].items():
                out[f"{key}/case_{name}"] = float(share)
        return out

    # -------------------------------------------------------------------------- output
    def arrays(self, layers: int | None = None) -> dict[str, Any]:
        """The records as gradflow.npz arrays (docs/gradflow.md lists the keys)."""
        R = len(self.records)
        L = max((len(r["layers"]) for r in self.records), default=0)
        T = max((lay["norm"].shape[-1] for r in self.records for lay in r["layers"]), default=0)
        K = max((len(lay["lyapunov"]) for r in self.records for lay in r["layers"]), default=0)
        gates = list(dict.fromkeys(n for r in self.records for lay in r["layers"]
                                   for n in lay["gates"]))
        cases = [c for c in CASE_NAMES
                 if any(c in lay["cases"] for r in self.records for lay in r["layers"])]
        nb = len(TAU_BINS) - 1

        def full(*shape, dtype=np.float64):
            return np.full(shape, np.nan, dtype=dtype)

        norm, logp = full(R, 3, L, T), full(R, 3, L, T)
        lyap, gstats = full(R, L, K), full(R, 3, L, len(gates), T)
        tau, tau_median, shares = np.zeros((R, L, nb), dtype=np.int64), full(R, L), full(R, L,
                                                                                      len(cases))
        for i, r in enumerate(self.records):
            for j, lay in enumerate(r["layers"]):
                t = lay["norm"].shape[-1]
                norm[i, :, j, :t] = lay["norm"]
                logp[i, :, j, :t] = lay["log10_product"]
                lyap[i, j, : len(lay["lyapunov"])] = lay["lyapunov"]
                for g, name in enumerate(gates):
                    if name in lay["gates"]:
                        gstats[i, :, j, g, :t] = lay["gates"][name]
                tau[i, j] = lay["tau_hist"]
                tau_median[i, j] = lay["tau_median"]
                for c, name in enumerate(cases):
                    shares[i, j, c] = lay["cases"].get(name, np.nan)
        sizes = [lay["state_size"] for r in self.records for lay in r["layers"]]
        return {
            "jacobian_steps": np.array([r["step"] for r in self.records], dtype=np.int64),
            "jacobian_epochs": np.array([r["epoch"] for r in self.records], dtype=np.int64),
            "jacobian_rows": np.int64(self.rows),
            "state_size": np.int64(sizes[0] if sizes else 0),
            "jacobian_norm_mean": norm[:, 0], "jacobian_norm_p10": norm[:, 1],
            "jacobian_norm_p90": norm[:, 2],
            "log10_product_mean": logp[:, 0], "log10_product_p10": logp[:, 1],
            "log10_product_p90": logp[:, 2],
            "lyapunov": lyap,
            "gate_names": np.array(gates, dtype=str),
            "gate_mean": gstats[:, 0], "gate_low": gstats[:, 1], "gate_high": gstats[:, 2],
            "tau_bins": np.array(TAU_BINS, dtype=np.float64), "tau_hist": tau,
            "tau_median": tau_median,
            "case_names": np.array(cases, dtype=str), "case_shares": shares,
        }


def _stats(values: torch.Tensor, valid: torch.Tensor | None) -> np.ndarray:
    """(T, B) values (any sign) -> (3, T): mean, 10th and 90th percentile over valid rows."""
    v = values.double().clone()
    if valid is not None:
        v = v.masked_fill(~valid, float("nan"))
    q = torch.tensor([0.1, 0.9], dtype=v.dtype)
    finite = torch.where(torch.isfinite(v) | torch.isnan(v), v, v.new_tensor(float("nan")))
    p10, p90 = torch.nanquantile(finite, q, dim=1)
    return torch.stack([torch.nanmean(finite, dim=1), p10, p90]).numpy()


__all__ = ["CASE_NAMES", "DynamicsRecorder"]
