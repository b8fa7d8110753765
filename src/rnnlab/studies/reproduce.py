"""What ``rnnlab-reproduce`` (``make reproduce``) does: run the CPU-scale sweeps behind
docs/results.md and rebuild the page's tables and figures from their run directories.

The plan is ``docs/reproduce.yaml``: per section, the experiment preset (its CPU form), extra
overrides and the settings to pivot by; seeds and parallel jobs once for all. Each section is one
Hydra multirun in ``<out>/<section>`` (``rnnlab-train -m experiment=... seed=0,1,2`` with the
joblib launcher, one thread per job). A rerun keeps every finished job and continues the rest
(``rnnlab-train resume=<sweep dir>``: checkpoints and the sweep's own record), so an interrupted
``make reproduce`` loses at most the minutes since each job's last checkpoint.

docs/results.md is hand-written prose around generated blocks::

    <!-- reproduce:copy -->
    ... (replaced on every rebuild: command, runs, table with intervals and tests, figures)
    <!-- /reproduce:copy -->

so no number inside a block is typed by hand.

Paths come from the plan, not from the working directory: ``out``, ``figures`` and ``page`` in
the plan are relative to the plan file's folder (defaults: ``../logs/reproduce``, ``results``,
``results.md``, the repository's layout with the plan in docs/). The default plan is the
checkout's docs/reproduce.yaml; ``--plan`` and ``--page`` on the command line are relative to the
working directory, as any command-line path.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.config.errors import ReproduceError
from rnnlab.run.rundir import KEPT, STATUSES, RunDir, finished_jobs

# src/rnnlab/studies -> the checkout
PLAN = Path(__file__).resolve().parents[3] / "docs" / "reproduce.yaml"
PLAN_DEFAULTS = {"out": "../logs/reproduce", "figures": "results", "page": "results.md"}
_BLOCK = r"<!-- reproduce:{name} -->\n.*?<!-- /reproduce:{name} -->"


@dataclass(frozen=True)
class Section:
    name: str
    experiment: str
    overrides: tuple[str, ...] = ()
    by: tuple[str, ...] = ()
    compare: str | None = None
    against: Any = None


@dataclass
class Plan:
    sections: list[Section]
    seeds: list[int]
    jobs: int = 2
    out: Path = Path("logs/reproduce")
    figures: Path = Path("docs/results")
    extra: list[str] = field(default_factory=list)
    page: Path = Path("docs/results.md")

    def select(self, only: list[str] | None) -> list[Section]:
        if not only:
            return self.sections
        names = [s.name for s in self.sections]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ReproduceError(f"--only {', '.join(unknown)}: no such section in the plan "
                                 f"(sections: {', '.join(names)})")
        return [s for s in self.sections if s.name in only]


def load_plan(path: Path = PLAN) -> Plan:
    """The plan file as a :class:`Plan`; ReproduceError (one line) names what is wrong."""
    import yaml

    if not path.is_file():
        raise ReproduceError(f"--plan {path}: no such file")
    raw = yaml.safe_load(path.read_text()) or {}
    allowed = {"seeds", "jobs", "out", "figures", "page", "overrides", "sections"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ReproduceError(f"{path}: unknown key {unknown[0]} "
                             f"(allowed: {', '.join(sorted(allowed))})")
    sections = []
    for name, entry in (raw.get("sections") or {}).items():
        if not isinstance(entry, dict) or "experiment" not in entry:
            raise ReproduceError(f"{path}: sections.{name} needs an experiment")
        extra = sorted(set(entry) - {"experiment", "overrides", "by", "compare", "against"})
        if extra:
            raise ReproduceError(f"{path}: sections.{name}.{extra[0]} is not a setting (allowed: "
                                 "experiment, overrides, by, compare, against)")
        sections.append(Section(name, entry["experiment"], tuple(entry.get("overrides") or ()),
                                tuple(entry.get("by") or ()), entry.get("compare"),
                                entry.get("against")))
    if not sections:
        raise ReproduceError(f"{path}: no sections")
    seeds = raw.get("seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ReproduceError(f"{path}: seeds must be a list of integers, got {seeds!r}")
    jobs = raw.get("jobs", 2)
    if not isinstance(jobs, int) or jobs < 1:
        raise ReproduceError(f"{path}: jobs must be an integer >= 1, got {jobs!r}")
    here = path.resolve().parent

    def where(key: str) -> Path:  # relative to the plan's folder
        return Path(os.path.normpath(here / str(raw.get(key) or PLAN_DEFAULTS[key])))

    return Plan(sections, seeds, jobs, where("out"), where("figures"),
                list(raw.get("overrides") or []), where("page"))


def sweep_grid(experiment: str, overrides: list[str]) -> list[list[str]]:
    """Every job of ``experiment``'s sweep (its hydra.sweeper.params, then ``overrides``, as
    Hydra's basic sweeper expands them), each as its list of overrides, seeds not included."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    import rnnlab.config.schemas  # noqa: F401  (schemas and resolvers)
    from rnnlab.config.configdir import CONFIG_DIR, CONFIG_NAME

    fixed = [o for o in overrides if "," not in o.partition("=")[2]]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=CONFIG_NAME,
                          overrides=[f"experiment={experiment}", *fixed],
                          return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    params = {str(k): str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()}
    parser = OverridesParser.create()
    for override in parser.parse_overrides(overrides):  # the command line wins, as in Hydra
        key = override.get_key_element()
        if override.is_sweep_override():
            params[key] = override.input_line.partition("=")[2]
        else:
            params.pop(key, None)
    parsed = parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
            if o.is_sweep_override() else [o.input_line] for o in parsed]
    return [list(point) for point in itertools.product(*axes)]


