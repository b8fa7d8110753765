"""Initialisation schemes shared by the scratch and fused cells (they use the same parameter names).

- ``default``: PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)) for every weight and bias.
- ``orthogonal``: each H x H block of the recurrent matrices orthogonal (Saxe et al. 2014).
- ``identity``: recurrent matrices identity, recurrent biases zero: the IRNN of Le et al. 2015
  (meant for ``nonlinearity=relu``; for gated cells it sets the candidate block to identity and
  the gate blocks to zero).
- ``chrono`` (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?"): weights as
  ``default``; per unit, the total bias of the gate that keeps the state b ~ log U(1, T_max − 1),
  and of the gate that writes it −b (the LSTM's i, where it has one), so that the keep gate is
  σ(b) and the unit's characteristic forgetting time 1/(1 − σ(b)) = 1 + e^b is uniform in
  (2, T_max). Keep gate: the LSTM's f (cifg: f = 1 − i, so i gets −b; nfg has no forget gate and
  is refused), the GRU's z (h' = (1 − z) ⊙ n + z ⊙ h); MGU's f writes (h' = (1 − f) ⊙ h + f ⊙ n)
  and gets −b; minGRU's z writes (h' = (1 − z) ⊙ h + z ⊙ h̃) and gets −b; minLSTM's f and i
  get b and −b, so that its normalised f' = σ(−(softplus(−b_f) − softplus(−b_i))) = σ(b) exactly
  (softplus(x) − softplus(−x) = x). Written into bias_ih with bias_hh zeroed: torch adds the two
  (minGRU and minLSTM have bias_ih only).
- ``forget_bias``: the LSTM forget gate's total bias (bias_ih + bias_hh) set to this value
  (Gers et al. 2000, Jozefowicz et al. 2015), so that at initialisation f = sigmoid(forget_bias).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config.errors import check_choice

INIT_SCHEMES = ("default", "orthogonal", "identity", "chrono")
WEIGHT_SCHEMES = ("orthogonal", "identity")  # the schemes that rewrite W_hh


def uniform_init(module: torch.nn.Module, hidden_size: int) -> None:
    """Every parameter uniform(−1/√H, 1/√H): torch.nn's recurrent-layer initialisation."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        torch.nn.init.uniform_(p, -bound, bound)


def _recurrent_weights(module: nn.Module):
    for name, param in module.named_parameters():
        if name.startswith("weight_hh_l"):
            yield name, param


@torch.no_grad()
def initialize_recurrent(
    module: nn.Module, scheme: str = "default", forget_bias: float | None = None,
    chrono_tmax: float | None = None,
) -> None:
    """Re-initialise the recurrent weights of ``module`` in place (see the module docstring).

    Works on any module whose parameters follow torch.nn's naming (``weight_hh_l{k}``, gate
    blocks stacked along dim 0). For the LSTM forget gate the block is the second quarter of the
    rows (torch.nn's gate order i, f, g, o).
    """
    check_choice("init", scheme, INIT_SCHEMES)
    if scheme == "chrono":
        if forget_bias is not None:
            raise ValueError(f"forget_bias={forget_bias} and init=chrono both set the forget "
                             "gate's bias: give one of them")
        _chrono(module, chrono_tmax)
    if scheme in WEIGHT_SCHEMES:
        hidden = module.hidden_size
        for name, weight in _recurrent_weights(module):
            blocks = weight.shape[0] // hidden
            for k in range(blocks):
                block = weight[k * hidden:(k + 1) * hidden]
                if scheme == "orthogonal":
                    nn.init.orthogonal_(block)
                else:
                    # identity on the candidate/state block (the last for RNN, GRU's n is last,
                    # LSTM's g is third); zero elsewhere so gates start from their biases.
                    candidate = _candidate_block(module, blocks)
                    if k == candidate:
                        block.copy_(torch.eye(hidden, dtype=block.dtype, device=block.device))
                    else:
                        block.zero_()
            if scheme == "identity":
                bias = getattr(module, name.replace("weight_hh", "bias_hh"), None)
                if bias is not None:
                    bias.zero_()
    if forget_bias is not None:
        if not _is_lstm(module):
            raise ValueError("forget_bias applies only to LSTM cells (model=lstm)")
        if hasattr(module, "set_forget_bias"):  # scratch LSTM variants know their gate layout
            module.set_forget_bias(float(forget_bias))
            return
        hidden = module.hidden_size
        for name, param in module.named_parameters():
            if name.startswith("bias_ih_l"):
                param[hidden:2 * hidden].fill_(float(forget_bias))
            elif name.startswith("bias_hh_l"):
                param[hidden:2 * hidden].zero_()


