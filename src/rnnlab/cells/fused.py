"""torch.nn recurrent layers (cuDNN / oneDNN kernels) behind rnnlab's cell interface.

They are the reference and the speed anchor for the scratch cells: same constructor, same
parameter names, and the same ``forward(input, hx=None, lengths=None)`` with ragged batches
handled by packing. The fused kernels hide dL/dh_t inside the recurrence, so these modules have
no ``hidden_grad_norms``; gradient-flow studies of fused cells measure dL/dx_t instead.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def _run_packed(module: nn.RNNBase, forward, input, hx, lengths):
    """Run a torch.nn RNN on a padded batch, packing it so state freezes at each sequence's end."""
    if lengths is None:
        return forward(input, hx)
    total_length = input.shape[1] if module.batch_first else input.shape[0]
    packed = pack_padded_sequence(
        input, lengths.detach().to("cpu", torch.int64), batch_first=module.batch_first,
        enforce_sorted=False,
    )
    output, state = forward(packed, hx)
    output, _ = pad_packed_sequence(output, batch_first=module.batch_first,
                                    total_length=total_length)
    return output, state


class FusedRNN(nn.RNN):
    def forward(self, input, hx=None, lengths=None):
        return _run_packed(self, super().forward, input, hx, lengths)


class FusedGRU(nn.GRU):
    def forward(self, input, hx=None, lengths=None):
        return _run_packed(self, super().forward, input, hx, lengths)


class FusedLSTM(nn.LSTM):
    def forward(self, input, hx=None, lengths=None):
        return _run_packed(self, super().forward, input, hx, lengths)
