"""Comparative sentences generated from the statistics, never typed by hand.

Which arm is better, by how much, with which test and p: the sentences a results page would
otherwise type, written here from the numbers, so that none says more than its test. One rule for
every kind of table:

* Every comparison states both sides' numbers, the test, its raw p and its Holm-adjusted p (Holm
  over the table's comparisons of that kind, :func:`rnnlab.results.seedstats.holm`).
* A direction ("gru solves more often", "gru has the lower test/loss") is stated only where the
  Holm-adjusted p < :data:`~rnnlab.results.stats.SIGNIFICANT` (0.05); otherwise the sentence says
  "no difference shown at the 0.05 level", which is not a finding that the arms are equal.
* A comparison that cannot be tested says so, and why.

Three sources, one :class:`Verdict` per comparison:

* :func:`compare_verdicts` -- ``rnnlab-compare``'s table
  (:func:`rnnlab.studies.compare_table.rows`): each arm against its condition's best arm on
  solved counts (Barnard's exact test), the headline metric (Mann-Whitney U) and
  steps-to-solve (log-rank), each Holm-adjusted there.
* :func:`table_verdicts` -- an aggregate table (:func:`rnnlab.results.aggregate.aggregate`): each
  row against its control row on the headline metric (Welch's t, the table's ``<m> p``), and on
  solved and diverged counts (Barnard's exact test) where the table has any.
* :func:`baseline_verdicts` -- the rows against classical baselines, which are deterministic
  single numbers (:mod:`rnnlab.results.baselines`): whether each row's 95% Student-t interval
  over seeds contains the baseline's value (the one-sample t-test, whose p < 0.05 exactly when
  the interval excludes it), Holm over every (row, baseline) pair.

:func:`paragraph` renders them as the "Verdict (generated)" paragraph that ends each generated
block of docs/results.md, with an anchor ``verdict-NAME`` (``verdict-compare-NAME`` for a
``<!-- compare:NAME -->`` block, :func:`compare_paragraph`); the page's hand-written prose
points to it as ``[verdict](#verdict-NAME)`` whenever it compares arms (tests/test_prose.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rnnlab.results.stats import CONFIDENCE, SIGNIFICANT

__all__ = ["Verdict", "anchor", "baseline_verdicts", "compare_paragraph", "compare_verdicts",
           "paragraph", "table_verdicts"]

NO_DIFFERENCE = f"no difference shown at the {SIGNIFICANT:g} level"
_PCT = f"{CONFIDENCE:.0%}"
BARNARD, MWU, LOGRANK = "Barnard's exact", "Mann-Whitney U", "log-rank"
WELCH, ONE_SAMPLE = "Welch's t", "one-sample t"


@dataclass(frozen=True)
class Verdict:
    """One comparison in words. ``favours`` is the side a stated direction favours (the better
    side where "better" is defined: more seeds solved, the better metric, solving sooner,
    fewer divergences), None where no direction is stated (not significant after Holm, or not
    testable)."""

    kind: str  # "solved", "metric", "steps", "diverged" or "baseline"
    test: str  # the test in words: "Welch's t", "Barnard's exact", ...
    a: str  # the reference side: the best arm, the control row, the baseline
    b: str  # the side compared with it
    p: float  # raw (NaN: not tested)
    p_holm: float
    favours: str | None
    text: str
    metric: str = ""  # the metric compared, for kinds "metric" and "baseline"

    @property
    def shown(self) -> bool:
        """Whether the verdict states a direction (Holm-adjusted p below the level)."""
        return self.favours is not None


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _p(p: float) -> str:
    return "–" if _nan(p) else f"{p:.2g}"


def _num(x: Any) -> str:
    from rnnlab.results.tables import format_number

    return format_number(x) or "–"


def _significant(p_holm: float) -> bool:
    return not _nan(p_holm) and p_holm < SIGNIFICANT


def _tail(test: str, p: float, p_holm: float, claim: str | None) -> str:
    """"(Welch's t p = 0.01, Holm 0.03): claim." or the no-difference form."""
    head = f"({test} p = {_p(p)}, Holm {_p(p_holm)})"
    if claim is not None and _significant(p_holm):
        return f"{head}: {claim}."
    after = " after Holm's correction" if not _nan(p) and p < SIGNIFICANT else ""
    return f"{head}: {NO_DIFFERENCE}{after}."


def _lower_is_better(metric: str) -> bool:
    from rnnlab.config.schemas import monitor_mode

    return monitor_mode(metric) == "min"


def _counts(kind: str, prefix: str, a: str, ka: int, na: int, b: str, kb: int, nb: int,
            p: float, p_holm: float) -> Verdict:
    """Solved or diverged counts of two sides, Barnard's exact test."""
    what = "solved" if kind == "solved" else "diverged"
    numbers = f"{prefix}{a} {ka}/{na} {what} vs {b} {kb}/{nb}"
    if _nan(p):
        why = "an arm without runs" if not (na and nb) else "no test"
        return Verdict(kind, BARNARD, a, b, p, p_holm, None, f"{numbers}: not tested ({why}).")
    fa, fb = ka / na, kb / nb
    more = a if fa > fb else b
    if kind == "solved":
        claim, favours = f"{more} solves more often", more
    else:
        claim, favours = f"{more} diverges more often", (b if more == a else a)
    shown = _significant(p_holm) and fa != fb
    return Verdict(kind, BARNARD, a, b, p, p_holm, favours if shown else None,
                   f"{numbers} {_tail(BARNARD, p, p_holm, claim if shown else None)}")


