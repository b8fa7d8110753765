"""Recurrent cells (torch only: nothing here knows Lightning, Hydra or W&B).

The equations, one short file per family, each with its hand-derived backward in the docstring:
``rnn.py`` (``RNN``), ``gru.py`` (``GRU`` and its variants, layer norm, zoneout), ``lstm.py``
(``LSTM``, Greff's variants), ``indrnn.py`` (``IndRNN``), ``minrnn.py`` (``MinGRU``,
``MinLSTM``: gate-only cells trained as a parallel scan, ``scan.py``).

The machinery they share, by job: ``recurrence.py`` (the cell protocol and the time loop as an
autograd Function), ``backends/`` (the ways of running a layer's loops, one module each behind one
interface, picked by one rule and recorded: per-step ``step.py``, each step compiled with
TorchInductor by ``compile_cache.py`` or eager; ``native.py``, the LSTM's, GRU's, RNN's and
IndRNN's whole loops as one C++ function on the CPU, ``native_loops.cpp``; ``cuda_graph.py``),
``projection.py`` (the
input projection), ``gradnorms.py`` (the ∂L/∂h_t record), ``base.py`` (the ``nn.Module``
plumbing: parameters named like torch.nn, layers, dropout), ``sequence.py`` (batch_first, ``hx``,
``lengths`` masks),
``norm_zoneout.py`` (layer norm and zoneout of the gated cells). ``fused.py``: torch.nn's
kernels behind the same interface (``FusedRNN``, ``FusedGRU``, ``FusedLSTM``). ``init.py``:
``initialize_recurrent``, the shared initialisation schemes.
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
