"""Recurrent cells.

``RNN``, ``GRU``, ``LSTM``: the scratch implementations (equations in ``rnn.py``, ``gru.py``,
``lstm.py``; hand-written BPTT, lengths masking, per-step gradient norms and the compiled fast
path in ``bptt.py``). ``FusedRNN``, ``FusedGRU``, ``FusedLSTM``: torch.nn's kernels behind the
same interface. ``MinGRU``, ``MinLSTM`` (``minrnn.py``): Feng et al. 2024's gate-only cells,
trained as a parallel scan (``scan.py``). ``initialize_recurrent``: shared initialisation
schemes. ``IndRNN`` (``indrnn.py``): Li et al. 2018's independently recurrent ReLU cell.
"""

from .fused import FusedGRU, FusedLSTM, FusedRNN
from .gru import GRU
from .indrnn import IndRNN
from .init import initialize_recurrent
from .lstm import LSTM
from .minrnn import MinGRU, MinLSTM
from .rnn import RNN

__all__ = [
           "GRU",
           "LSTM",
           "RNN",
           "FusedGRU",
           "FusedLSTM",
           "FusedRNN",
           "IndRNN",
           "MinGRU",
           "MinLSTM",
           "initialize_recurrent",
]
