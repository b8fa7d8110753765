"""Initialisation schemes shared by the scratch and fused cells (they use the same parameter names).

- ``default``: PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)) for every weight and bias.
- ``orthogonal``: each H x H block of the recurrent matrices orthogonal (Saxe et al. 2014).
- ``identity``: recurrent matrices identity, recurrent biases zero: the IRNN of Le et al. 2015
  (meant for ``nonlinearity=relu``; for gated cells it sets the candidate block to identity and
  the gate blocks to zero).
- ``forget_bias``: the LSTM forget gate's total bias (bias_ih + bias_hh) set to this value
  (Gers et al. 2000, Jozefowicz et al. 2015), so that at initialisation f = sigmoid(forget_bias).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import check_choice

INIT_SCHEMES = ("default", "orthogonal", "identity")


def _recurrent_weights(module: nn.Module):
    for name, param in module.named_parameters():
        if name.startswith("weight_hh_l"):
            yield name, param


@torch.no_grad()
def initialize_recurrent(
    module: nn.Module, scheme: str = "default", forget_bias: float | None = None
) -> None:
    """Re-initialise the recurrent weights of ``module`` in place (see the module docstring).

    Works on any module whose parameters follow torch.nn's naming (``weight_hh_l{k}``, gate
    blocks stacked along dim 0). For the LSTM forget gate the block is the second quarter of the
    rows (torch.nn's gate order i, f, g, o).
    """
    check_choice("init", scheme, INIT_SCHEMES)
    if scheme != "default":
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


def _is_lstm(module: nn.Module) -> bool:
    return isinstance(module, nn.LSTM) or type(module).__name__ == "LSTM"


def _candidate_block(module: nn.Module, blocks: int) -> int:
    names = getattr(module, "gate_names", None)  # scratch cells: LSTM/GRU variants' own layout
    if names is not None:
        return names.index("g") if "g" in names else len(names) - 1
    if blocks == 1:
        return 0
    if _is_lstm(module):
        return 2
    return blocks - 1
