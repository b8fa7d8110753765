"""A fair comparison of cells as one protocol ([fair]; the command: ``rnnlab-compare PLAN``).

Each *arm* (e.g. ``model=gru``) in each *condition* (e.g. ``data.seq_len=20``) gets its own
tuning over its own search space, on tuning seeds, judged on the validation split only; the
configuration picked by a stated rule is then trained on evaluation seeds -- disjoint from the
tuning seeds by construction, and from the 0-99 that presets and probes use -- and judged on the
test split. Every arm gets the same step budget and, by default, the same parameter count.

Stages (each one or more Hydra multiruns with the joblib launcher, one thread per job, in
``<out>/<plan>/<condition>/<arm>/``)::

    tune-r0/            every configuration of the arm's grid x tuning seeds, at budget / eta^(R-1)
    tune-r1/<config>/   the best 1/eta of them (successive halving), at budget / eta^(R-2)
    ...                 (the last rung runs at the full budget)
    eval/               the picked configuration x evaluation seeds, full budget, test split

The selection rule: solved fraction on the validation split (threshold tasks), then the median
over tuning seeds of each run's best ``monitor.metric``; a diverged or failed run is unsolved
and worst. On threshold tasks a run stops once solved (``callbacks.solved_stop``: a stated
number of validations in a row under the threshold), recording the step.

One record, ``<out>/<plan>/compare.json``: the plan, the search space, every tuning result, each
pick and why, the evaluation runs. A rerun keeps finished jobs and continues the rest (the
stages are a function of the plan and of the finished results), so an interrupted comparison
loses at most the minutes since each job's last checkpoint. The tables
(:mod:`rnnlab.studies.compare_table`) read the record and the run directories only.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.config.errors import ConfigError, one_line
from rnnlab.run.rundir import KEPT, RunDir, finished_jobs

TUNE_SEEDS = range(100, 200)  # the tuning seeds come from here ...
EVAL_SEEDS = range(1000, 100000)  # ... the evaluation seeds from here; presets use 0-99
MAX_CONFIGS = 12  # per arm: the protocol's stated cost bound ([fair] item 6)
RULE = ("per arm and condition: highest fraction of tuning seeds solved on the validation split "
        "(threshold tasks: best val/loss < {below:g} x baseline/loss), then lowest (highest for "
        "accuracy-like metrics) median over tuning seeds of the run's best {metric}; a diverged or "
        "failed run counts as unsolved and worst; ties: the earlier grid point")
# A plan with ``solved: null`` has no threshold (music's NLL: no loss level means "solved")
RULE_NO_THRESHOLD = ("per arm and condition: lowest (highest for accuracy-like metrics) median "
                     "over tuning seeds of the run's best {metric}; a diverged or failed run "
                     "counts as worst; ties: the earlier grid point")


def rule_text(below: float | None, metric: str = "monitor.metric") -> str:
    """The selection rule as the record and the table state it."""
    if below is None:
        return RULE_NO_THRESHOLD.format(metric=metric)
    return RULE.format(below=below, metric=metric)


class CompareError(ConfigError):
    """A plan or a comparison that cannot go on; one line."""


# ---------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Arm:
    name: str
    overrides: tuple[str, ...]
    space: dict[str, list] = field(default_factory=dict)  # key -> values (a grid)

    def grid(self) -> list[tuple[str, ...]]:
        """Every configuration of the arm's search space, as override tuples (grid order)."""
        axes = [[f"{k}={fmt(v)}" for v in values] for k, values in self.space.items()]
        return [tuple(point) for point in itertools.product(*axes)] if axes else [()]

    def edges(self, point: list[str] | tuple[str, ...]) -> list[str]:
        """The searched settings of ``point`` that sit at an end of an ordered numeric axis of
        3 or more values: there the best value may lie outside the grid (a reviewer asks for
        the grid to be extended)."""
        found = []
        for override in point:
            key, _, value = override.partition("=")
            values = self.space.get(key) or []
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(numbers) < 3 or len(numbers) != len(values):
                continue
            if value == fmt(max(numbers)):
                found.append(f"{override} (the largest tried)")
            elif value == fmt(min(numbers)):
                found.append(f"{override} (the smallest tried)")
        return found


