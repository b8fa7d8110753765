"""The data root (``paths.data_dir``, ``$RNNLAB_DATA``) of a real dataset, checked before torch
loads: one that cannot be written and holds nothing prepared for the dataset (no manifest.json
in its folder) is refused in one line (a second, not after the ~10 s of importing torch). A root
with a manifest is left to the data module, which reads what is prepared there (a read-only
shared cache works) and refuses an entry that is missing (rnnlab.data.sources.CacheNotWritable,
in the same words). Imports nothing heavy."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rnnlab.config.folders import write_error

DATA_ENV = "RNNLAB_DATA"
MANIFEST = "manifest.json"
# each real dataset's data module (by class) -> its folder under the data root
FOLDERS = {"SentimentDataModule": "sentiment", "MusicDataModule": "music",
           "SeqMNISTDataModule": "seqmnist", "TimeSeriesDataModule": "timeseries"}


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the configured ``data_dir``, else ``$RNNLAB_DATA``, else ``./data``."""
    if data_dir in (None, ""):
        data_dir = os.environ.get(DATA_ENV) or Path.cwd() / "data"
    return Path(data_dir).expanduser().resolve()


def not_writable(root: Path, dataset: str, what: str, why: str) -> str:
    """The one line that refuses a data root that cannot be written and lacks ``what``."""
    return (f"paths.data_dir={root} (RNNLAB_DATA): the {dataset} data is not prepared there "
            f"({what}) and the folder cannot be written ({why}); point RNNLAB_DATA or "
            "paths.data_dir at a writable folder, or prepare the data there first "
            "(python scripts/prepare_data.py --data-dir <folder>)")


def config_data_root_error(data: Mapping) -> str | None:
    """The refusal of a composed ``data`` node (``cfg.data``) whose dataset has nothing prepared
    in a data root that cannot be written; None otherwise (or for a synthetic task)."""
    target = str(data.get("_target_", "") or "")
    folder = FOLDERS.get(target.rsplit(".", 1)[-1]) if target.startswith("rnnlab.data.") else None
    if folder is None:
        return None
    root = data_root(data.get("data_dir"))
    if (root / folder / MANIFEST).is_file():
        return None
    why = write_error(root / folder)
    return None if why is None else not_writable(root, folder, f"no {folder}/{MANIFEST}", why)
