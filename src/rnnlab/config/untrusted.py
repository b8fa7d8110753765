"""Reading back what a run directory holds, which is untrusted (DESIGN.md section 2): run dirs and
checkpoints are passed between people, and loading one must never execute code.

Checkpoints (``checkpoints/*.ckpt``) load with ``torch.load(weights_only=True)``: tensors and
builtin containers, plus exactly the types rnnlab's checkpoints hold besides them
(:data:`CHECKPOINT_TYPES`: numpy arrays of the RNG state and of the gradient-flow records). A
checkpoint that holds anything else is refused, not loaded.

Recorded configs (results.json's ``config``, ``.hydra/*.yaml``, a sweep's ``multirun.yaml``)
are replayed by ``resume=`` and instantiated by the loaders (rnnlab.run.trained). Refused in them:

- a ``_target_`` that rnnlab's own config groups cannot produce (:func:`allowed_targets`,
  computed from the packaged conf/ tree and the registered structured configs);
- ``hydra.searchpath`` (it would pick config groups from anywhere), and ``hydra.callbacks``
  other than the settings of the callbacks conf/hydra defines (e.g.
  ``hydra.callbacks.sweep_summary.figures=false``);
- the Hydra settings that name code or the environment code runs in: ``hydra.job.env_set``
  (e.g. LD_PRELOAD for the processes a run starts), the logging configs' factories (``class``,
  ``()``, ``ext://``) and a sweeper's ``custom_search_space``.

The config checks import Hydra and OmegaConf only (rnnlab-train runs them before torch loads).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rnnlab.config.errors import ResumeError
from rnnlab.config.naming import MOVED

# Hydra's keys that make instantiate() build or call something.
_HYDRA_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")


class UntrustedContent(ResumeError):
    """What a run directory holds would execute code, or is not what rnnlab writes (one line)."""


class CorruptCheckpoint(ResumeError):
    """A checkpoint file that cannot be read: empty, truncated, not a checkpoint (one line)."""


# -------------------------------------------------------------------------------- checkpoints
def _numpy_types() -> list[Any]:
    """numpy's part of what rnnlab's checkpoints pickle: arrays (``_reconstruct``, ndarray,
    dtype) of the dtypes they hold -- the RNG state (uint32), the gradient-flow and dynamics
    records (float16/32/64 as the model's precision, float64 statistics, int64 counts, bool
    masks). The reconstructor under both of its names (numpy 1.x wrote ``numpy.core``, 2.x
    ``numpy._core``), so a checkpoint outlives a numpy upgrade."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

    types: list[Any] = [np.ndarray, np.dtype, _reconstruct,
                        (_reconstruct, "numpy.core.multiarray._reconstruct"),
                        (_reconstruct, "numpy._core.multiarray._reconstruct")]
    for kind in (np.bool_, np.int32, np.int64, np.uint32, np.float16, np.float32, np.float64):
        types.append(type(np.dtype(kind)))  # numpy.dtypes.Float32DType, ... (numpy >= 1.25)
    return types


@functools.lru_cache(maxsize=1)
def checkpoint_types() -> tuple[Any, ...]:
    """The types beyond torch's own allow-list that rnnlab's checkpoints hold (registered with
    torch.serialization.add_safe_globals by :func:`allow_checkpoint_types`)."""
    return tuple(_numpy_types())


def allow_checkpoint_types() -> None:
    """Let ``torch.load(weights_only=True)`` -- ours, and Lightning's when it restores a fit or a
    test -- read rnnlab's checkpoints: their numpy arrays, and nothing else. Process-wide (a
    spawned DDP worker registers them again when it imports rnnlab.run.resume)."""
    import torch

    types = list(checkpoint_types())
    try:
        torch.serialization.add_safe_globals(types)
    except TypeError:  # a torch without (object, name) entries: the objects' own names only
        torch.serialization.add_safe_globals([t for t in types if not isinstance(t, tuple)])


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load`` of a checkpoint of rnnlab, on the CPU, executing nothing:
    UntrustedContent (one line) when it holds a type rnnlab never writes (a pickled object that
    could run code), CorruptCheckpoint when it cannot be read at all (empty, truncated, random
    bytes). FileNotFoundError when there is no file."""
    import pickle

    import torch

    allow_checkpoint_types()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise CorruptCheckpoint(f"{path} is corrupt (empty): not a checkpoint rnnlab can read")
    try:
        with warnings.catch_warnings():  # torch's about the pickle protocol of a foreign file
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _refused_global(str(error))
        if refused is None:
            raise CorruptCheckpoint(f"{path} is corrupt ({_unpickling_detail(error)}): not a "
                                    "checkpoint rnnlab can read") from None
        raise UntrustedContent(
            f"{path} holds {refused}, which rnnlab's checkpoints never hold (loading it could "
            "run code): refused, nothing loaded") from None
    except Exception as error:  # noqa: BLE001 - whatever a damaged file makes torch raise
        raise CorruptCheckpoint(f"{path} is corrupt ({_first_line(error)}): not a checkpoint "
                                "rnnlab can read") from None
    if not isinstance(state, dict):
        raise CorruptCheckpoint(f"{path} is corrupt (it holds a {type(state).__name__}, not a "
                                "checkpoint's dict)")
    return state


def _unpickling_detail(error: BaseException) -> str:
    """The line of torch's weights-only message that says what failed (its other lines are
    advice about weights_only=False, which is exactly what must not be done here)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.endswith("WeightsUnpickler error:") and index + 1 < len(lines):
            return lines[index + 1][:200]
    informative = [line for line in lines if "weights_only" not in line
                   and not line.startswith("Check the documentation")]
    return (informative[0] if informative else lines[0] if lines else "unreadable")[:200]


