"""The tables of a fair comparison (``rnnlab-compare``), read from its record (compare.json).

Per condition, one row per arm: the configuration tuning picked, the per-seed verdicts, the
solved count with its exact interval, the headline metric with its interval, and steps-to-solve
as censored data -- each tested against the condition's best arm, with Holm's correction over
all the table's comparisons of that kind (raw p beside it). The statistics are
:mod:`rnnlab.results.seedstats`'s, one implementation for every table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rnnlab.run.verdict import verdict

YES, NO, BROKE = "✓", "✗", "÷"  # solved, not solved, diverged or failed (per evaluation seed)


def headline_metric(record: dict, runs: list[dict]) -> str:
    chosen = (record.get("plan") or {}).get("headline")
    if chosen:
        return str(chosen)
    for metric in ("test/acc", "test/loss"):
        if any(metric in (r.get("metrics") or {}) for r in runs):
            return metric
    return "test/loss"


def _solved(run: dict) -> bool:
    m = run.get("metrics") or {}
    return run.get("status") == "completed" and verdict(m.get("test/loss"),
                                                        m.get("baseline/loss")) == "solved"


def _step(run: dict) -> float | None:
    """When an evaluation run solved the task (validation), None when it never did."""
    solved = run.get("solved") or {}
    if solved.get("step") is not None:
        return float(solved["step"])
    if solved:  # the run recorded its streak: it never completed one
        return None
    from rnnlab.results.curves import solved_step

    m = run.get("metrics") or {}
    step = solved_step(run["run_dir"], m.get("baseline/loss"), 0.10)
    return None if step is None or math.isnan(step) else step


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _steps(x: float) -> str:
    """A step count as an integer (∞: not reached within the budget)."""
    if x is None or math.isnan(x) or math.isinf(x):
        return _fmt(x)
    return f"{x:,.0f}"


def _p(raw: float, adjusted: float) -> str:
    if raw is None or math.isnan(raw):
        return "–"
    return f"{adjusted:.2g} ({raw:.2g})"


def rows(record: dict) -> list[dict[str, Any]]:
    """One dict per (condition, arm): the numbers, unformatted."""
    from rnnlab.results import seedstats

    budget = (record.get("plan") or {}).get("budget")
    out = []
    for entry in record.get("conditions", []):
        condition = " ".join(entry["condition"]) or "—"
        arms = entry["arms"]
        all_runs = [r for a in arms.values() for r in a.get("eval", [])]
        metric = headline_metric(record, all_runs)
        threshold = any(r.get("threshold_task") for r in all_runs)
        for name, arm in arms.items():
            runs = sorted(arm.get("eval", []), key=lambda r: r.get("seed") or 0)
            done = [r for r in runs if r.get("status") == "completed"]
            values = [float(r["metrics"][metric]) for r in done if metric in r["metrics"]]
            row: dict[str, Any] = {
                "condition": condition, "arm": name,
                "picked": " ".join((arm.get("pick") or {}).get("config") or []) or "(preset)",
                "why": (arm.get("pick") or {}).get("why", "not picked yet"),
                "edges": (arm.get("pick") or {}).get("edges") or [],
                "n": len(runs), "metric": metric, "values": values,
                "interval": seedstats.metric_interval(values),
                "params": next((r.get("num_params") for r in runs if r.get("num_params")), None),
                "seeds": [r.get("seed") for r in runs]}
            secondary = (record.get("plan") or {}).get("secondary") or []
            row["baselines"] = {_baseline_key(m): [r["metrics"][_baseline_key(m)] for r in done
                                                   if _baseline_key(m) in r["metrics"]]
                                for m in secondary}
            row["secondary"] = {
                m: seedstats.metric_interval([float(r["metrics"][m]) for r in done
                                              if m in r["metrics"]]) for m in secondary}
            if threshold:
                verdicts = [_solved(r) for r in runs]
                row["verdicts"] = "".join(YES if v else (NO if r.get("status") == "completed"
                                                         else BROKE)
                                          for v, r in zip(verdicts, runs))
                row["k"] = sum(verdicts)
                row["solved"] = seedstats.solved_interval(row["k"], len(runs))
                row["steps_raw"] = [_step(r) if r.get("status") == "completed" else None
                                    for r in runs]
                # a seed that never solved (a diverged one included) is censored at the budget
                row["budget"] = float(budget or max((r.get("steps") or 0) for r in runs) or 1)
                row["steps"] = seedstats.steps_to_solve(row["steps_raw"], row["budget"])
            out.append(row)
    _tests(out)
    return out


def _best(group: list[dict]) -> dict:
    from rnnlab.config.schemas import monitor_mode

    def key(row):
        mean = row["interval"].estimate
        mean = -math.inf if mean is None or math.isnan(mean) else mean
        higher = monitor_mode(row["metric"]) == "max"
        return (row.get("k", 0) / max(row["n"], 1), mean if higher else -mean)
    return max(group, key=key)


def _tests(table: list[dict]) -> None:
    """Each arm against its condition's best arm; Holm over the table, per kind of test."""
    from rnnlab.results import seedstats

    kinds = {"p_solved": [], "p_metric": [], "p_steps": []}
    for condition in dict.fromkeys(r["condition"] for r in table):
        group = [r for r in table if r["condition"] == condition]
        best = _best(group)
        for row in group:
            row["vs"] = best["arm"]
            if row is best:
                continue
            row["p_metric"] = seedstats.metric_test(row["values"], best["values"])
            kinds["p_metric"].append(row)
            if "solved" in row:
                row["p_solved"] = seedstats.solved_test(row["k"], row["n"], best["k"], best["n"])
                kinds["p_solved"].append(row)
                row["p_steps"] = seedstats.steps_test(row["steps_raw"], row["budget"],
                                                      best["steps_raw"], best["budget"])
                kinds["p_steps"].append(row)
    for kind, tested in kinds.items():
        adjusted = seedstats.holm([r[kind].p for r in tested])
        for row, p in zip(tested, adjusted):
            row[f"{kind}_holm"] = p


