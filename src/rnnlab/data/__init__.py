from rnnlab.data.base import DataSpec, SequenceDataModule, TensorDictDataset

__all__ = ["DataSpec", "SequenceDataModule", "TensorDictDataset"]