def _refused_global(message: str) -> str | None:
    """What a weights-only load refused to build, from torch's message (e.g. "Trying to load
    unsupported GLOBAL posix.system ...", "Unsupported global: GLOBAL x", "... but got <class
    'x'>"), or None when the load failed for another reason (a damaged file)."""
    import re

    for pattern in (r"GLOBAL ([\w.]+)", r"but got <(?:class|function) '([\w.]+)'",
                    r"unrecognized function <[^>]*?([\w.]+)>", r"global[^\n]*?'([\w.]+)'"):
        match = re.search(pattern, message)
        if match:
            return match.group(1)
    return None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__


# ------------------------------------------------------------------------------------ configs
def _targets_in(node: Any) -> Iterator[str]:
    """Every string ``_target_`` value anywhere in a container (dicts and lists)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from _targets_in(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _targets_in(value)


def _packaged_yaml() -> Iterator[tuple[Path, Any]]:
    import yaml

    from rnnlab.config.configdir import CONFIG_DIR

    for path in sorted(Path(CONFIG_DIR).rglob("*.yaml")):
        try:
            yield path, yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue


@functools.lru_cache(maxsize=1)
def allowed_targets() -> frozenset[str]:
    """The ``_target_`` values rnnlab's own config groups can produce: those in the packaged
    conf/ tree and in the structured configs rnnlab registers (the ``model`` and
    ``schema/<group>`` nodes of Hydra's ConfigStore; Hydra's own ``hydra/*`` nodes excluded)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    import rnnlab.config.schemas  # noqa: F401  (registers the structured configs)

    found: set[str] = set()
    for _path, content in _packaged_yaml():
        found.update(_targets_in(content))

    def walk(repo: dict[str, Any], group: str) -> None:
        for name, entry in repo.items():
            if isinstance(entry, dict):
                sub = f"{group}/{name}" if group else name
                if sub != "hydra":
                    walk(entry, sub)
            elif group:  # the root's entries are Hydra's own (hydra/config, the empty config)
                try:
                    content = OmegaConf.to_container(entry.node, resolve=False)
                except Exception:  # noqa: BLE001 - a node that does not convert has no target
                    continue
                found.update(_targets_in(content))

    walk(ConfigStore.instance().repo, "")
    found = {t for t in found if t and "${" not in t and t != "???"}
    # the same targets under the paths a run dir recorded before their modules moved into
    # packages (rnnlab.resume.RunState, now rnnlab.run.resume.RunState): such a run still
    # resumes and loads; nothing instantiates them from the record (resume= composes anew)
    found |= {f"{old}.{t.rpartition('.')[2]}" for t in found for old, new in MOVED.items()
              if t.rpartition(".")[0] == new}
    return frozenset(found)


@functools.lru_cache(maxsize=1)
def packaged_hydra_callbacks() -> frozenset[str]:
    """The Hydra callbacks conf/hydra defines (their settings may be overridden, e.g.
    ``hydra.callbacks.sweep_summary.figures=false``)."""
    from rnnlab.config.configdir import CONFIG_DIR

    names: set[str] = set()
    for path, content in _packaged_yaml():
        if Path(CONFIG_DIR) / "hydra" in path.parents and isinstance(content, dict):
            names.update((content.get("callbacks") or {}).keys())
    return frozenset(names)


def _refuse(source: str, what: str, why: str) -> UntrustedContent:
    return UntrustedContent(f"{source} records {what}: {why}; refused (a run directory is "
                            "untrusted: it may not name code to run)")


def _check_targets(node: Any, source: str, what: str) -> None:
    allowed = allowed_targets()
    for target in _targets_in(node):
        if target not in allowed:
            raise _refuse(source, what, f"_target_={target} is not one of rnnlab's config "
                                        "groups")


def _override_values(override) -> list[Any]:
    from hydra.core.override_parser.types import ChoiceSweep

    value = override.value()
    if isinstance(value, ChoiceSweep):
        return list(value.list)
    return [value] if not override.is_sweep_override() else []


def _strings_in(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings_in(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings_in(value)


def _keys_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _keys_in(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _keys_in(value)


def _hydra_setting_error(key: str, values: list[Any]) -> str | None:
    """Why a recorded ``hydra.*`` override may not be replayed (None: it may)."""
    parts = key.replace("/", ".").split(".")
    if parts[:2] == ["hydra", "searchpath"]:
        return "hydra.searchpath adds config groups from outside rnnlab"
    if parts[:2] == ["hydra", "callbacks"]:
        packaged = len(parts) >= 4 and parts[2] in packaged_hydra_callbacks() \
            and parts[3] not in _HYDRA_KEYS and "/" not in key
        if not packaged or any("_target_" in _keys_in(v) for v in values):
            return ("hydra.callbacks may only set the settings of rnnlab's own callbacks ("
                    + ", ".join(sorted(packaged_hydra_callbacks())) + ")")
    if parts[:3] == ["hydra", "job", "env_set"]:
        return "hydra.job.env_set sets the environment of the run and of what it starts"
    if parts[:2] in (["hydra", "job_logging"], ["hydra", "hydra_logging"]) and "/" not in key:
        names = set(parts[2:]) | {k for v in values for k in _keys_in(v)}
        if names & {"class", "()", "factory"} or any(
                s.startswith(("ext://", "cfg://")) for v in values for s in _strings_in(v)):
            return "a logging factory (class, (), ext://) names code to run"
    if parts[-1] == "custom_search_space":
        return "a sweeper's custom_search_space names code to run"
    return None


def check_overrides(overrides: Iterable[str], source: str | os.PathLike) -> None:
    """Refuse (UntrustedContent, one line) recorded overrides that would run code when replayed:
    a ``_target_`` outside rnnlab's config groups, hydra.searchpath, hydra.callbacks beyond the
    packaged ones' settings, and the Hydra settings that name code (module docstring)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides, source = list(overrides), str(source)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as error:
        raise UntrustedContent(f"{source}: its recorded overrides cannot be read "
                               f"({_first_line(error)})") from None
    for override in parsed:
        key = override.key_or_group
        values = _override_values(override)
        what = f"the override {override.input_line}"
        if key.startswith("hydra.") or key.startswith("hydra/") or key == "hydra":
            reason = _hydra_setting_error(key, values) if key != "hydra" else \
                "a whole hydra node"
            if reason is not None:
                raise _refuse(source, what, reason)
        if key.rsplit(".", 1)[-1] == "_target_":
            for value in values:
                if not isinstance(value, str) or value not in allowed_targets():
                    raise _refuse(source, what, f"_target_={value} is not one of rnnlab's "
                                                "config groups")
        for value in values:
            _check_targets(value, source, what)


def check_config(config: Any, source: str | os.PathLike) -> None:
    """Refuse (UntrustedContent, one line) a recorded config (a dict or DictConfig: results.json's
    ``config``, ``.hydra/config.yaml``, a ``multirun.yaml``) that names code rnnlab's config
    groups do not: any ``_target_`` outside :func:`allowed_targets`; in its ``hydra`` node (a
    multirun.yaml, a hydra.yaml) a search path, callbacks other than conf/hydra's, and the
    recorded overrides (:func:`check_overrides`). Hydra's own launcher and sweeper nodes are
    left to Hydra: resume= replays a run's overrides, not them."""
    from omegaconf import OmegaConf

    source = str(source)
    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=False)
    if not isinstance(config, dict):
        return
    task = {k: v for k, v in config.items() if k != "hydra"}
    _check_targets(task, source, "its config")
    hydra = config.get("hydra")
    if not isinstance(hydra, dict):
        return
    if hydra.get("searchpath"):
        raise _refuse(source, f"hydra.searchpath={hydra['searchpath']}",
                      "hydra.searchpath adds config groups from outside rnnlab")
    callbacks = hydra.get("callbacks") or {}
    if not isinstance(callbacks, dict):
        raise _refuse(source, "hydra.callbacks", "hydra.callbacks is not rnnlab's")
    for name, callback in callbacks.items():
        if name not in packaged_hydra_callbacks():
            raise _refuse(source, f"hydra.callbacks.{name}", "it is not one of rnnlab's "
                          f"Hydra callbacks ({', '.join(sorted(packaged_hydra_callbacks()))})")
        _check_targets(callback, source, f"hydra.callbacks.{name}")
    recorded = hydra.get("overrides") or {}
    if isinstance(recorded, dict):
        check_overrides([*(recorded.get("task") or []), *(recorded.get("hydra") or [])],
                        source)
