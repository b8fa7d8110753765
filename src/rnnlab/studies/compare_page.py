"""A fair comparison on docs/results.md: its generated block, and the page's opening standing.

``rnnlab-compare PLAN --docs`` rewrites two kinds of block from the records under the plan's
out dir (nothing typed by hand)::

    <!-- compare:NAME -->      the plan's table, picks, figures and generated verdict
    <!-- compare:standing -->  every cell's standing across all the comparisons recorded there

The standing: each (comparison, condition) is a task; each evaluation seed's test score is
normalised so that the task's baseline is 0 and a perfect score 1 (a loss: its memoryless /
constant-predictor ``baseline/loss`` and 0; an accuracy: chance and 1), and rliable's aggregates
(:mod:`rnnlab.results.standing`) summarise each arm over runs x tasks.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

PAGE = Path("docs/results.md")
_BLOCK = r"<!-- compare:{name} -->\n.*?<!-- /compare:{name} -->"


def _records(out: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(Path(out).glob("*/compare.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and record.get("conditions"):
            found[path.parent.name] = record
    return found


def task_scores(record: dict) -> dict[tuple[str, str], dict[str, list[float]]]:
    """``{(comparison, condition): {arm: [normalised score per evaluation seed]}}``, seeds in
    order; a diverged or failed seed scores 0 (the baseline: it learned nothing usable)."""
    from rnnlab.results.standing import normalise
    from rnnlab.studies.compare_table import headline_metric

    name = record["plan"]["name"]
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    for entry in record.get("conditions", []):
        runs = [r for a in entry["arms"].values() for r in a.get("eval", [])]
        if not runs:
            continue
        metric = headline_metric(record, runs)
        task = (name, " ".join(entry["condition"]) or "—")
        for arm, data in entry["arms"].items():
            scores = []
            for run in sorted(data.get("eval", []), key=lambda r: r.get("seed") or 0):
                m = run.get("metrics") or {}
                if metric.endswith("acc"):
                    base, perfect = m.get("baseline/acc"), 1.0
                else:
                    base, perfect = m.get("baseline/loss"), 0.0
                value = m.get(metric)
                if run.get("status") != "completed" or value is None or base is None \
                        or not math.isfinite(value):
                    scores.append(0.0)
                else:
                    scores.append(float(normalise(value, base, perfect)))
            out.setdefault(task, {})[arm] = scores
    return out


def standing_block(out: Path, figures: Path, page: Path = PAGE) -> str:
    """The page's opening: each cell's standing across every recorded comparison."""
    import numpy as np

    from rnnlab.config.cellspecs import SPECS
    from rnnlab.results import standing

    tasks: dict[tuple[str, str], dict[str, list[float]]] = {}
    for record in _records(out).values():
        # a comparison of cells (its arms are cells of the registry); one of an LSTM's forget
        # biases, say, compares settings of one cell and stands in its own section only
        arms = {arm for entry in record.get("conditions", []) for arm in entry.get("arms", {})}
        if arms and arms <= set(SPECS):
            tasks.update(task_scores(record))
    if not tasks:
        return "*No fair comparison recorded yet (`rnnlab-compare docs/compare/<plan>.yaml`).*"
    arms = sorted(set.intersection(*(set(t) for t in tasks.values())))
    kept = {k: v for k, v in tasks.items() if all(a in v for a in arms) and
            all(v[a] for a in arms)}
    if not arms or not kept:
        return "*The recorded comparisons share no arm evaluated on every task.*"
    width = max(len(v[a]) for v in kept.values() for a in arms)
    scores = {}
    for arm in arms:
        columns = [v[arm] + [math.nan] * (width - len(v[arm])) for v in kept.values()]
        scores[arm] = np.array(columns, dtype=float).T
    frame = standing.standing(scores)
    figures.mkdir(parents=True, exist_ok=True)
    figure = standing.profile_figure(scores, figures / "standing_profile.png")
    table = ["| cell | runs × tasks | IQM [95% CI] | median | mean | optimality gap |",
             "|---|---:|---|---|---|---|"]
    for _, row in frame.sort_values("iqm", ascending=False).iterrows():
        table.append(f"| {row['arm']} | {int(row['runs'])} × {int(row['tasks'])} | "
                     f"{row['iqm']:.3f} [{row['iqm_low']:.3f}, {row['iqm_high']:.3f}] | "
                     f"{row['median']:.3f} | {row['mean']:.3f} | {row['optimality_gap']:.3f} |")
    listing = "; ".join(f"{c} {cond}" for c, cond in kept)
    rel = _rel(figure, page)
    return "\n".join([
        f"Tasks ({len(kept)}): {listing}. Score per evaluation seed: 0 at the task's baseline "
        "(memoryless or constant-predictor loss, chance accuracy), 1 at perfect (loss 0, "
        "accuracy 1); a diverged or failed seed scores 0. Each cell with its own tuned "
        "configuration (`rnnlab-compare`); within a task every cell has the same parameter "
        "count and step budget. "
        f"{frame.attrs.get('method', '')}.", "", *table, "", f"![performance profile]({rel})"])


def _rel(path: Path, page: Path) -> str:
    try:
        return Path(path).resolve().relative_to(page.resolve().parent).as_posix()
    except ValueError:
        return Path(path).as_posix()


def curves_figure(record: dict, path: Path) -> Path | None:
    """Per condition: each arm's fraction of evaluation seeds solved against the training step
    (Kaplan-Meier, censored at the budget) and its median validation loss against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnlab.results.curves import read_curve
    from rnnlab.studies.compare_table import rows

    data = [r for r in rows(record) if r["n"]]
    if not data:
        return None
    conditions = list(dict.fromkeys(r["condition"] for r in data))
    # a threshold task: the fraction solved against steps on top; otherwise the curves alone
    threshold = any("steps" in r for r in data)
    fig, axes = plt.subplots(2 if threshold else 1, len(conditions),
                             figsize=(4.2 * len(conditions), 6.4 if threshold else 3.6),
                             squeeze=False)
    budget = record["plan"]["budget"]
    runs_of = {(" ".join(e["condition"]) or "—", arm): a.get("eval", [])
               for e in record["conditions"] for arm, a in e["arms"].items()}
    for j, condition in enumerate(conditions):
        top, bottom = (axes[0][j], axes[1][j]) if threshold else (None, axes[0][j])
        for row in (r for r in data if r["condition"] == condition):
            label = f"{row['arm']} ({row['picked']})"
            if "steps" in row and row["steps"].curve:
                xs, ys = zip(*row["steps"].curve)
                top.step([0, *xs, budget], [0, *(1 - y for y in ys), 1 - ys[-1]], where="post",
                         label=label)
            curves = [read_curve(r["run_dir"], "val/loss") for r in runs_of[(condition,
                                                                             row["arm"])]]
            curves = [c for c in curves if c is not None and len(c)]
            if curves:
                import pandas as pd

                frame = pd.concat(curves, axis=1).ffill()
                bottom.plot(frame.index + 1, frame.median(axis=1), label=label)
        bases = [(r.get("metrics") or {}).get("baseline/loss") for r in
                 (run for arm in record["plan"]["arms"]
                  for run in runs_of.get((condition, arm["name"]), []))]
        bases = [b for b in bases if b]
        bottom.set(xlabel="training step", ylabel="val/loss (median over seeds)", yscale="log",
                   xlim=(0, budget))
        if threshold:
            if bases:
                bottom.axhline(0.1 * bases[0], color="grey", linestyle=":", linewidth=1)
            top.set(title=condition, xlabel="training step", ylabel="fraction of seeds solved",
                    xlim=(0, budget), ylim=(-0.02, 1.02))
            top.legend(fontsize=7)
        else:
            bottom.set(title=condition)
            bottom.legend(fontsize=7)
    fig.suptitle(f"{record['plan']['name']}: evaluation seeds against the step budget\n"
                 + ("(a run stops once solved; dotted: the solved threshold)" if threshold
                    else "(no solved threshold: every run trains its whole budget)"),
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cpu_hours(views: list[dict], plan: dict) -> float:
    """CPU-hours of a comparison's runs: a run's wall_time_s, one thread each; the members of a
    pack share one loop, so each pack counts once (its longest member). Runs recorded before
    results.json named its pack: their stage's packs as hydra/launcher=pack forms them
    (rnnlab.run.pack_plan.plan, the launcher's default size)."""
    from omegaconf import OmegaConf

    from rnnlab.config.configdir import CONFIG_DIR
    from rnnlab.run.pack_plan import plan as pack_plan

    # rnnlab-compare launches packs at the launcher's default size (conf/hydra/launcher/pack.yaml)
    size = int(OmegaConf.load(Path(CONFIG_DIR) / "hydra" / "launcher" / "pack.yaml").size)
    packs: dict[Any, float] = {}
    unnamed: dict[str, list[dict]] = {}
    for view in views:
        wall = float(view.get("wall_time_s") or 0.0)
        if view.get("pack"):
            key = view["pack"]["id"]
        elif plan.get("launcher") == "pack":
            unnamed.setdefault(str(Path(view["run_dir"]).parent), []).append(view)
            continue
        else:
            key = view["run_dir"]
        packs[key] = max(packs.get(key, 0.0), wall)
    for stage, members in unnamed.items():
        members.sort(key=lambda v: int(Path(v["run_dir"]).name)
                     if Path(v["run_dir"]).name.isdigit() else 0)
        for i, indices in enumerate(pack_plan([""] * len(members), size,
                                              int(plan.get("jobs") or 1))):
            packs[(stage, i)] = max(float(members[j].get("wall_time_s") or 0.0)
                                    for j in indices)
    return sum(packs.values()) / 3600


def comparison_block(record: dict, plan_path: str, figures: Path, page: Path = PAGE) -> str:
    """The generated block of one comparison: facts, table, picks, figure, verdict."""
    from rnnlab.results.verdicts import compare_paragraph
    from rnnlab.studies.compare_table import picks_markdown, summary_markdown

    name = record["plan"]["name"]
    runs = [r for e in record["conditions"] for a in e["arms"].values()
            for rung in a.get("tuning", []) for r in rung.get("runs", [])]
    evals = [r for e in record["conditions"] for a in e["arms"].values()
             for r in a.get("eval", [])]
    plan = record["plan"]
    how = ("one thread per pack, each pack's time counted once, "
           f"{plan.get('jobs', 1)} pack(s) at a time" if plan.get("launcher") == "pack" else
           f"one thread per run, {plan.get('jobs', 1)} at a time")
    facts = (f"`rnnlab-compare {plan_path}`: {len(runs)} tuning runs and {len(evals)} "
             f"evaluation runs, {cpu_hours(runs + evals, plan):.1f} CPU-hours ({how}, with "
             "other work on the machine).")
    lines = [facts, "", summary_markdown(record), "", "Picked configurations:", "",
             picks_markdown(record)]
    figure = curves_figure(record, figures / name / "against_steps.png")
    if figure is not None:
        lines += ["", f"![{name} against steps]({_rel(figure, page)})"]
    lines += compare_paragraph(name, record)
    return "\n".join(lines)


def rebuild(page: Path, blocks: dict[str, str]) -> list[str]:
    """Replace each ``<!-- compare:NAME -->`` block of the page (under the page's lock)."""
    from filelock import FileLock

    from rnnlab.run.atomic import atomic_open
    from rnnlab.studies.compare import CompareError

    def pattern(name: str) -> re.Pattern:
        return re.compile(_BLOCK.format(name=re.escape(name)), re.DOTALL)

    with FileLock(str(page.with_name(f".{page.name}.lock"))):
        text = page.read_text()
        for name, body in blocks.items():
            if not pattern(name).search(text):
                raise CompareError(f"{page} has no <!-- compare:{name} --> ... "
                                   f"<!-- /compare:{name} --> block")
            block = f"<!-- compare:{name} -->\n{body}\n<!-- /compare:{name} -->"
            text = pattern(name).sub(lambda _m, b=block: b, text)
        with atomic_open(page, "w") as handle:
            handle.write(text)
    return list(blocks)


def build_docs(record: dict[str, Any], plan_path: str, out: Path,
               page: Path = PAGE, figures: Path = Path("docs/results")) -> list[str]:
    name = record["plan"]["name"]
    blocks = {name: comparison_block(record, plan_path, figures, page)}
    if "<!-- compare:standing -->" in page.read_text():
        blocks["standing"] = standing_block(out, figures, page)
    return rebuild(page, blocks)