# ---------------------------------------------------------------- rnnlab-compare


def compare_verdicts(rows: Sequence[dict]) -> list[Verdict]:
    """One verdict per (arm, test) of a fair comparison's table (:func:`compare_table.rows`):
    each arm against its condition's best arm, the tests and Holm-adjusted p's as the table
    has them. The best arm is named first."""
    by_arm = {(r["condition"], r["arm"]): r for r in rows}
    out: list[Verdict] = []
    for row in rows:
        best = by_arm.get((row["condition"], row.get("vs")))
        if best is None or best is row:
            continue
        condition = row["condition"]
        prefix = "" if condition in ("", "—") else f"{condition}: "
        a, b = best["arm"], row["arm"]
        if row.get("p_solved") is not None:
            out.append(_counts("solved", prefix, a, best["k"], best["n"], b, row["k"], row["n"],
                               row["p_solved"].p, row.get("p_solved_holm", math.nan)))
        if row.get("p_metric") is not None:
            out.append(_compare_metric(prefix, best, row))
        if row.get("p_steps") is not None:
            out.append(_compare_steps(prefix, best, row))
    return out


def _interval_text(iv) -> str:
    if _nan(iv.low):
        return f"{_num(iv.estimate)} (n = {iv.n})"
    return f"{_num(iv.estimate)} [{_num(iv.low)}, {_num(iv.high)}] (n = {iv.n})"


def _compare_metric(prefix: str, best: dict, row: dict) -> Verdict:
    metric, test = row["metric"], row["p_metric"]
    a, b = best["arm"], row["arm"]
    p, p_holm = test.p, row.get("p_metric_holm", math.nan)
    numbers = (f"{prefix}{metric} {a} {_interval_text(best['interval'])} vs {b} "
               f"{_interval_text(row['interval'])}")
    if _nan(p):
        return Verdict("metric", MWU, a, b, p, p_holm, None,
                       f"{numbers}: not tested (an arm without completed runs).", metric)
    # U of b's seeds over a's: above half of the n_a n_b pairs, b's seeds tend higher.
    share = test.statistic / (test.n_a * test.n_b)
    higher = b if share > 0.5 else a if share < 0.5 else None
    lower = None if higher is None else (a if higher == b else b)
    favours = lower if _lower_is_better(metric) else higher
    claim = None if higher is None else (f"{lower} has the lower {metric}"
                                         if _lower_is_better(metric)
                                         else f"{higher} has the higher {metric}")
    shown = claim is not None and _significant(p_holm)
    return Verdict("metric", MWU, a, b, p, p_holm, favours if shown else None,
                   f"{numbers} {_tail(MWU, p, p_holm, claim if shown else None)}", metric)


