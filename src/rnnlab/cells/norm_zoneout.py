"""Layer normalisation and zoneout, shared by the gated cells (GRU, LSTM).

``normalize`` / ``normalize_backward``: the row normalisation without gain and shift and its
hand-derived backward (the derivation is in gru.py's docstring, "Layer normalisation");
:class:`NormZoneoutMixin`: the cells' ``layer_norm`` and ``zoneout`` options -- checks, the
normalised input projection, the zoneout masks, the extra parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LN_EPS = 1e-5  # torch.nn.LayerNorm's (and haste's) epsilon


def normalize(y: Tensor) -> tuple[Tensor, Tensor]:
    """Layer normalisation of the rows of y without gain and shift: (ŷ, ρ = 1/√(var + ε)).
    A bf16/fp16 y (a matmul under autocast) is normalised in float32, as autocast runs
    torch's layer_norm: statistics summed in 8 mantissa bits cost 1-5% of the gradient."""
    if y.dtype in (torch.bfloat16, torch.float16):
        y = y.float()
    yc = y - y.mean(1, keepdim=True)
    rho = torch.rsqrt((yc * yc).mean(1, keepdim=True) + LN_EPS)
    return yc * rho, rho


def normalize_backward(dyhat: Tensor, yhat: Tensor, rho: Tensor) -> Tensor:
    """δy = ρ ⊙ (δŷ − mean(δŷ) − ŷ ⊙ mean(δŷ ⊙ ŷ)) (module docstring)."""
    mean_d = dyhat.mean(1, keepdim=True)
    mean_dy = (dyhat * yhat).mean(1, keepdim=True)
    return rho * (dyhat - mean_d - yhat * mean_dy)



class NormZoneoutMixin:
    """``layer_norm`` and ``zoneout`` for a :class:`RecurrentBase` cell (GRU, LSTM): option
    checks, the normalised input projection, the zoneout masks and the extra parameters' names.

    The cell lists ``norm_parameter_shapes()`` in its ``extra_parameter_shapes`` and passes
    ``zoned_states`` masks' worth of per-step inputs to its recurrence.
    """

    zoned_states = 1  # state components zoneout acts on (h; LSTM: h and c)

    def _set_options(self, layer_norm, zoneout) -> None:
        if layer_norm is not True and layer_norm is not False:  # 1, "yes", None: refused
            raise ValueError(f"layer_norm must be True or False; got {layer_norm!r}")
        if isinstance(zoneout, bool) or not isinstance(zoneout, (int, float)) or not (
            0 <= zoneout < 1
        ):
            raise ValueError(f"zoneout must be a number in [0, 1); got {zoneout!r}")
        self.layer_norm = layer_norm
        self.zoneout = float(zoneout)

    def norm_parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The gains of the input and recurrent normalisations, one per gate-vector entry."""
        if not self.layer_norm:
            return {}
        return {"ln_weight_ih": (self.gate_size,), "ln_weight_hh": (self.gate_size,)}

    @torch.no_grad()
    def reset_norm_parameters(self) -> None:
        """Gains 1 and the shifts 0: the normalisations' own ``ln_bias_*`` and, with layer norm,
        ``bias_ih``/``bias_hh``, which act as the gate normalisations' shifts (Ba et al. 2016;
        haste). Called by ``reset_parameters`` after the uniform init."""
        if not self.layer_norm:
            return
        for name, param in self.named_parameters():
            base = name.rsplit("_l", 1)[0]
            if base.startswith("ln_weight"):
                param.fill_(1.0)
            elif base.startswith("ln_bias") or base in ("bias_ih", "bias_hh"):
                param.zero_()

    def input_projection(self, layer: int, x: Tensor) -> Tensor:
        gi = super().input_projection(layer, x)
        if not self.layer_norm:
            return gi
        # every step at once, differentiated by autograd like the W_ih matmul itself
        gain = getattr(self, f"ln_weight_ih_l{layer}")
        return F.layer_norm(gi, (gi.shape[-1],), weight=gain, eps=LN_EPS)

    def layer_parameters(self, layer: int) -> tuple[Tensor, ...]:
        params = super().layer_parameters(layer)
        if not self.layer_norm:
            return params
        gain = getattr(self, f"ln_weight_ih_l{layer}")  # used by input_projection only
        return tuple(p for p in params if p is not gain)

    def step_inputs(self, layer: int, gi: Tensor) -> tuple[Tensor, ...]:
        if not self.zoneout:
            return ()
        shape = (gi.shape[0], gi.shape[1], self.hidden_size)
        # in the parameters' (the states') dtype, not gi's: under autocast gi is bf16, whose
        # uniform numbers are coarse and another stream than float32's (other masks, same seed)
        dtype = self.weight_hh_l0.dtype
        if self.training:
            # d = 1: keep the previous value. Bernoulli(p) as U < p with U uniform from torch's
            # global RNG: on the CPU about twice as fast as bernoulli_, which cost up to a fifth
            # of a training step
            return tuple(
                (torch.rand(shape, dtype=dtype, device=gi.device) < self.zoneout).to(dtype)
                for _ in range(self.zoned_states)
            )
        # eval: the expectation, d ≡ p; a full tensor (not a stride-0 broadcast) has the training
        # masks' signature, so validation reuses the compiled step graphs instead of new ones
        d = torch.full(shape, self.zoneout, dtype=dtype, device=gi.device)
        return (d,) * self.zoned_states

    def options_repr(self) -> str:
        s = ", layer_norm=True" if self.layer_norm else ""
        return s + (f", zoneout={self.zoneout}" if self.zoneout else "")