def table_frame(record: dict, width: int | None = None):
    """The table as a pandas frame of text; ``width``: the terminal's, drop the columns that do
    not fit (summary.md keeps them all)."""
    import pandas as pd

    data = rows(record)
    if not data:
        return pd.DataFrame(), data
    frame = []
    for row in data:
        iv = row["interval"]
        shown = {"condition": row["condition"], "arm": row["arm"], "picked": row["picked"],
                 "params": row["params"]}
        if "solved" in row:
            s = row["solved"]
            shown["solved [95% CI]"] = f"{row['k']}/{row['n']} [{s.low:.2f}, {s.high:.2f}]"
            shown["p solved"] = _p(getattr(row.get("p_solved"), "p", math.nan),
                                   row.get("p_solved_holm", math.nan))
        shown[f"{row['metric']} [95% CI]"] = (f"{_fmt(iv.estimate)} [{_fmt(iv.low)}, "
                                              f"{_fmt(iv.high)}]")
        shown[f"p {row['metric']}"] = _p(getattr(row.get("p_metric"), "p", math.nan),
                                         row.get("p_metric_holm", math.nan))
        for name, sv in row.get("secondary", {}).items():
            shown[f"{name} [95% CI]"] = f"{_fmt(sv.estimate)} [{_fmt(sv.low)}, {_fmt(sv.high)}]"
        if "steps" in row:
            st = row["steps"]
            shown["steps to solve [95% CI]"] = (f"{_steps(st.median)} [{_steps(st.low)}, "
                                                f"{_steps(st.high)}]")
            shown["p steps"] = _p(getattr(row.get("p_steps"), "p", math.nan),
                                  row.get("p_steps_holm", math.nan))
            shown["per seed"] = row["verdicts"]
        frame.append(shown)
    frame = pd.DataFrame(frame)
    if width is not None:
        for column in ("params", "per seed", "p steps", "steps to solve [95% CI]", "picked",
                       "p solved"):
            if len(frame.to_markdown(index=False).splitlines()[0]) <= width:
                break
            if column in frame:
                frame = frame.drop(columns=column)
    return frame, data


