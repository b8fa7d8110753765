"""The model and its training task: :mod:`models` (SequenceModel: encoder, a stack of recurrent
layers from rnnlab.cells, readout; sized by hidden size or parameter budget), :mod:`task`
(SequenceTask, the LightningModule: losses, metrics, best values, divergence) and :mod:`metrics`
(the task losses and frame accuracy)."""
