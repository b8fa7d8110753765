"""What rnnlab-plot-gradflow (rnnlab.commands.plot_gradflow) reads from run directories: the run
dirs holding a gradflow.npz at or under the paths it is given (a sweep dir is searched for every
gradflow.npz below it), and each run's label: its cell, the settings that differ between the runs
(the row keys of rnnlab's tables) and its seed, read from its results.json; runs without one are
labelled from .hydra/config.yaml, else gradflow.npz itself. The cells' variant words come from
the registry (rnnlab.config.cellspecs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnlab.config.cellspecs import SPECS
from rnnlab.run.rundir import RunDir


def run_dirs(paths: list[str], missing: list[str] | None = None) -> list[Path]:
    """The run dirs holding a gradflow.npz at or under ``paths``; the paths that hold none are
    appended to ``missing``."""
    found: list[Path] = []
    for path in map(Path, paths):
        if RunDir(path).gradflow.exists():
            here = [path]
        elif path.is_file() and path.name == RunDir.GRADFLOW:
            here = [path.parent]
        elif path.is_dir():
            here = sorted(p.parent for p in path.rglob(RunDir.GRADFLOW))
        else:
            here = []
        found.extend(here)
        if not here and missing is not None:
            missing.append(str(path))
    return list(dict.fromkeys(found))


def run_label(run_dir: Path, data: dict[str, Any]) -> str:
    model = RunDir(run_dir).config().get("model") or {}
    cell = model.get("cell") or data.get("cell") or run_dir.name
    parts = []
    impl = model.get("impl") or data.get("impl")
    if impl == "fused":
        parts.append("fused")
    if model.get("init") not in (None, "default"):
        parts.append(f"init={model['init']}")
    if model.get("forget_bias") is not None:
        parts.append(f"forget_bias={model['forget_bias']:g}")
    parts.extend(_form_words(str(cell), model))
    if model.get("layer_norm"):
        parts.append("layer_norm")
    if model.get("zoneout"):
        parts.append(f"zoneout={model['zoneout']:g}")
    if model.get("recurrent_max") is not None:
        parts.append(f"recurrent_max={model['recurrent_max']:g}")
    return f"{cell} ({', '.join(parts)})" if parts else str(cell)


def _form_words(cell: str, model: dict[str, Any]) -> list[str]:
    """The words that name the run's form of its cell (``relu``, ``mgu``, ``reset=before``,
    ``mode=log``): its variant settings from the registry, each unless it is the own form. A
    cell the registry does not know is read by every cell's variant settings."""
    specs = [SPECS[cell]] if cell in SPECS else list(SPECS.values())
    words = []
    for setting in dict.fromkeys(s for spec in specs for s in spec.variants):
        said = [spec.variants[setting].label(setting, model.get(setting)) for spec in specs
                if setting in spec.variants]
        if all(said):  # not the own form of any cell that has the setting
            words.append(said[0])
    return words


def row_key_labels(runs, dirs):
    """Label runs by what differs between them (the tables' row keys) and their seed."""
    from rnnlab.results import load_runs, row_keys
    from rnnlab.results.figures import row_label

    with_results = [d for d in dirs if RunDir(d).results.exists()]
    if len(with_results) != len(runs) or len(runs) < 2:
        return runs
    frame = load_runs(with_results).set_index("run_dir")
    keys = [k for k in row_keys(frame.reset_index()) if k != "model.cell"]
    labelled = []
    for (fallback, data), run_dir in zip(runs, dirs):
        row = frame.loc[str(run_dir.resolve())]
        cell = row.get("model.cell", fallback)
        text = ", ".join(p for p in (str(cell), row_label(row, keys) if keys else "") if p)
        labelled.append((f"{text}, seed {row['seed']}", data))
    return labelled
