"""rnnlab: compare recurrent cells (tanh RNN, GRU, LSTM and variants) the way the papers do."""

__version__ = "0.1.0"