def _compare_steps(prefix: str, best: dict, row: dict) -> Verdict:
    from rnnlab.results.seedstats import format_steps

    a, b = best["arm"], row["arm"]
    p, p_holm = row["p_steps"].p, row.get("p_steps_holm", math.nan)
    sa, sb = best["steps"], row["steps"]
    numbers = (f"{prefix}steps to solve (Kaplan-Meier median) {a} {format_steps(sa.median)} vs "
               f"{b} {format_steps(sb.median)}")
    if _nan(p):
        return Verdict("steps", LOGRANK, a, b, p, p_holm, None,
                       f"{numbers}: not tested (no seed solved in either arm).")
    if sa.median != sb.median:
        sooner = a if sa.median < sb.median else b
    elif sa.solved / max(sa.n, 1) != sb.solved / max(sb.n, 1):
        sooner = a if sa.solved / max(sa.n, 1) > sb.solved / max(sb.n, 1) else b
    else:
        sooner = None
    claim = None if sooner is None else f"{sooner} solves sooner"
    shown = claim is not None and _significant(p_holm)
    return Verdict("steps", LOGRANK, a, b, p, p_holm, sooner if shown else None,
                   f"{numbers} {_tail(LOGRANK, p, p_holm, claim if shown else None)}")


# ---------------------------------------------------------------- aggregate tables


def _arm_name(key: str, value: Any, keys: Sequence[str]) -> str:
    from rnnlab.config.naming import label, show

    name = label(key, keys)
    return show(key, value) if name in ("cell", "model") else f"{name}={show(key, value)}"


def row_name(table, i, keys: Sequence[str] | None = None) -> str:
    """A row of an aggregate table in words: ``gru``, ``gru, T=50``, ``forget_bias=1``."""
    keys = table.attrs["keys"] if keys is None else keys
    return ", ".join(_arm_name(k, table.at[i, k], table.attrs["keys"]) for k in keys) or "all runs"


def _pairs(table) -> list[tuple[int, int]]:
    """(row, its control row) for every row the table tests (see aggregate's ``vs``)."""
    from rnnlab.config.naming import show
    from rnnlab.results.rowkeys import comparable

    comparison = table.attrs.get("comparison")
    if not comparison or "vs" not in table:
        return []
    key = comparison["key"]
    others = [k for k in table.attrs["keys"] if k != key]
    pairs = []
    for i in table.index:
        vs = table.at[i, "vs"]
        if _nan(vs) or show(key, table.at[i, key]) == vs:
            continue
        control = [j for j in table.index if j != i and show(key, table.at[j, key]) == vs
                   and all(comparable(table.at[j, k]) == comparable(table.at[i, k])
                           for k in others)]
        if control:
            pairs.append((i, control[0]))
    return pairs


def table_verdicts(table) -> list[Verdict]:
    """One verdict per (row, test) of an aggregate table: each row against its control row
    (the table's ``vs``) on the headline metric with the table's own Welch p, and on the solved
    counts (when any row solved) and the diverged counts (when any run diverged) with
    Barnard's exact test; Holm over the table's comparisons of each kind. The control is
    named first; a row's runs are its completed and diverged ones (failed runs are counted
    nowhere: they say nothing about the setting)."""
    from rnnlab.results.seedstats import holm, solved_test

    pairs = _pairs(table)
    if not pairs:
        return []
    comparison = table.attrs["comparison"]
    key, metric = comparison["key"], comparison["metric"]
    others = [k for k in table.attrs["keys"] if k != key]
    keys = table.attrs["keys"]

    def prefix(i) -> str:
        return f"{row_name(table, i, others)}: " if others else ""

    def arm(i) -> str:
        return _arm_name(key, table.at[i, key], keys)

    def runs(i) -> int:
        return int(table.at[i, "n"]) + int(table.at[i, "diverged"])

    out: list[tuple[int, Verdict]] = []
    ps = [float(table.at[i, f"{metric} p"]) for i, _ in pairs]
    for order, ((i, j), p, p_holm) in enumerate(zip(pairs, ps, holm(ps))):
        out.append((3 * order, _welch_verdict(table, metric, prefix(i), arm(j), j, arm(i), i,
                                              p, p_holm)))
    for offset, kind, column in ((1, "solved", "solved"), (2, "diverged", "diverged")):
        if column not in table or not (table[column].fillna(0) > 0).any():
            continue
        tests = [solved_test(int(table.at[j, column]), runs(j), int(table.at[i, column]),
                             runs(i)).p for i, j in pairs]
        for order, ((i, j), p, p_holm) in enumerate(zip(pairs, tests, holm(tests))):
            out.append((3 * order + offset, _counts(
                kind, prefix(i), arm(j), int(table.at[j, column]), runs(j), arm(i),
                int(table.at[i, column]), runs(i), p, p_holm)))
    return [v for _, v in sorted(out, key=lambda t: t[0])]


