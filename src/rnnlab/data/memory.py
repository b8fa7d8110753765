"""What a synthetic task's tensors would take, estimated before they are made, and the refusal of
settings whose data would not fit (``data.seq_len=100000000`` once tried to allocate 409 GB and
died with a long traceback).

The estimate is the peak of each generator in :mod:`rnnlab.data.synthetic` per example (the
tensors it keeps plus the temporaries it makes on the way), times the examples of all three
splits: an upper bound, since the splits are made one after the other. A setting is refused, in
one line naming it, when that estimate exceeds :data:`MEMORY_SHARE` of the machine's physical
memory: the model, its activations over the same sequence length and the rest of the run need
the remainder. Imports nothing heavy (no torch): the checks can run before a run starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from rnnlab.config.errors import ConfigError

# The share of the machine's physical memory that the data of one run may take.
MEMORY_SHARE = 0.5

_INT64, _FLOAT32, _BOOL = 8, 4, 1


def example_bytes(name: str, seq_len: int, copy_length: int = 10) -> int:
    """Peak bytes per example while the ``name`` task's data is made (see the module doc)."""
    if name == "copy":  # x, y int64 and score_mask bool, T + 2K steps
        return (2 * _INT64 + _BOOL) * (seq_len + 2 * copy_length)
    if name == "selective_copy":  # + the float32 noise ranks of the T positions; K-step masks
        return _FLOAT32 * seq_len + (2 * _INT64 + _BOOL) * (seq_len + copy_length)
    if name == "adding":  # values, markers (float32) and x stacked from them (2 channels)
        return (_FLOAT32 + _FLOAT32 + 2 * _FLOAT32) * seq_len
    if name == "parity":  # x, its cumulative sum and the parity (int64)
        return 3 * _INT64 * seq_len
    raise ValueError(f"no memory estimate for the synthetic task {name!r}")


def machine_memory() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX, or the name is unknown here
        return None


def size_text(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def check_data_memory(name: str, seq_len: int, sizes: Mapping[str, int], copy_length: int = 10,
                      memory: int | None = None) -> None:
    """Raise :class:`ConfigError` (one line naming ``data.seq_len`` and the split sizes) when the
    ``name`` task's data for ``sizes`` ({"train": n, "val": n, "test": n}) would take more than
    :data:`MEMORY_SHARE` of ``memory`` (default: this machine's)."""
    memory = machine_memory() if memory is None else memory
    if not memory:
        return
    examples = sum(int(n) for n in sizes.values())
    need = example_bytes(name, seq_len, copy_length) * examples
    if need <= MEMORY_SHARE * memory:
        return
    counts = " + ".join(f"{int(n)}" for n in sizes.values())
    raise ConfigError(
        f"data.seq_len={seq_len}: the {name} data would take about {size_text(need)} "
        f"({counts} sequences), more than {MEMORY_SHARE:.0%} of this machine's "
        f"{size_text(memory)} of memory; lower data.seq_len or data.train_size/val_size/"
        "test_size")


# The synthetic data modules by class, for the check of a composed config.
_TASKS = {"CopyDataModule": "copy", "SelectiveCopyDataModule": "selective_copy",
          "AddingDataModule": "adding", "ParityDataModule": "parity"}


def config_memory_error(data: Mapping) -> str | None:
    """The one-line refusal of a composed ``data`` node (``cfg.data``) whose synthetic data would
    not fit (see :func:`check_data_memory`), None when it fits or is not a synthetic task: the
    same check the data module makes, usable before torch loads."""
    target = str(data.get("_target_", "") or "")
    task = _TASKS.get(target.rsplit(".", 1)[-1]) if target.startswith("rnnlab.data.") else None
    if task is None:
        return None
    try:
        seq_len = int(data["seq_len"])
        sizes = {split: int(data[f"{split}_size"]) for split in ("train", "val", "test")}
        copy_length = int(data.get("copy_length", 0) or 0)
    except (KeyError, TypeError, ValueError):  # the module refuses these in its own words
        return None
    try:
        check_data_memory(task, seq_len, sizes, copy_length)
    except ConfigError as error:
        return str(error)
    return None
