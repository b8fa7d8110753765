"""Config keys and run naming, shared by training (W&B names, tags, groups; the settings a
finished run reports as ignored) and by results/ (table rows, column titles): which keys are
settings of the experiment, which a command line swept, and how a key and its value are shown.

The row-key rule itself (which of the differing settings make a table's rows) is
rnnlab.results.rowkeys, built on these. Standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

REPLICATE_KEY = "seed"
# Prefixes of config keys that change where or how a run is recorded, not what is trained.
NOT_SETTINGS = ("paths.", "logger.", "callbacks.progress_bar.", "callbacks.lr_monitor.",
                "callbacks.gradflow.", "callbacks.model_checkpoint.dirpath",
                "callbacks.last_checkpoint.", "callbacks.mid_epoch_checkpoint.",
                "callbacks.run_state.",
                "hydra.",
                "trainer.enable_progress_bar", "trainer.enable_model_summary",
                "trainer.log_every_n_steps", "trainer.default_root_dir", "data.num_workers",
                "tags", "reference", "compare.")
# A config-group override (``model=gru``) stands for the key that names the group's choice.
GROUP_KEYS = {"model": "model.cell", "data": "data.name", "optimizer": "optimizer._target_",
              "scheduler": "scheduler._target_", "trainer": "trainer.strategy"}
# Short column titles; other keys show their last component (or the whole key if ambiguous).
LABELS = {"model.cell": "cell", "data.name": "data", "data.seq_len": "T",
          "optimizer._target_": "optimizer", "optimizer.lr": "lr", "model.hidden_size": "hidden",
          "trainer.gradient_clip_val": "clip", "model.impl": "impl",
          "experiment_name": "experiment"}
MISSING = "\u2014"  # how a key absent from a run (or null) is shown and compared
# The top-level modules that moved into packages ([house]): a run recorded before the move names
# its callbacks and loggers by their old paths (rnnlab.solved.SolvedStop), the same targets as
# today's (rnnlab.run.solved.SolvedStop).
MOVED = {f"rnnlab.{module}": f"rnnlab.{package}.{module}" for package, modules in (
    ("config", ("composition", "schemas", "cellspecs", "hydra_runtime", "configdir", "errors",
                "untrusted")),
    ("model", ("models", "task", "metrics")),
    ("run", ("train", "build", "rundir", "record", "resume", "tracking", "console", "progress",
             "distributed", "launch", "atomic", "dirlock", "solved", "trained",
             "sweep_progress"))) for module in modules}


def is_setting(key: str) -> bool:
    return key != REPLICATE_KEY and not any(
        key == p.rstrip(".") or key.startswith(p) for p in NOT_SETTINGS)


def swept_keys(override_lists: Iterable[Sequence[str]]) -> list[str]:
    """Config keys named on the runs' command lines (Hydra overrides), in the order given."""
    keys: list[str] = []
    for overrides in override_lists:
        for override in overrides:
            name = override.split("=", 1)[0].lstrip("+~")
            name = GROUP_KEYS.get(name, name)
            if name not in keys:
                keys.append(name)
    return keys


def label(key: str, keys: Sequence[str] = ()) -> str:
    """The column title of a row key: short, unless two keys would share it."""
    if key in LABELS:
        return LABELS[key]
    short = key.rsplit(".", 1)[-1]
    clashes = [k for k in keys if k != key and LABELS.get(k, k.rsplit(".", 1)[-1]) == short]
    return key if clashes else short


def show(key: str, value: Any) -> str:
    """A row-key value as text: ``torch.optim.Adam`` -> ``Adam``, None -> an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if key.endswith("._target_") and isinstance(value, str):
        return value.rsplit(".", 1)[-1]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def run_name(settings: dict[str, Any], swept: Sequence[str], seed: Any) -> str:
    """A run's name from its cell, data and swept settings:
    ``gru-copy-variant=mgu-reset=before-s0``.

    With ``seed=None`` the same without the seed: the name of the run's table row.
    """
    parts = [str(settings.get("model.cell", "")), str(settings.get("data.name", ""))]
    for key in swept:
        if (key in ("model.cell", "data.name", "experiment_name", REPLICATE_KEY)
                or not is_setting(key)):
            continue
        parts.append(f"{label(key, swept)}={show(key, settings.get(key))}")
    if seed is not None:
        parts.append(f"s{seed}")
    return "-".join(p for p in parts if p)


def current_target(target: Any) -> Any:
    """A ``_target_`` under today's module path (one recorded before its module moved into a
    package, rnnlab.solved.SolvedStop, is rnnlab.run.solved.SolvedStop); anything else as is."""
    if isinstance(target, str):
        module, _, name = target.rpartition(".")
        if module in MOVED:
            return f"{MOVED[module]}.{name}"
    return target


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"cell": "gru"}}`` -> ``{"model.cell": "gru"}``; lists become JSON text.

    Lists are kept whole (as text) so that every value is hashable and compares by content.
    """
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        if not tree and prefix:
            flat[prefix[:-1]] = None
        return flat
    if isinstance(tree, (list, tuple)):
        return {prefix[:-1]: json.dumps(tree, sort_keys=True)}
    return {prefix[:-1]: tree}
