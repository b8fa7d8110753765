"""Runs -> one row per setting: mean, std and n over seeds, the paper beside ours, a verdict.

The same function serves the end-of-sweep summary, ``rnnlab-aggregate`` and the Python API::

    from rnnlab.results import load_runs, aggregate
    runs = load_runs(["logs/multiruns/forget_bias_jozefowicz2015"])
    table = aggregate(runs)          # rows = the settings that differ, except seed
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from rnnlab.config import references as refs_
from rnnlab.config.naming import show
from rnnlab.results import curves, stats
from rnnlab.results.rowkeys import comparable, config_columns, row_ids, row_keys
from rnnlab.results.runs import is_missing
from rnnlab.run.verdict import (
    BASELINE_METRIC,
    SOLVED_BELOW,
    VERDICT_METRIC,
    present_metrics,
    verdict,
)


def aggregate(frame: pd.DataFrame, metrics: Sequence[str] | None = None,
              keys: Sequence[str] | None = None, compare: str | None = None,
              against: Any = None) -> pd.DataFrame:
    """One row per distinct setting of ``keys`` (default: :func:`row_keys`), numbers unformatted.

    Columns: the row keys (dotted names), ``n`` (completed runs, the ones averaged),
    ``diverged``, ``failed``, ``params`` (median parameter count), per metric ``<m>`` (mean over
    completed runs), ``<m> std`` (sample std, NaN for n < 2), ``<m> published`` (the preset's
    reference value for this row, NaN if none); with a task baseline also ``baseline`` (mean
    ``baseline/loss``), ``verdict`` (of the mean ``test/loss`` against it) and ``solved``
    (completed runs that solved it, each against its own baseline), ``solved_step`` (median,
    over the seeds whose validation loss went below that threshold, of the first step where it
    did; from csv/metrics.csv) and ``solved_step_of`` ((seeds that got there, seeds with a
    validation curve)). ``seeds`` lists the seeds.

    For the headline metric (the first): ``<m> ci low`` / ``<m> ci high``, the 95% interval of
    the mean over seeds, and ``<m> ci method``, which one (``stats.mean_interval``: "bootstrap",
    the percentile bootstrap, for a metric that cannot be negative or lies in [0, 1], so its
    bounds stay there; "t", Student's, otherwise), and the comparison the
    preset exists to make: ``vs`` (the control row's value of ``compare``), ``<m> diff`` (mean
    minus the control's) and ``<m> p`` (Welch's two-sided p over seeds). ``compare`` is the
    setting compared (default: the runs' ``compare.key``, else ``model.cell`` when it differs,
    else the first row key); ``against`` its control value (default: the runs'
    ``compare.against``, else the best row among those that differ from this one only in
    ``compare``).
    """
    if frame.empty:
        raise ValueError("no runs to aggregate")
    keys = list(row_keys(frame) if keys is None else keys)
    missing = [k for k in keys if k not in frame]
    if missing:
        raise KeyError(f"no run has the setting {', '.join(missing)}")
    references = refs_.collect(frame["reference"])
    if metrics is None:  # the test metrics, then any other metric a reference speaks of
        metrics = present_metrics(frame)
        metrics += [r.metric for r in references if r.metric in frame and r.metric not in metrics]
    metrics = list(dict.fromkeys(metrics))
    has_baseline = BASELINE_METRIC in frame and frame[BASELINE_METRIC].notna().any()
    setting_columns = config_columns(frame)

    rows, settings_of_rows, values_of_rows, references_of_rows = [], [], [], []
    for _, group in frame.groupby(row_ids(frame, keys), sort=False):
        first = group.iloc[0]
        done = group[group["status"] == "completed"]
        row: dict[str, Any] = {k: first[k] for k in keys}
        row["n"] = len(done)
        row["diverged"] = int((group["status"] == "diverged").sum())
        row["failed"] = len(group) - len(done) - row["diverged"]
        params = pd.to_numeric(group["num_params"], errors="coerce").dropna()
        row["params"] = int(params.median()) if not params.empty else None
        row["seeds"] = sorted(int(s) for s in done["seed"].dropna())
        settings = {c: first[c] for c in setting_columns}
        settings_of_rows.append(settings)
        # the references of this row's own runs' presets, those whose `where` fits the row
        own = [i for i in refs_.carried_by(references, group["reference"])
               if references[i].matches(settings)]
        references_of_rows.append(own)
        values_of_rows.append([])
        for i, metric in enumerate(metrics):
            values = pd.to_numeric(done.get(metric, pd.Series(dtype=float)), errors="coerce")
            values = values.dropna()
            if i == 0:
                values_of_rows[-1] = values.tolist()
                (row[f"{metric} ci low"], row[f"{metric} ci high"],
                 row[f"{metric} ci method"]) = stats.mean_interval(values, metric)
            row[metric] = values.mean() if not values.empty else math.nan
            row[f"{metric} std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            ref = refs_.best_match([references[i] for i in own], settings, metric)
            row[f"{metric} published"] = ref.value if ref else math.nan
        if has_baseline:
            base = pd.to_numeric(group[BASELINE_METRIC], errors="coerce").dropna()
            row["baseline"] = base.mean() if not base.empty else math.nan
            loss = row.get(VERDICT_METRIC)
            if loss is None and VERDICT_METRIC in done:
                loss = pd.to_numeric(done[VERDICT_METRIC], errors="coerce").mean()
            row["verdict"] = verdict(loss, row["baseline"])
            per_run = [verdict(r.get(VERDICT_METRIC), r.get(BASELINE_METRIC))
                       for _, r in done.iterrows()]
            row["solved"] = sum(v == "solved" for v in per_run)
            # When the solved seeds got there: the first validation below the threshold.
            steps = [curves.solved_step(r["run_dir"], r.get(BASELINE_METRIC), SOLVED_BELOW)
                     for _, r in done.iterrows()]
            reached = [s for s in steps if s is not None and not math.isnan(s)]
            row["solved_step"] = float(pd.Series(reached).median()) if reached else math.nan
            row["solved_step_of"] = (len(reached), sum(s is not None for s in steps))
        rows.append(row)
    table = pd.DataFrame(rows)
    table["_settings"] = settings_of_rows
    table["_values"] = values_of_rows
    table["_references"] = references_of_rows
    if keys:
        # Numbers ascending, text in the order the sweep ran it (rnn, gru, lstm), missing first.
        order = {k: list(dict.fromkeys(frame[k].map(comparable))) for k in keys}
        table = table.sort_values(
            keys, key=lambda col: col.map(lambda v: _sort_key(v, order[col.name])),
            kind="stable").reset_index(drop=True)
    # Each row's full settings (for matching references), kept out of the printed columns.
    table.attrs["settings"] = table.pop("_settings").tolist()
    # Per row, the indices into attrs["references"] that speak of it (its footnote marks).
    table.attrs["row_references"] = table.pop("_references").tolist()
    values = table.pop("_values").tolist()
    table.attrs["keys"] = keys
    table.attrs["metrics"] = metrics
    table.attrs["references"] = references
    table.attrs["comparison"] = None
    if metrics:
        _compare_rows(table, values, frame, metrics[0], compare, against)
    return table


def _first_setting(frame: pd.DataFrame, column: str) -> Any:
    if column not in frame:
        return None
    values = [v for v in frame[column] if not is_missing(v)]
    return values[0] if values else None


def _compare_rows(table: pd.DataFrame, values: list[list[float]], frame: pd.DataFrame,
                  metric: str, compare: str | None, against: Any) -> None:
    """Welch's test of each row against its control row (see :func:`aggregate`)."""
    from rnnlab.config.schemas import monitor_mode

    keys = table.attrs["keys"]
    compare = compare or _first_setting(frame, "compare.key")
    if against is None:
        against = _first_setting(frame, "compare.against")
    if compare is None:
        compare = "model.cell" if "model.cell" in keys else (keys[0] if keys else None)
    if compare is None or len(table) < 2:
        return
    if compare not in keys:
        raise KeyError(f"compare={compare}: not a setting that differs between these runs "
                       f"(those are: {', '.join(keys) or 'none'})")
    others = [k for k in keys if k != compare]
    groups = row_ids(table, others)
    lower_is_better = monitor_mode(metric) == "min"
    vs, diff, p = [None] * len(table), [math.nan] * len(table), [math.nan] * len(table)
    for members in table.groupby(groups, sort=False).groups.values():
        members = list(members)
        if against is not None:
            control = [i for i in members
                       if comparable(table.at[i, compare]) == comparable(against)]
            if not control:
                continue
            control = control[0]
        else:
            means = [(table.at[i, metric], i) for i in members
                     if not math.isnan(table.at[i, metric])]
            if not means:
                continue
            control = (min(means) if lower_is_better else max(means))[1]
        for i in members:
            vs[i] = show(compare, table.at[control, compare])
            if i == control:
                continue
            test = stats.welch(values[i], values[control])
            diff[i], p[i] = test.diff, test.p
    table["vs"] = vs
    table[f"{metric} diff"] = diff
    table[f"{metric} p"] = p
    table.attrs["comparison"] = {"key": compare, "against": against, "metric": metric}


def _sort_key(value: Any, seen: list) -> tuple:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (0, 0.0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value))
    return (2, float(seen.index(comparable(value))))