@dataclass
class Plan:
    name: str
    experiment: str
    arms: list[Arm]
    conditions: list[tuple[str, ...]]
    budget: int
    tune_seeds: list[int]
    eval_seeds: list[int]
    overrides: list[str] = field(default_factory=list)
    eta: int = 3
    rungs: int = 2
    solved_below: float | None = 0.10  # None: not a threshold task (``solved: null``)
    solved_consecutive: int | None = 2
    param_budget: int | str | None = "auto"
    headline: str | None = None
    # test metrics shown beside the headline (mean and interval, not tested), e.g. music's
    # frame accuracy beside its NLL
    secondary: list[str] = field(default_factory=list)
    jobs: int = 2
    # how a stage's jobs run: "joblib" (one process per job, `jobs` at a time; one job: Hydra's
    # basic launcher) or "pack" (hydra/launcher=pack: `jobs` packs at once, each a loop of
    # many runs; the runs' numbers are the same, README "Packs")
    launcher: str = "joblib"
    out: Path = Path("logs/compare")
    partial: bool = False  # only some arms run here (--arm): the record is not written

    @property
    def dir(self) -> Path:
        return self.out / self.name

    def rung_budget(self, rung: int) -> int:
        return max(1, int(round(self.budget / self.eta ** (self.rungs - 1 - rung))))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["out"] = str(self.out)
        out["arms"] = [{"name": a.name, "overrides": list(a.overrides), "space": a.space}
                       for a in self.arms]
        out["conditions"] = [list(c) for c in self.conditions]
        return out


DEFAULT_SPACE = {"optimizer.lr": [3e-4, 1e-3, 3e-3, 1e-2]}  # a log grid spanning 33x
LAUNCHERS = ("joblib", "pack")
PLAN_KEYS = {"name", "experiment", "arms", "conditions", "budget", "search", "tune_seeds",
             "eval_seeds", "overrides", "halving", "solved", "param_budget", "headline", "jobs",
             "launcher", "secondary", "out"}


