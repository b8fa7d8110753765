"""The module structure: no import circle among rnnlab's modules, and the light entry points
(the CLI's composition check, the path of the configs) load neither torch nor Lightning."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

SRC = REPO / "src"


def _module_of(path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _executed_on_import(body):
    """The statements importing a module runs: its top level, into if/try/with blocks, not into
    functions or classes' methods, nor the ``if __name__ == "__main__"`` block of a script."""
    for node in body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(node, (ast.If, ast.Try, ast.With, ast.ExceptHandler)) and isinstance(
                    inner, list):
                yield from _executed_on_import(inner)


def _top_level_imports(path, module: str, modules: set[str]) -> set[str]:
    """The rnnlab modules ``path`` imports when it is imported (module level, not in functions)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _executed_on_import(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules and name != module}


def test_no_import_circle_among_rnnlab_modules():
    paths = {_module_of(p): p for p in (SRC / "rnnlab").rglob("*.py")}
    graph = {m: _top_level_imports(p, m, set(paths)) for m, p in paths.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                circle = trail[trail.index(dep):] + [dep] if dep in trail else [module, dep]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_cli_checks_a_command_line_without_torch_or_lightning():
    code = ("import sys; from rnnlab.config.composition import command_line_error; "
            "from rnnlab.config.configdir import CONFIG_DIR; "
            "assert command_line_error(['data.seq_len=0'], CONFIG_DIR, 'train'); "
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def _all_imports(path, module: str, modules: set[str]) -> set[str]:
    """The rnnlab modules ``path`` imports anywhere: at import time and inside functions (lazy
    imports included), ``from rnnlab import x`` as the module ``rnnlab.x``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    # a submodule's import runs its packages' __init__ too
    found |= {".".join(name.split(".")[:i]) for name in found
              for i in range(2, name.count(".") + 1)}
    return {name for name in found if name in modules and name != module}


TRAINING = ("rnnlab.run", "rnnlab.config", "rnnlab.model")


def _in(module: str, packages) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def _never_reach(starts, forbidden) -> None:
    """No module under ``starts`` imports one under ``forbidden``: directly or through another
    rnnlab module, at import time or lazily inside a function. Fails naming the chain."""
    paths = {_module_of(p): p for p in (SRC / "rnnlab").rglob("*.py")}
    graph = {m: _all_imports(p, m, set(paths)) for m, p in paths.items()}
    for start in sorted(m for m in graph if _in(m, starts)):
        trail = {start: [start]}
        todo = [start]
        while todo:
            module = todo.pop()
            for dep in sorted(graph[module]):
                if dep not in trail:
                    trail[dep] = [*trail[module], dep]
                    todo.append(dep)
        reached = sorted(m for m in trail if _in(m, forbidden))
        assert not reached, " -> ".join(trail[reached[0]])


def test_training_never_imports_the_results_package():
    """Data flows one way (DESIGN.md section 1): results/ reads what runs wrote, and nothing under
    run/, config/ or the model imports it -- directly or through another rnnlab module, at
    import time or lazily inside a function."""
    _never_reach(TRAINING, ("rnnlab.results",))


# What config/ may not import: it says what a run is asked to be (composed before torch loads)
# and is read by everything below; the data package registers its schemas with it.
ABOVE_CONFIG = ("rnnlab.run", "rnnlab.model", "rnnlab.cells", "rnnlab.commands",
                "rnnlab.studies", "rnnlab.results", "rnnlab.gradflow", "rnnlab.wandb")


def test_config_never_imports_run_or_what_builds_on_it():
    """config/ points nowhere up: not at run/ (the run-dir stamp of a launch lives in
    config.launch), the model, the cells, the commands or the analysis packages."""
    _never_reach(("rnnlab.config",), ABOVE_CONFIG)


def test_the_direction_test_sees_a_wrong_edge(tmp_path):
    """The check itself: a config module that imports run/ (even lazily) is caught."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from rnnlab.run import launch\n")
    found = _all_imports(module, "rnnlab.config.probe", {"rnnlab.run", "rnnlab.run.launch"})
    assert found == {"rnnlab.run", "rnnlab.run.launch"}


def test_importing_the_training_packages_loads_no_results_module():
    modules = sorted(_module_of(p) for p in (SRC / "rnnlab").rglob("*.py")
                     if _module_of(p).startswith(TRAINING))
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('rnnlab.results')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def _console_scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts]: name -> "module:function" (no tomllib before 3.11)."""
    import re

    section = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1]
    section = section.split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.:]+)"', section, re.MULTILINE))


def test_every_console_script_is_a_module_of_commands():
    """commands/ holds every console script (DESIGN.md section 1), and nothing but the
    ``python -m rnnlab.train`` forwarder imports it: data flows from the commands down."""
    scripts = _console_scripts()
    assert scripts and all(target.startswith("rnnlab.commands.") for target in
                           scripts.values()), scripts
    paths = {_module_of(p): p for p in (SRC / "rnnlab").rglob("*.py")}
    for module, path in sorted(paths.items()):
        if _in(module, ("rnnlab.commands",)) or module == "rnnlab.train":
            continue
        reached = sorted(m for m in _all_imports(path, module, set(paths))
                         if _in(m, ("rnnlab.commands",)))
        assert not reached, f"{module} imports {reached[0]}"


# The commands whose --help loads no torch (rnnlab-train's is tested in test_configs.py;
# rnnlab-plot-gradflow's imports rnnlab.gradflow, whose package reads gradflow.npz with torch).
LIGHT_HELP = ("rnnlab-aggregate", "rnnlab-report", "rnnlab-dashboard", "rnnlab-wandb-sweep",
              "rnnlab-lyapunov", "rnnlab-by-position", "rnnlab-compare", "rnnlab-reproduce")


def test_the_commands_print_their_help_without_torch():
    targets = [_console_scripts()[name] for name in LIGHT_HELP]
    code = ("import contextlib, importlib, io, sys\n"
            f"for target in {targets!r}:\n"
            "    module, function = target.split(':')\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "        try:\n"
            "            getattr(importlib.import_module(module), function)(['--help'])\n"
            "        except SystemExit:\n"
            "            pass\n"
            "    assert 'usage:' in out.getvalue(), target\n"
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