def _welch_verdict(table, metric: str, prefix: str, a: str, j: int, b: str, i: int, p: float,
                   p_holm: float) -> Verdict:
    def side(k: int) -> str:
        mean, std = table.at[k, metric], table.at[k, f"{metric} std"]
        return _num(mean) + ("" if _nan(std) else f" ± {_num(std)}")

    numbers = (f"{prefix}{metric} {a} {side(j)} vs {b} {side(i)} "
               f"(n = {int(table.at[j, 'n'])}, {int(table.at[i, 'n'])})")
    if _nan(p):
        n = min(int(table.at[i, "n"]), int(table.at[j, "n"]))
        why = (f"{n} completed run{'s' if n != 1 else ''} on a side" if n < 2
               else "no spread over seeds on either side")
        return Verdict("metric", WELCH, a, b, p, p_holm, None,
                       f"{numbers}: not tested ({why}).", metric)
    diff = float(table.at[i, metric]) - float(table.at[j, metric])
    lower, higher = (b, a) if diff < 0 else (a, b)
    if _lower_is_better(metric):
        claim, favours = f"{lower} has the lower {metric}", lower
    else:
        claim, favours = f"{higher} has the higher {metric}", higher
    shown = diff != 0 and _significant(p_holm)
    return Verdict("metric", WELCH, a, b, p, p_holm, favours if shown else None,
                   f"{numbers} {_tail(WELCH, p, p_holm, claim if shown else None)}", metric)


# ---------------------------------------------------------------- classical baselines


def baseline_metrics(baselines, table) -> list[str]:
    """The metrics to judge the baselines on: their first metric the table has, and accuracy
    where the task has it."""
    columns = []
    for row in baselines:
        columns += [c for c in row if c != "baseline" and c not in columns]
    present = [c for c in columns if c in table and table[c].notna().any()]
    chosen = present[:1]
    if "test/acc" in present and "test/acc" not in chosen:
        chosen.append("test/acc")
    return chosen


def _one_sample(mean: float, std: float, n: int, value: float):
    """(low, high, p): the row's t interval and the one-sample t-test of its mean = value."""
    from scipy import stats

    if n < 2 or _nan(std) or _nan(mean) or std == 0:
        return math.nan, math.nan, math.nan
    se = std / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean - value) / se, n - 1))
    return mean - half, mean + half, p