def _gate_rows(module: nn.Module) -> tuple[str, ...]:
    """The gate blocks of the bias vectors in row order (scratch cells say; torch.nn's own)."""
    names = getattr(module, "gate_names", None)
    if names is not None:
        return tuple(names)
    if _is_lstm(module):
        return ("i", "f", "g", "o")
    if isinstance(module, nn.GRU):
        return ("r", "z", "n")
    return ("h",)


def chrono_gates(module: nn.Module) -> tuple[str | None, str | None]:
    """(the gate that keeps the state, the gate that writes it) that ``chrono`` sets to b and −b
    (see the module docstring); ValueError where the cell has no keep gate."""
    own = getattr(module, "chrono_gates", None)  # minGRU / minLSTM say theirs
    if own is not None:
        return own
    names, variant = _gate_rows(module), getattr(module, "variant", None)
    if _is_lstm(module):
        if variant == "cifg":  # f = 1 − i: the input gate's bias −b makes f = σ(b)
            return None, "i"
        if "f" not in names:
            raise ValueError(f"init=chrono needs a forget gate; variant={variant} has none")
        return "f", ("i" if "i" in names else None)
    if "z" in names:
        return "z", None
    if variant == "mgu":
        return None, "f"
    raise ValueError(f"init=chrono needs a gated cell (gru, lstm, mingru, minlstm), not "
                     f"{type(module).__name__}")


def _chrono(module: nn.Module, tmax: float | None) -> None:
    keep, write = chrono_gates(module)
    if tmax is None or isinstance(tmax, bool) or not tmax > 2:
        raise ValueError(f"chrono_tmax must be a number > 2 with init=chrono (the longest "
                         f"dependency to expect, e.g. the sequence length), got {tmax}")
    if not getattr(module, "bias", True):
        raise ValueError("init=chrono needs bias=True (there is no bias to set)")
    names, hidden = _gate_rows(module), module.hidden_size
    for layer in range(module.num_layers):
        b_ih = getattr(module, f"bias_ih_l{layer}")
        b_hh = getattr(module, f"bias_hh_l{layer}", None)  # None: minGRU / minLSTM
        b = torch.empty(hidden, dtype=b_ih.dtype, device=b_ih.device).uniform_(1, tmax - 1).log_()
        for gate, value in ((keep, b), (write, -b)):
            if gate is not None:
                rows = slice(names.index(gate) * hidden, (names.index(gate) + 1) * hidden)
                b_ih[rows].copy_(value)
                if b_hh is not None:
                    b_hh[rows].zero_()


def _is_lstm(module: nn.Module) -> bool:
    """torch.nn's LSTM, or a cell the registry gives a forget-gate bias (``model.forget_bias``)."""
    if isinstance(module, nn.LSTM):
        return True
    from rnnlab.config.cellspecs import spec_of  # the registry, asked which cell this module is

    spec = spec_of(type(module))
    return spec is not None and spec.has("forget_bias")


def _candidate_block(module: nn.Module, blocks: int) -> int:
    names = getattr(module, "gate_names", None)  # scratch cells: LSTM/GRU variants' own layout
    if names is not None:
        return names.index("g") if "g" in names else len(names) - 1
    if blocks == 1:
        return 0
    if _is_lstm(module):
        return 2
    return blocks - 1
