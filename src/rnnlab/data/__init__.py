"""rnnlab's datasets. The names below load on first use: composing a config (which imports the
data schemas from this package) must not pay for importing torch and Lightning."""

__all__ = ["DataSpec", "SequenceDataModule", "TensorDictDataset"]


def __getattr__(name: str):
    if name in __all__:
        from rnnlab.data import base

        return getattr(base, name)
    raise AttributeError(f"module 'rnnlab.data' has no attribute {name!r}")
