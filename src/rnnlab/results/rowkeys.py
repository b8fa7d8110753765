"""Row keys: the settings that tell runs apart. The one rule behind every table, name and figure.

A table row is every setting that differs between the runs, except the replicate axis ``seed``:
runs that differ in any setting are never pooled. Two refinements keep rows readable without
ever merging what differs:

* Keys that only say where or how results are *recorded* (paths, loggers, the progress bar, the
  gradient-flow monitor, log intervals) are not settings of the experiment.
* A differing key that only follows from a config-group choice (``data._target_`` from
  ``data.name``, ``optimizer.betas`` from the optimizer, ``model.init`` that ``model=mingru``
  does not have) is not shown: dropping it leaves exactly the same rows. Keys swept on the
  command line always show, and so do the keys in PRIMARY that every run sets.

The keys' vocabulary -- which keys are settings, which a command line swept, their titles and
shown values, run names -- is rnnlab.config.naming, which training uses too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from rnnlab.config.naming import GROUP_KEYS, MISSING, is_setting, swept_keys
from rnnlab.results.runs import RUN_COLUMNS

# Kept before other differing keys when one of two determines the other.
PRIMARY = ("experiment_name", "model.cell", "data.name", "model.impl", "model.variant",
           "model.reset", "model.nonlinearity", "model.init", "model.forget_bias", "data.seq_len",
           "model.hidden_size", "model.param_budget", "optimizer._target_", "optimizer.lr",
           "trainer.gradient_clip_val")


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's config keys (neither run facts nor metrics), as load_runs recorded them."""
    known = frame.attrs.get("config_keys")
    if known is not None:
        return [c for c in known if c in frame.columns]
    return [c for c in frame.columns if c not in RUN_COLUMNS and "/" not in c]


def comparable(value: Any) -> Any:
    """A hashable stand-in for a cell: missing values equal each other, lists compare by text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)  # 1 and 1.0 are the same setting
    return value


def row_ids(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """Each run's (or row's) identity under ``keys``: a tuple of comparable values."""
    if not keys:
        return pd.Series([()] * len(frame), index=frame.index, dtype=object)
    return frame[list(keys)].map(comparable).apply(tuple, axis=1)


def rows_with_runs(runs: pd.DataFrame, table: pd.DataFrame):
    """Each row of an aggregate ``table`` with the runs it pools: (index, row, runs)."""
    keys = table.attrs["keys"]
    ids = row_ids(runs, keys)
    for i, (_, row) in enumerate(table.iterrows()):
        yield i, row, runs[ids == tuple(comparable(row[k]) for k in keys)]


def _varying(frame: pd.DataFrame, keys: Iterable[str]) -> list[str]:
    return [k for k in keys if frame[k].map(comparable).nunique(dropna=False) > 1]


def _partition(frame: pd.DataFrame, keys: Sequence[str]) -> int:
    if not keys:
        return 1
    return frame[list(keys)].map(comparable).drop_duplicates().shape[0]


def row_keys(frame: pd.DataFrame) -> list[str]:
    """The settings that differ between the runs of ``frame`` (see the module docstring)."""
    # Runs that never trained (failed at start) still carry their config, so they keep their row.
    candidates = [k for k in config_columns(frame) if is_setting(k) and _not_run_specific(frame, k)]
    varying = _varying(frame, candidates)
    swept = swept_keys(frame["overrides"].dropna())
    ranked = list(dict.fromkeys([k for k in swept if k in varying]
                                + [k for k in PRIMARY if k in varying] + sorted(varying)))
    kept = list(ranked)
    rows = _partition(frame, kept)
    for key in reversed(ranked):  # the least telling first
        if key in swept or (key in PRIMARY and not _unset_somewhere(frame, key)):
            # what the user swept, and the keys a reader looks for, always show; but a key that
            # some runs lack (another cell's setting: model.init beside model=mingru) is only
            # shown where it tells rows apart
            continue
        chooser = GROUP_KEYS.get(key.split(".", 1)[0])
        if chooser is None or chooser == key or chooser not in kept:
            continue
        rest = [k for k in kept if k != key]
        if _partition(frame, rest) == rows:  # a default of the group choice: same rows without it
            kept = rest
    return kept


def _unset_somewhere(frame: pd.DataFrame, key: str) -> bool:
    return bool((frame[key].map(comparable) == MISSING).any())


def _not_run_specific(frame: pd.DataFrame, key: str) -> bool:
    """False for keys whose value names the run's own directory (checkpoint paths and the like)."""
    for value, run_dir in zip(frame[key], frame["run_dir"]):
        if isinstance(value, str) and run_dir and run_dir in value:
            return False
    return True