def footnotes(record: dict, data: list[dict]) -> list[str]:
    plan = record.get("plan") or {}
    if not data:
        return []
    sample = data[0]
    notes = [
        f"Selection: {record.get('rule', '')}.",
        f"Tuning seeds {plan.get('tune_seeds')}, validation split only; evaluation seeds "
        f"{plan.get('eval_seeds', [None])[0]}–{plan.get('eval_seeds', [None])[-1]} "
        f"({len(plan.get('eval_seeds', []))}), test split; budget {plan.get('budget')} steps "
        f"for every arm" + (f", <= {plan.get('param_budget')} parameters each"
                            if plan.get("param_budget") else "") + ".",
        f"{sample['metric']}: mean over evaluation seeds, {sample['interval'].method}; p: "
        f"{_method(data, 'p_metric')} against the condition's best arm.",
    ]
    for name, sv in sample.get("secondary", {}).items():
        notes.append(f"{name} (secondary, not tested): mean over evaluation seeds, {sv.method}"
                     + _baseline_note(data, name) + ".")
    if "solved" in sample:
        notes += [
            f"solved: test/loss < 0.1 x baseline/loss per seed ({YES} solved, {NO} not, {BROKE} "
            f"diverged/failed); {sample['solved'].method}; p solved: {_method(data, 'p_solved')}.",
            f"steps to solve: {sample['steps'].method}; seeds that never solved are censored at "
            f"the budget, not dropped; ∞: the median is not reached within the budget; p steps: "
            f"{_method(data, 'p_steps')}.",
        ]
    if plan.get("solved_consecutive") is not None and "solved" in sample:
        notes.append(f"A run stopped once solved ({plan['solved_consecutive']} validations in a "
                     "row under the threshold): a solved seed's test metric is its best "
                     "checkpoint's up to that stop, not at the end of the budget, so between arms "
                     "that both solve, the solved count and the steps to solve are the fair "
                     "comparison, not the metric.")
    edges = [f"{row['arm']}" + (f" ({row['condition']})" if row["condition"] != "—" else "")
             + f": {', '.join(row['edges'])}" for row in data if row.get("edges")]
    if edges:
        notes.append("Picked at the edge of its search grid, so a better setting may lie beyond "
                     f"it: {'; '.join(edges)}.")
    notes.append("Every p is Holm-adjusted over the table's comparisons of its kind, raw p in "
                 "parentheses.")
    return notes


def _baseline_key(metric: str) -> str:
    """The runs' own baseline of a test metric: ``test/acc`` -> ``baseline/acc``."""
    return "baseline/" + metric.split("/", 1)[1]


def _baseline_note(data: list[dict], metric: str) -> str:
    """The task's own baseline for ``metric`` as the evaluation runs recorded it (``test/acc``:
    ``baseline/acc``), and the arms whose interval lies wholly on the wrong side of it."""
    from rnnlab.config.schemas import monitor_mode

    key = _baseline_key(metric)
    values = {round(float(v), 6) for row in data for v in row.get("baselines", {}).get(key, [])}
    if len(values) != 1:
        return ""
    (base,) = values
    higher = monitor_mode(metric) == "max"
    below = [row["arm"] for row in data if (row["secondary"][metric].high < base if higher
                                            else row["secondary"][metric].low > base)]
    side = "below" if higher else "above"
    return (f"; the task's baseline ({key}, recorded by the runs) is {_fmt(base)}"
            + (f"; the whole interval of {', '.join(below)} lies {side} it" if below else ""))


def _method(data: list[dict], kind: str) -> str:
    return next((r[kind].method for r in data if r.get(kind) is not None), "not tested")


def summary_markdown(record: dict, width: int | None = None) -> str:
    frame, data = table_frame(record, width)
    if frame.empty:
        return "(no evaluation runs finished yet)"
    lines = [frame.to_markdown(index=False), ""]
    lines += [f"- {note}" for note in footnotes(record, data)]
    return "\n".join(lines)


def picks_markdown(record: dict) -> str:
    lines = ["| condition | arm | picked | why |", "|---|---|---|---|"]
    for entry in record.get("conditions", []):
        for name, arm in entry["arms"].items():
            pick = arm.get("pick") or {}
            lines.append(f"| {' '.join(entry['condition']) or '—'} | {name} | "
                         f"{' '.join(pick.get('config') or []) or '—'} | "
                         f"{pick.get('why', 'not picked yet')} |")
    return "\n".join(lines)


def tuning_markdown(record: dict) -> str:
    """Every tuning configuration: rung, solved fraction on validation, median best metric."""
    lines = ["| condition | arm | rung | steps | configuration | seeds | solved (val) | "
             "median best |", "|---|---|---:|---:|---|---:|---:|---:|"]
    for entry in record.get("conditions", []):
        for name, arm in entry["arms"].items():
            for rung in arm.get("tuning", []):
                for s in rung.get("ranked", []):
                    lines.append(f"| {' '.join(entry['condition']) or '—'} | {name} | "
                                 f"{rung['rung']} | {rung['budget']} | "
                                 f"{' '.join(s['config']) or '(preset)'} | {s['n']} | "
                                 f"{s['solved']:.0%} | {_fmt(s['median'])} |")
    return "\n".join(lines)


def write_summary(record: dict, out_dir: Path) -> Path:
    """``summary.md`` beside compare.json: the full table, the picks, every tuning result."""
    from rnnlab.run.atomic import atomic_open

    text = "\n\n".join([f"# {record['plan']['name']}: fair comparison", summary_markdown(record),
                        "## Picks", picks_markdown(record), "## Tuning", tuning_markdown(record)])
    path = Path(out_dir) / "summary.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as handle:
        handle.write(text + "\n")
    return path