def train_command(section: Section, plan: Plan, sweep_dir: Path) -> list[str]:
    """The ``rnnlab-train`` command line of a section: a new sweep, or the resume of one."""
    exe = Path(sys.executable).with_name("rnnlab-train")
    base = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                            "from rnnlab.commands.train import main; main()"]
    if RunDir.sweep_config(sweep_dir).is_file():
        return [*base, f"resume={sweep_dir}"]
    seeds = ",".join(map(str, plan.seeds))
    return [*base, "-m", f"experiment={section.experiment}", *plan.extra, *section.overrides,
            f"seed={seeds}", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={plan.jobs}",
            f"hydra.sweep.dir={sweep_dir}"]


def _clock(seconds: float) -> str:
    from rnnlab.run.sweep_progress import clock

    return clock(seconds)


class Progress:
    """One line every ``every`` seconds: jobs done / total, elapsed, ETA (from the finished
    jobs' own wall times, ``jobs`` at a time)."""

    def __init__(self, total: int, jobs: int, every: float = 30.0, out=sys.stdout):
        self.total, self.jobs, self.every, self.out = total, jobs, every, out
        self.start = time.monotonic()
        self.wall: list[float] = []
        self.counted: set[tuple[str, str]] = set()

    def update(self, section: str, sweep_dir: Path) -> int:
        return self.add(section, finished_jobs(sweep_dir))

    def add(self, section: str, finished: dict[str, dict]) -> int:
        for job, record in finished.items():
            if (section, job) not in self.counted:
                self.counted.add((section, job))
                if record.get("wall_time_s"):
                    self.wall.append(float(record["wall_time_s"]))
        return len(self.counted)

    def line(self, section: str) -> str:
        done = len(self.counted)
        text = (f"[reproduce] {section}: {done}/{self.total} jobs done, "
                f"elapsed {_clock(time.monotonic() - self.start)}")
        if self.wall and done < self.total:
            eta = sum(self.wall) / len(self.wall) * (self.total - done) / self.jobs
            text += f", ETA {_clock(eta)}"
        return text

    def watch(self, section: str, sweep_dir: Path, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            self.update(section, sweep_dir)
            print(self.line(section), file=self.out, flush=True)


def run_sections(plan: Plan, sections: list[Section], dry_run: bool = False,
                 every: float = 30.0) -> int:
    """Run (or resume) each section's sweep; the exit status of the last failing one, else 0."""
    grids = {}
    for s in sections:
        try:
            grids[s.name] = sweep_grid(s.experiment, [*plan.extra, *s.overrides])
        except Exception as error:  # noqa: BLE001 - Hydra's many error types, one line
            from rnnlab.config.errors import one_line

            raise ReproduceError(f"section {s.name}: experiment={s.experiment} does not "
                                 f"compose: {one_line(error)}") from None
    total = sum(len(g) * len(plan.seeds) for g in grids.values())
    progress = Progress(total, plan.jobs, every)
    status = 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for section in sections:
        sweep_dir = (plan.out / section.name).resolve()
        want = len(grids[section.name]) * len(plan.seeds)
        finished = finished_jobs(sweep_dir) if sweep_dir.exists() else {}
        progress.add(section.name, finished)
        have = sum(r.get("status") in KEPT for r in finished.values())
        command = train_command(section, plan, sweep_dir)
        if have >= want:
            print(f"[reproduce] {section.name}: {have}/{want} jobs already finished: kept",
                  flush=True)
            continue
        print(f"[reproduce] {section.name}: {want - have} of {want} jobs to run: "
              f"{' '.join(command[1:] if command[0].endswith('rnnlab-train') else command)}",
              flush=True)
        if dry_run:
            continue
        stop = threading.Event()
        watcher = threading.Thread(target=progress.watch, args=(section.name, sweep_dir, stop),
                                   daemon=True)
        watcher.start()
        try:
            code = subprocess.call(command, env=env)
        finally:
            stop.set()
            watcher.join()
        progress.update(section.name, sweep_dir)
        print(progress.line(section.name), flush=True)
        if code != 0:
            print(f"[reproduce] {section.name}: rnnlab-train exited {code}", file=sys.stderr)
            status = code
    return status


def section_block(plan: Plan, section: Section) -> str:
    """The generated markdown of one section: command, runs, table, pivot, baselines, figures,
    and last the "Verdict (generated)" paragraph (:mod:`rnnlab.results.verdicts`), anchored as
    ``verdict-<section>`` for the prose to point to."""
    from rnnlab.config.naming import show
    from rnnlab.results.aggregate import aggregate
    from rnnlab.results.report import write_report
    from rnnlab.results.runs import load_runs
    from rnnlab.results.tables import pivot, render
    from rnnlab.results.verdicts import paragraph, table_verdicts

    sweep_dir = plan.out / section.name
    if not sweep_dir.is_dir():
        return f"*Not run yet: `rnnlab-reproduce --only {section.name}`.*"
    runs = load_runs([sweep_dir])
    if runs.empty:
        return f"*No finished runs yet in `{sweep_dir}`: `rnnlab-reproduce --only {section.name}`.*"
    table = aggregate(runs, compare=section.compare, against=section.against)
    figures = plan.figures / section.name
    write_report(runs, table, figures, by=list(section.by) or None)
    wall = runs["wall_time_s"].dropna().astype(float)
    command = " ".join(["rnnlab-train -m", f"experiment={section.experiment}", *plan.extra,
                        *section.overrides, f"seed={','.join(map(str, plan.seeds))}"])
    facts = (f"`{command}` (`rnnlab-reproduce --only {section.name}`): {len(runs)} runs, "
             f"{_status_counts(runs)}; wall time per run {wall.min():.0f}–{wall.max():.0f} s, "
             f"{wall.sum() / 60:.0f} min in all, {_jobs_run(sweep_dir, plan.jobs)} at a time × "
             f"1 thread; {_machine(runs)}.")
    lines = [facts, "", render(table, "md").rstrip()]
    if section.by:
        metric = table.attrs["metrics"][0]
        pivoted = pivot(table, list(section.by), metric)  # its footnotes are the table's, above
        lines += ["", f"By {', '.join(section.by)} ({metric}, mean ± std over seeds):", "",
                  pivoted.to_markdown(index=False)]
    first = RunDir(runs["run_dir"].iloc[0]).read_results()
    baseline_table, baseline_verdicts = _baseline_lines(first.get("config") or {}, table)
    lines += baseline_table
    for png in sorted(figures.glob("*.png")):
        page_dir = plan.page.absolute().parent
        rel = png.relative_to(page_dir) if png.is_relative_to(page_dir) else png
        lines += ["", f"![{png.stem.replace('_', ' ')}]({rel.as_posix()})"]
    comparison = table.attrs.get("comparison") or {}
    against = ("the best row" if comparison.get("against") is None
               else f"{comparison['key']}={show(comparison['key'], comparison['against'])}")
    others = [k for k in table.attrs["keys"] if k != comparison.get("key")]
    head = f"Each row against {against}" + (" at the same other settings" if others else "")
    lines += paragraph(section.name, [(head, table_verdicts(table)),
                                      ("Against the classical baselines above",
                                       baseline_verdicts)])
    return "\n".join(lines)


def _baseline_lines(config: dict, table) -> tuple[list[str], list]:
    """The classical baselines on the runs' own test split (markdown lines), and the verdict of
    each row against each of them (:func:`rnnlab.results.verdicts.baseline_verdicts`: the row's
    95% t interval over seeds against the baseline's single value, Holm-adjusted) -- the
    numbers and what the test supports, never "better" without a test."""
    import pandas as pd

    from rnnlab.results.baselines import baselines_for
    from rnnlab.results.tables import format_number
    from rnnlab.results.verdicts import baseline_verdicts

    rows = baselines_for(config.get("data") or {})
    if not rows:
        return [], []
    frame = pd.DataFrame(rows)
    metrics = [c for c in frame.columns if c != "baseline"]
    shown = frame.copy()
    for m in metrics:
        shown[m] = frame[m].map(format_number)
    lines = ["", "Classical baselines on the same test split (rnnlab.results.baselines):", "",
             shown.to_markdown(index=False)]
    return lines, baseline_verdicts(table, rows)


def _jobs_run(sweep_dir: Path, default: int) -> str:
    """How many jobs the sweep ran side by side (its launcher's n_jobs), as text."""
    try:
        from omegaconf import OmegaConf

        jobs = int(OmegaConf.load(RunDir.sweep_config(sweep_dir)).hydra.launcher.n_jobs)
    except Exception:  # noqa: BLE001 - an older or foreign sweep: say what the plan says
        jobs = default
    return f"{jobs} job{'s' if jobs != 1 else ''}"


def _status_counts(runs) -> str:
    counts = runs["status"].value_counts()
    return ", ".join(f"{int(counts[s])} {s}" for s in STATUSES if s in counts) or "none finished"


def _machine(runs) -> str:
    versions = {}
    for run_dir in runs["run_dir"]:
        try:
            record = RunDir(run_dir).read_results()
        except (OSError, json.JSONDecodeError):
            continue
        versions = record.get("versions") or {}
        if versions:
            break
    torch = versions.get("torch", "?")
    return f"torch {torch}, {os.cpu_count()} CPUs"


def rebuild_page(plan: Plan, sections: list[Section], page: Path | None = None) -> list[str]:
    """Replace each section's generated block in ``page`` (default: the plan's); return the
    sections rebuilt.
    A section without its markers in the page is an error (the page says where it goes).

    The blocks are built first (reports and figures take seconds); the page is then read,
    changed and replaced under a lock, so two reproduce processes (or an editor saving the
    prose) never lose each other's changes."""
    from filelock import FileLock

    from rnnlab.run.atomic import atomic_open

    page = plan.page if page is None else page

    def pattern(name: str) -> re.Pattern:
        return re.compile(_BLOCK.format(name=re.escape(name)), re.DOTALL)

    def check(text: str) -> None:
        for section in sections:
            if not pattern(section.name).search(text):
                raise ReproduceError(f"{page} has no <!-- reproduce:{section.name} --> ... "
                                     f"<!-- /reproduce:{section.name} --> block for section "
                                     f"{section.name}")

    check(page.read_text())
    blocks = {s.name: section_block(plan, s) for s in sections}
    with FileLock(str(page.with_name(f".{page.name}.lock"))):
        text = page.read_text()
        check(text)
        for name, body in blocks.items():
            block = f"<!-- reproduce:{name} -->\n{body}\n<!-- /reproduce:{name} -->"
            text = pattern(name).sub(lambda _m, b=block: b, text)
        with atomic_open(page, "w") as handle:
            handle.write(text)
    return list(blocks)