def fmt(value: Any) -> str:
    """A plan value as Hydra override text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _seeds(raw: Any, pool: range, what: str, default: int) -> list[int]:
    if raw is None:
        raw = default
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            raise CompareError(f"{what} must be >= 1 seeds, got {raw}")
        return list(pool[:raw])
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in raw)):
        raise CompareError(f"{what} must be a count or a list of integers, got {raw!r}")
    outside = [s for s in raw if s not in pool]
    if outside:
        raise CompareError(f"{what}: seed {outside[0]} is outside {pool.start}-{pool.stop - 1} "
                           "(tuning 100-199, evaluation from 1000: disjoint from each other and "
                           "from the 0-99 of presets and probes)")
    if len(set(raw)) != len(raw):
        raise CompareError(f"{what}: seeds repeat: {raw}")
    return list(raw)


def _space(raw: Any, where: str) -> dict[str, list]:
    if not isinstance(raw, dict) or not raw:
        raise CompareError(f"{where} must map settings to lists of values, got {raw!r}")
    space = {}
    for key, values in raw.items():
        if not isinstance(values, list) or not values:
            raise CompareError(f"{where}.{key} must be a non-empty list of values, got {values!r}")
        space[str(key)] = list(values)
    return space


def _conditions(raw: Any) -> list[tuple[str, ...]]:
    """``{data.seq_len: [10, 20]}`` (a grid) or a list of override lists; [()] when none."""
    if raw is None:
        return [()]
    if isinstance(raw, dict):
        return Arm("conditions", (), _space(raw, "conditions")).grid()
    if isinstance(raw, list) and all(isinstance(c, list) for c in raw) and raw:
        return [tuple(map(str, c)) for c in raw]
    raise CompareError(f"conditions must map settings to lists of values or be a list of "
                       f"override lists, got {raw!r}")


def load_plan(path: Path, out: Path | None = None) -> Plan:
    """A plan file as a :class:`Plan`; CompareError (one line) names what is wrong."""
    import yaml

    if not path.is_file():
        raise CompareError(f"{path}: no such plan file")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise CompareError(f"{path}: a plan is a mapping (experiment, arms, budget, ...)")
    unknown = sorted(set(raw) - PLAN_KEYS)
    if unknown:
        raise CompareError(f"{path}: unknown key {unknown[0]} (allowed: "
                           f"{', '.join(sorted(PLAN_KEYS))})")
    for key in ("experiment", "arms", "budget"):
        if key not in raw:
            raise CompareError(f"{path}: {key} is required")
    budget = raw["budget"]
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise CompareError(f"{path}: budget is the step budget of every arm, an integer >= 1, "
                           f"got {budget!r}")
    search = raw.get("search") or {}
    if not isinstance(search, dict):
        raise CompareError(f"{path}: search maps arm names (or 'default') to search spaces")
    default = _space(search["default"], "search.default") if "default" in search else DEFAULT_SPACE
    if not isinstance(raw["arms"], dict) or not raw["arms"]:
        raise CompareError(f"{path}: arms maps each arm's name to its overrides, e.g. "
                           "{gru: [model=gru]}")
    arms = []
    for name, overrides in raw["arms"].items():
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise CompareError(f"{path}: arms.{name} must be a list of overrides")
        space = {**default, **_space(search[name], f"search.{name}")} if name in search \
            else dict(default)
        arm = Arm(str(name), tuple(overrides), space)
        if len(arm.grid()) > MAX_CONFIGS:
            raise CompareError(f"{path}: search for arm {name} has {len(arm.grid())} "
                               f"configurations; the protocol allows <= {MAX_CONFIGS} per arm")
        arms.append(arm)
    extra = sorted(set(search) - {"default"} - {a.name for a in arms})
    if extra:
        raise CompareError(f"{path}: search.{extra[0]} names no arm (arms: "
                           f"{', '.join(a.name for a in arms)})")
    halving = raw.get("halving") or {}
    if not isinstance(halving, dict) or set(halving) - {"eta", "rungs"}:
        raise CompareError(f"{path}: halving takes eta and rungs, got {halving!r}")
    eta, rungs = halving.get("eta", 3), halving.get("rungs", 2)
    if not (isinstance(eta, int) and eta >= 2 and isinstance(rungs, int) and rungs >= 1):
        raise CompareError(f"{path}: halving.eta must be an integer >= 2 and halving.rungs >= 1")
    threshold = not ("solved" in raw and raw["solved"] is None)
    solved = raw.get("solved", {}) or {}
    if not isinstance(solved, dict) or set(solved) - {"below", "consecutive"}:
        raise CompareError(f"{path}: solved takes below and consecutive (or null: no threshold), "
                           f"got {solved!r}")
    secondary = raw.get("secondary") or []
    if not isinstance(secondary, list) or not all(isinstance(m, str) and m.startswith("test/")
                                                  for m in secondary):
        raise CompareError(f"{path}: secondary is a list of test metrics (e.g. [test/acc]), got "
                           f"{secondary!r}")
    jobs = raw.get("jobs", 2)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise CompareError(f"{path}: jobs must be an integer >= 1, got {jobs!r}")
    launcher = raw.get("launcher", "joblib")
    if launcher not in LAUNCHERS:
        raise CompareError(f"{path}: launcher must be one of {', '.join(LAUNCHERS)}, got "
                           f"{launcher!r}")
    plan = Plan(
        name=str(raw.get("name") or path.stem), experiment=str(raw["experiment"]), arms=arms,
        conditions=_conditions(raw.get("conditions")), budget=budget,
        tune_seeds=_seeds(raw.get("tune_seeds"), TUNE_SEEDS, "tune_seeds", 2),
        eval_seeds=_seeds(raw.get("eval_seeds"), EVAL_SEEDS, "eval_seeds", 10),
        overrides=[str(o) for o in raw.get("overrides") or []], eta=eta, rungs=rungs,
        solved_below=float(solved.get("below", 0.10)) if threshold else None,
        solved_consecutive=solved.get("consecutive", 2) if threshold else None,
        secondary=list(secondary),
        param_budget=raw.get("param_budget", "auto"), headline=raw.get("headline"), jobs=jobs,
        launcher=launcher,
        # absolute: the jobs' hydra.sweep.dir must not depend on where a job resolves it
        out=Path(out or raw.get("out") or "logs/compare").resolve())
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", plan.name):
        raise CompareError(f"{path}: name {plan.name!r} must be letters, digits, _ . -")
    if plan.budget // plan.eta ** (plan.rungs - 1) < 1:
        raise CompareError(f"{path}: budget {budget} is too small for {rungs} rungs at eta {eta}")
    return plan


# --------------------------------------------------------------------------------- a job's view
def slug(overrides: tuple[str, ...] | list[str]) -> str:
    """A directory name for a condition or configuration: ``data.seq_len=20`` -> ``seq_len_20``."""
    if not overrides:
        return "all"
    # no '=' or ',' in it: the name goes into hydra.sweep.dir=<path> on a command line
    parts = [o.split("=", 1)[0].rsplit(".", 1)[-1] + "_" + o.split("=", 1)[1] for o in overrides]
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", "-".join(parts))


def read_json(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # being written, or corrupt: not finished
    return record if isinstance(record, dict) else None


def _job_overrides(job_dir: Path) -> list[str]:
    import yaml

    try:
        return RunDir(job_dir).read_overrides()
    except (OSError, yaml.YAMLError):
        return []


def _dig(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def job_view(job_dir: Path, record: dict, keys: list[str],
             below: float | None) -> dict[str, Any]:
    """What the protocol reads of one finished job: its configuration (the searched overrides it
    ran with), seed, status, the best value of its monitored metric, solved on validation,
    test metrics and when it solved."""
    from rnnlab.config.schemas import monitor_mode

    overrides = _job_overrides(job_dir)
    point = tuple(o for o in overrides if o.split("=", 1)[0] in keys)
    config = record.get("config") or {}
    metric = str(_dig(config, "monitor.metric") or "val/loss")
    mode = str(_dig(config, "monitor.mode") or monitor_mode(metric))
    metrics = record.get("metrics") or {}
    status = record.get("status")
    best = metrics.get(f"{metric}_best", metrics.get(metric))
    val_loss = metrics.get("val/loss_best", metrics.get("val/loss"))
    baseline = metrics.get("baseline/loss")
    threshold = below is not None and baseline is not None
    solved_val = (threshold and status == "completed" and val_loss is not None
                  and baseline > 0 and val_loss < below * baseline)
    return {"run_dir": str(job_dir), "config": list(point), "seed": record.get("seed"),
            "status": status, "metric": metric, "mode": mode,
            "best": best if status == "completed" else None, "solved_val": bool(solved_val),
            "threshold_task": threshold, "steps": record.get("steps"),
            "solved": record.get("solved"), "metrics": metrics,
            "num_params": record.get("num_params"), "hidden_size": record.get("hidden_size"),
            "wall_time_s": record.get("wall_time_s"), "pack": record.get("pack")}




# ------------------------------------------------------------------------------------ selection
def rank(views: list[dict], grid: list[tuple[str, ...]]) -> list[dict[str, Any]]:
    """The configurations of ``grid`` that have runs in ``views``, best first, each with its
    score: ``solved`` (fraction of its tuning seeds solved on validation), ``median`` (median
    best monitored metric, worst for unsolved-and-broken runs), ``n``."""
    import statistics

    order = {point: i for i, point in enumerate(grid)}
    by_point: dict[tuple[str, ...], list[dict]] = {}
    for view in views:
        by_point.setdefault(tuple(view["config"]), []).append(view)
    scored = []
    for point, runs in by_point.items():
        if point not in order:
            continue
        maximize = runs[0]["mode"] == "max"
        worst = -math.inf if maximize else math.inf
        values = [r["best"] if r["best"] is not None and math.isfinite(r["best"]) else worst
                  for r in runs]
        median = statistics.median(values)
        scored.append({"config": list(point), "n": len(runs),
                       "solved": sum(r["solved_val"] for r in runs) / len(runs),
                       "median": median, "maximize": maximize,
                       "seeds": sorted(r["seed"] for r in runs),
                       "statuses": sorted(r["status"] for r in runs)})
    scored.sort(key=lambda s: (-s["solved"], -s["median"] if s["maximize"] else s["median"],
                               order[tuple(s["config"])]))
    return scored


def survivors(ranked: list[dict], eta: int) -> list[tuple[str, ...]]:
    keep = max(1, math.ceil(len(ranked) / eta))
    return [tuple(s["config"]) for s in ranked[:keep]]


# ------------------------------------------------------------------------------------- running
def _train_exe() -> list[str]:
    exe = Path(sys.executable).with_name("rnnlab-train")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "rnnlab.train"]


class Runner:
    """Runs (or resumes) one multirun per stage; ``dry_run`` prints instead."""

    def __init__(self, plan: Plan, dry_run: bool = False, out=None, collect: bool = False):
        self.plan, self.dry_run, self.out = plan, dry_run or collect, out or sys.stdout
        self.collect = collect  # run nothing, say nothing: the record of what has finished
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.pending = 0  # stages a dry run could not see the results of

    def say(self, text: str) -> None:
        print(f"[compare] {text}", file=self.out, flush=True)

    def common(self, arm: Arm, condition: tuple[str, ...], budget: int) -> list[str]:
        plan = self.plan
        out = [f"experiment={plan.experiment}", *plan.overrides, *condition, *arm.overrides,
               f"trainer.max_steps={budget}", "trainer.max_epochs=-1"]
        if isinstance(plan.param_budget, int):
            # the size the budget was counted at gives way to the budget (each arm solves for
            # its own hidden size)
            out = [o for o in out if not o.startswith("model.hidden_size=")]
        if plan.solved_consecutive is not None:
            out += [f"callbacks.solved_stop.below={fmt(plan.solved_below)}",
                    f"callbacks.solved_stop.consecutive={plan.solved_consecutive}"]
        if isinstance(plan.param_budget, int):
            out.append(f"model.param_budget={plan.param_budget}")
        return out

    def multirun(self, sweep_dir: Path, overrides: list[str], seeds: list[int], want: int,
                 what: str) -> dict[str, dict]:
        """Run the sweep ``overrides`` x ``seeds`` into ``sweep_dir`` (resume it when it
        exists); its finished jobs."""
        done = finished_jobs(sweep_dir) if sweep_dir.exists() else {}
        kept = sum(r.get("status") in KEPT for r in done.values())
        if kept >= want:
            return done
        if RunDir.sweep_config(sweep_dir).is_file():
            command = [*_train_exe(), f"resume={sweep_dir}"]
        else:
            if self.plan.launcher == "pack":
                launcher = ["hydra/launcher=pack", f"hydra.launcher.parallel={self.plan.jobs}"]
            elif self.plan.jobs > 1:
                launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={self.plan.jobs}"]
            else:  # one job at a time: Hydra's basic launcher, in this one process
                launcher = []
            command = [*_train_exe(), "-m", *overrides, f"seed={','.join(map(str, seeds))}",
                       *launcher, f"hydra.sweep.dir={sweep_dir}"]
        if self.collect:
            self.say(f"{what}: {kept} of {want} jobs finished (not run: --collect)")
            return done
        self.say(f"{what}: {want - kept} of {want} jobs to run "
                 f"({'resume' if 'resume=' in command[-1] else 'rnnlab-train -m'} ...)")
        if self.dry_run:
            self.say("  " + " ".join(command[1:] if len(command) > 1 else command))
            self.pending += 1
            return done
        # The jobs' own output goes to a log beside the sweep (the console shows the stages).
        log = sweep_dir.parent / f"{sweep_dir.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            code = subprocess.call(command, env=self.env, stdout=handle,
                                   stderr=subprocess.STDOUT)
        done = finished_jobs(sweep_dir) if sweep_dir.exists() else {}
        if code == 2 and not done:  # the settings were refused: rnnlab-train's one line
            lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
            raise CompareError(f"{what}: {lines[-1] if lines else 'refused (exit 2)'}")
        if code != 0:
            failed = sum(r.get("status") == "failed" for r in done.values())
            self.say(f"{what}: rnnlab-train exited {code} ({failed} failed job(s), counted as "
                     "unsolved and worst; a rerun tries them again)")
        return done


def _views(sweep_dir: Path, done: dict[str, dict], keys: list[str],
           below: float | None) -> list[dict]:
    return [job_view(sweep_dir / job, record, keys, below) for job, record in done.items()]


def tune(runner: Runner, arm: Arm, condition: tuple[str, ...], base: Path) -> dict[str, Any]:
    """Successive halving over the arm's grid; the stage results and the pick (None when a
    dry run cannot know it yet)."""
    plan = runner.plan
    keys = list(arm.space)
    grid = arm.grid()
    alive = grid
    rungs = []
    for rung in range(plan.rungs):
        budget = plan.rung_budget(rung)
        views: list[dict] = []
        what = f"{slug(condition)} / {arm.name} / tuning rung {rung} ({budget} steps)"
        if rung == 0:
            sweep = base / "tune-r0"
            axes = [f"{k}={','.join(fmt(v) for v in vals)}" for k, vals in arm.space.items()]
            done = runner.multirun(sweep, [*runner.common(arm, condition, budget), *axes,
                                           "test=false"], plan.tune_seeds,
                                   len(grid) * len(plan.tune_seeds), what)
            views = _views(sweep, done, keys, plan.solved_below)
        else:
            for point in alive:
                sweep = base / f"tune-r{rung}" / slug(point)
                done = runner.multirun(sweep, [*runner.common(arm, condition, budget), *point,
                                               "test=false"], plan.tune_seeds,
                                       len(plan.tune_seeds), f"{what}: {slug(point)}")
                views += _views(sweep, done, keys, plan.solved_below)
        ranked = rank(views, grid)
        rungs.append({"rung": rung, "budget": budget, "configs": [list(p) for p in alive],
                      "runs": views, "ranked": ranked})
        complete = len(views) >= len(alive) * len(plan.tune_seeds)
        if not complete or not ranked:
            return {"rungs": rungs, "pick": None}
        if rung < plan.rungs - 1:
            alive = survivors(ranked, plan.eta)
    best = ranked[0]
    metric = views[0]["metric"] if views else "val/loss"
    solved = (f"solved {best['solved']:.0%} of {best['n']} tuning seeds on validation, "
              if plan.solved_below is not None else f"over {best['n']} tuning seeds, ")
    why = (f"{solved}median best {metric} {best['median']:.4g}, at the full budget "
           f"({plan.budget} steps); {len(ranked)} configuration(s) reached the last rung of "
           f"{len(grid)}")
    edges = arm.edges(best["config"])
    if edges:
        why += f"; at the edge of its grid: {', '.join(edges)}"
    return {"rungs": rungs, "pick": {"config": best["config"], "why": why, "score": best,
                                     "edges": edges}}


def evaluate(runner: Runner, arm: Arm, condition: tuple[str, ...], base: Path,
             pick: list[str]) -> list[dict]:
    plan = runner.plan
    sweep = base / "eval"
    marker = sweep / "pick.json"
    if marker.is_file():
        recorded = (read_json(marker) or {}).get("config")
        if recorded != list(pick):
            raise CompareError(f"{sweep} was run with {recorded}, but the tuning now picks "
                               f"{list(pick)}: the tuning results changed; move {sweep} away")
    elif not runner.dry_run:
        sweep.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"config": list(pick)}))
    done = runner.multirun(sweep, [*runner.common(arm, condition, plan.budget), *pick],
                           plan.eval_seeds, len(plan.eval_seeds),
                           f"{slug(condition)} / {arm.name} / evaluation")
    return _views(sweep, done, list(arm.space), plan.solved_below)


def compose(overrides: list[str]):
    """The config ``rnnlab-train <overrides>`` would run (no Hydra runtime)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import rnnlab.config.schemas  # noqa: F401  (schemas and resolvers)
    from rnnlab.config.configdir import CONFIG_DIR, CONFIG_NAME

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return hydra_compose(config_name=CONFIG_NAME, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def resolve_param_budget(plan: Plan) -> int | None:
    """``param_budget: auto``: the largest arm's parameter count at the preset's own size, so
    every arm is matched to it (a smaller cell gets a larger hidden size)."""
    if plan.param_budget is None or isinstance(plan.param_budget, int):
        return plan.param_budget
    if plan.param_budget != "auto":
        raise CompareError(f"param_budget must be an integer, auto or null, got "
                           f"{plan.param_budget!r}")
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from rnnlab.model.models import count_params

    counts = {}
    for arm in plan.arms:
        for condition in plan.conditions:
            try:
                cfg = compose([f"experiment={plan.experiment}", *plan.overrides, *condition,
                                   *arm.overrides])
                data = instantiate(cfg.data, seed=0)
                options = OmegaConf.to_container(cfg.model, resolve=True)
                options.pop("param_budget", None)
                hidden = options.pop("hidden_size")
                counts[arm.name] = max(counts.get(arm.name, 0),
                                       count_params(data.spec, hidden, **options))
            except Exception as error:  # noqa: BLE001 - one line, whatever composition raised
                raise CompareError(f"param_budget: auto could not count arm {arm.name}'s "
                                   f"parameters ({one_line(error)}); give param_budget: N") \
                    from None
    return max(counts.values())


def run(plan: Plan, dry_run: bool = False, out=None, collect: bool = False) -> dict[str, Any]:
    """Tune every arm in every condition, evaluate the picks; write and return the record."""
    from rnnlab.run.atomic import write_json_atomic

    runner = Runner(plan, dry_run, out, collect)
    plan.param_budget = resolve_param_budget(plan)
    record: dict[str, Any] = {"version": 1, "plan": plan.to_dict(),
                              "rule": rule_text(plan.solved_below),
                              "conditions": []}
    if plan.param_budget is not None:
        runner.say(f"every arm at <= {plan.param_budget} parameters (model.param_budget)")
    for condition in plan.conditions:
        entry: dict[str, Any] = {"condition": list(condition), "arms": {}}
        record["conditions"].append(entry)
        for arm in plan.arms:
            base = plan.dir / slug(condition) / arm.name
            tuning = tune(runner, arm, condition, base)
            arm_entry: dict[str, Any] = {"overrides": list(arm.overrides), "space": arm.space,
                                         "tuning": tuning["rungs"], "pick": tuning["pick"],
                                         "eval": []}
            entry["arms"][arm.name] = arm_entry
            if tuning["pick"] is not None:
                runner.say(f"{slug(condition)} / {arm.name}: picked "
                           f"{' '.join(tuning['pick']['config']) or '(the preset)'}: "
                           f"{tuning['pick']['why']}")
                arm_entry["eval"] = evaluate(runner, arm, condition, base,
                                             tuning["pick"]["config"])
            if (collect or not dry_run) and not plan.partial:
                write_json_atomic(plan.dir / "compare.json", record)
    return record