def baseline_verdicts(table, baselines: Sequence[dict],
                      metrics: Sequence[str] | None = None) -> list[Verdict]:
    """Each row of an aggregate ``table`` against each classical baseline (rows
    ``{"baseline": name, "<metric>": value}``) on ``metrics`` (default
    :func:`baseline_metrics`): the row's mean with its 95% t interval over seeds, whether the
    interval contains the baseline's value, and the one-sample t-test's p, Holm over every
    (row, baseline, metric) of the table. A baseline is one deterministic number, so there is
    no spread on its side to test."""
    from rnnlab.results.seedstats import holm

    baselines = [b for b in baselines if b]
    metrics = list(metrics) if metrics is not None else baseline_metrics(baselines, table)
    tests = []
    for metric in metrics:
        for i in table.index:
            n = int(table.at[i, "n"])
            mean = float(table.at[i, metric])
            std = table.at[i, f"{metric} std"] if f"{metric} std" in table else math.nan
            for base in baselines:
                value = base.get(metric)
                if _nan(value):
                    continue
                low, high, p = _one_sample(mean, float(std), n, float(value))
                tests.append((metric, i, n, mean, low, high, str(base["baseline"]),
                              float(value), p))
    adjusted = holm([t[-1] for t in tests])
    out = []
    for (metric, i, n, mean, low, high, name, value, p), p_holm in zip(tests, adjusted):
        row = row_name(table, i)
        if _nan(low):
            why = "fewer than 2 completed runs" if n < 2 else "no spread over seeds"
            out.append(Verdict("baseline", ONE_SAMPLE, name, row, p, p_holm, None,
                               f"{row}: {metric} {_num(mean)} (n = {n}) vs {name} "
                               f"{_num(value)}: not tested ({why}).", metric))
            continue
        inside = low <= value <= high
        numbers = (f"{row}: {metric} {_num(mean)}, {_PCT} t interval [{_num(low)}, "
                   f"{_num(high)}] (n = {n}) vs {name} {_num(value)}: the interval "
                   f"{'contains' if inside else 'excludes'} it")
        lower = row if mean < value else name
        higher = name if lower == row else row
        if _lower_is_better(metric):
            claim, favours = f"{lower} has the lower {metric}", lower
        else:
            claim, favours = f"{higher} has the higher {metric}", higher
        shown = not inside and _significant(p_holm)
        tail = _tail(ONE_SAMPLE, p, p_holm, claim if shown else None)
        out.append(Verdict("baseline", ONE_SAMPLE, name, row, p, p_holm,
                           favours if shown else None, f"{numbers} {tail}", metric))
    return out


# ---------------------------------------------------------------- the paragraph


def anchor(name: str) -> str:
    """The id of a generated block's verdict, which prose links as ``(#verdict-NAME)``."""
    return f"verdict-{name}"


def _methods(verdicts: Sequence[Verdict]) -> str:
    words = {"solved": "solved counts", "diverged": "diverged counts",
             "steps": "steps to solve", "metric": "{metric}",
             "baseline": "{metric}, each row's seeds against the baseline's single value"}
    return "; ".join(dict.fromkeys(
        f"{words[v.kind].format(metric=v.metric or 'the headline metric')} by {v.test} test"
        for v in verdicts))


def paragraph(name: str, parts: Sequence[tuple[str, Sequence[Verdict]]]) -> list[str]:
    """Markdown lines of the "Verdict (generated)" paragraph of block ``name``: its anchor,
    the rule, then per part (a heading sentence and its verdicts) one bullet per verdict."""
    lines = [f'<a id="{anchor(name)}"></a>**Verdict (generated)** by '
             "`rnnlab.results.verdicts` from the runs above: a difference is stated only where "
             f"its Holm-adjusted p < {SIGNIFICANT:g} (Holm over the comparisons of each kind "
             "below, raw p beside it); \"no difference shown\" is not a finding that the "
             "two sides are equal."]
    parts = [(head, list(verdicts)) for head, verdicts in parts if verdicts]
    if not parts:
        return ["", lines[0] + " This table makes no comparison (one row, or no control)."]
    for head, verdicts in parts:
        lines += ["", f"{head} ({_methods(verdicts)}):", ""]
        lines += [f"- {v.text}" for v in verdicts]
    return ["", *lines]


def compare_paragraph(name: str, record: dict) -> list[str]:
    """The verdict paragraph of a fair comparison's record (compare.json), for a
    ``<!-- compare:NAME -->`` block: anchored ``verdict-compare-NAME``."""
    from rnnlab.studies.compare_table import rows

    return paragraph(f"compare-{name}", [("Each arm against its condition's best arm",
                                          compare_verdicts(rows(record)))])
