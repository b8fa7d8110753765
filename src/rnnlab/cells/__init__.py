"""Recurrent cells.

``RNN``, ``GRU``, ``LSTM``: the scratch implementations (equations in ``rnn.py``, ``gru.py``,
``lstm.py``; hand-written BPTT, lengths masking, per-step gradient norms and the compiled fast
path in ``bptt.py``). ``FusedRNN``, ``FusedGRU``, ``FusedLSTM``: torch.nn's kernels behind the
same interface. ``initialize_recurrent``: shared initialisation schemes.
"""

from .fused import FusedGRU, FusedLSTM, FusedRNN
from .gru import GRU
from .init import initialize_recurrent
from .lstm import LSTM
from .rnn import RNN

__all__ = ["GRU", "LSTM", "RNN", "FusedGRU", "FusedLSTM", "FusedRNN", "initialize_recurrent"]
