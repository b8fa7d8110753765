"""The shapes of a synthetic task's data (token vocabulary or input width, and output size), read
from its composed ``data`` node without building it: the data modules' ``spec`` gives the same
numbers once torch has loaded (tests/test_refusals.py compares them). Imports nothing heavy, so
the command line's checks (rnnlab.config.model_checks) can use it before a run starts. A real
dataset's shapes come from its files: None here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# rnnlab.data.synthetic's token values: blank 0, the symbols 1..num_symbols, the delimiter 9
COPY_DELIMITER = 9


@dataclass(frozen=True)
class Shape:
    output_size: int
    vocab_size: int | None = None  # token inputs
    input_size: int | None = None  # real-vector inputs


def synthetic_shape(data: Mapping) -> Shape | None:
    """The :class:`Shape` of the synthetic task ``data`` (a composed ``cfg.data`` as a dict);
    None for any other data, or settings the data module refuses in its own words."""
    target = str(data.get("_target_", "") or "")
    if not target.startswith("rnnlab.data.synthetic."):
        return None
    task = target.rsplit(".", 1)[-1]
    try:
        symbols = int(data.get("num_symbols", 8))
    except (TypeError, ValueError):
        return None
    if task == "CopyDataModule":
        return Shape(output_size=symbols + 1, vocab_size=COPY_DELIMITER + 1)
    if task == "SelectiveCopyDataModule":
        return Shape(output_size=symbols + 1, vocab_size=symbols + 2)
    if task == "AddingDataModule":
        return Shape(output_size=1, input_size=2)
    if task == "ParityDataModule":
        return Shape(output_size=2, vocab_size=2)
    return None
