# placeholder by the lead until the scratch cells land (helper owns this file; overwrite freely)
from rnnlab.cells.fused import FusedGRU, FusedLSTM, FusedRNN
from rnnlab.cells.init import initialize_recurrent

RNN, GRU, LSTM = FusedRNN, FusedGRU, FusedLSTM
