"""An aggregate (rnnlab.results.aggregate) as text: markdown, LaTeX, CSV or a rich console table.

Every cell says what its header says: "mean ± std" over the ``n`` completed runs of its row,
"published" is the preset's reference for exactly that row, diverged and failed runs are counted
in their own columns and never averaged in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from rnnlab.config.errors import check_choice
from rnnlab.config.naming import label, show
from rnnlab.results.stats import CONFIDENCE, INTERVAL_NOTES, SIGNIFICANT
from rnnlab.run.verdict import VERDICT_METRIC

FORMATS = ("md", "csv", "latex")


def _digits(value: float) -> int:
    return 3 if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5) else 4


def format_number(value: Any, digits: int | None = None) -> str:
    """A number as every table shows it: 4 significant digits (3 in scientific notation below
    1e-3 or from 1e5 on), empty for None or NaN. With ``digits``, exactly that many
    significant digits, trailing zeros kept (0.562 -> "0.5620")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    value = float(value)
    if digits is not None:
        return f"{value:#.{digits}g}"
    return f"{value:.{_digits(value)}g}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _mean_std(mean: Any, std: Any, pm: str) -> str:
    """"mean ± std" with the same significant digits on both sides (4 unless both would show 3),
    trailing zeros kept: "0.5620 ± 0.007641", never "0.562 ± 0.007641"."""
    if _missing(mean):
        return "\u2014"
    if _missing(std):
        return format_number(mean)
    digits = max(_digits(float(mean)), _digits(float(std)))
    return f"{format_number(mean, digits)}{pm}{format_number(std, digits)}"


def _percent(level: float) -> str:
    return f"{100 * level:g}%"


def _p_value(p: float, vs: Any, own: Any, key: str, control: str) -> str:
    """"0.012 (vs gru)", "best"/"control" for the row compared against, a dash if untestable."""
    if vs is None:
        return "\u2014"
    if show(key, own) == vs and math.isnan(p):
        return control
    if math.isnan(p):
        return f"\u2014 (vs {vs})"
    text = f"{p:.2g}" if p >= 1e-4 else "<1e-4"
    return f"{text}{'*' if p < SIGNIFICANT else ''} (vs {vs})"


def display_frame(table: pd.DataFrame, pm: str = " ± ") -> tuple[pd.DataFrame, list[str]]:
    """The table as strings, one column per header a reader sees, plus its footnotes."""
    keys, metrics = table.attrs["keys"], table.attrs["metrics"]
    refs = table.attrs.get("references", [])
    out = pd.DataFrame(index=table.index)
    for key in keys:
        out[label(key, keys)] = table[key].map(lambda v, k=key: show(k, v))
    if table["params"].notna().any():
        out["params"] = table["params"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
    out["n"] = table["n"].astype(int).astype(str)
    out["diverged"] = table["diverged"].astype(int).astype(str)
    out["failed"] = table["failed"].astype(int).astype(str)
    for i, metric in enumerate(metrics):
        out[f"{metric} (mean{pm.strip()}std)"] = [
            _mean_std(m, s, pm) for m, s in zip(table[metric], table[f"{metric} std"])]
        if i == 0 and f"{metric} ci low" in table:
            out[f"{metric} {_percent(CONFIDENCE)} CI ({interval_method(table)})"] = [
                f"[{format_number(lo)}, {format_number(hi)}]" if not math.isnan(lo) else "\u2014"
                for lo, hi in zip(table[f"{metric} ci low"], table[f"{metric} ci high"])]
        if table[f"{metric} published"].notna().any():
            out[f"{metric} published"] = table[f"{metric} published"].map(format_number)
    comparison = table.attrs.get("comparison")
    if comparison:
        metric, key = comparison["metric"], comparison["key"]
        against = ("best " + label(key, keys) if comparison["against"] is None
                   else f"{label(key, keys)}={show(key, comparison['against'])}")
        out[f"p vs {against} (Welch, {metric})"] = [
            _p_value(p, vs, table.at[i, key], key,
                     "best" if comparison["against"] is None else "control")
            for i, p, vs
            in zip(table.index, table[f"{metric} p"], table["vs"])]
    if refs:  # which footnotes speak of each row
        out["paper"] = paper_marks(table)
    if "baseline" in table:
        out["baseline"] = table["baseline"].map(format_number)
        out[f"verdict ({VERDICT_METRIC})"] = table["verdict"].fillna("\u2014")
        out["solved"] = [f"{s}/{n}" for s, n in zip(table["solved"], table["n"])]
        # Only where some seed got there: on a real dataset "10% of the prior's loss" is no
        # milestone, and a column of "never" would say nothing.
        if "solved_step" in table and any(of[0] for of in table["solved_step_of"]):
            out["steps to solve (median, val)"] = [
                "\u2014" if not of[1] else
                (f"{int(step):,} ({of[0]}/{of[1]})" if of[0] else f"never (0/{of[1]})")
                for step, of in zip(table["solved_step"], table["solved_step_of"])]
    notes = footnotes(refs)
    return out, notes


def interval_method(table: pd.DataFrame) -> str | None:
    """How the headline metric's interval was computed ("bootstrap" or "t", see
    :func:`rnnlab.results.stats.mean_interval`); None when the table has no interval."""
    metrics = table.attrs.get("metrics") or []
    column = f"{metrics[0]} ci method" if metrics else None
    if column is None or column not in table:
        return None
    methods = [m for m in table[column] if isinstance(m, str)]
    return methods[0] if methods else "t"


def interval_note(table: pd.DataFrame) -> str | None:
    """The footnote that says what the interval column's numbers are."""
    method = interval_method(table)
    return INTERVAL_NOTES[method] if method else None


def paper_marks(table: pd.DataFrame) -> list[str]:
    """Per row, the marks ("[1] [3]") of the footnotes that speak of it: references of its own
    runs' preset whose ``where`` fits it."""
    rows = table.attrs.get("row_references", [[] for _ in range(len(table))])
    return [" ".join(f"[{i + 1}]" for i in own) for own in rows]


def footnotes(refs) -> list[str]:
    """What the papers say and where the numbers come from, one line per reference entry."""
    lines = []
    for ref in refs:
        text = f"{ref.where_text()}: "
        if ref.value is not None:
            text += f"{ref.role} {ref.metric} = {format_number(ref.value)}"
            text += f"; {ref.claim}" if ref.claim else ""
        else:
            text += f"{ref.claim} ({ref.metric})"
        text += f" \u2014 {ref.source}"
        if ref.note:
            text += f". Note: {ref.note}"
        lines.append(text)
    return lines


def pivot(table: pd.DataFrame, by: Sequence[str], metric: str, pm: str = " ± ",
          by_name: str = "by") -> pd.DataFrame:
    """Rows = the ``by`` keys, columns = the other row keys' values; cells "mean ± std (n)".
    ``by_name``: what the caller calls the option in errors (the CLI: ``--by``)."""
    keys = table.attrs["keys"]
    unknown = [k for k in by if k not in keys]
    if unknown:
        given = (f"{by_name} {', '.join(unknown)}" if by_name.startswith("-")
                 else f"{by_name}={list(unknown)}")
        raise KeyError(f"{given}: not a setting that differs between these runs "
                       f"(those are: {', '.join(keys) or 'none'})")
    across = [k for k in keys if k not in by]
    cells = pd.DataFrame({label(k, keys): table[k].map(lambda v, k=k: show(k, v)) for k in keys})

    def cell(row: pd.Series) -> str:
        text = f"{_mean_std(row[metric], row[f'{metric} std'], pm)} (n={int(row['n'])}"
        for status in ("diverged", "failed"):
            if row[status]:
                text += f", {int(row[status])} {status}"
        return text + ")"

    cells["value"] = table.apply(cell, axis=1)
    if table.attrs.get("references"):  # each cell says which footnotes speak of its row
        cells["value"] = [f"{value} {marks}" if marks else value
                          for value, marks in zip(cells["value"], paper_marks(table))]
    rows = [label(k, keys) for k in by]
    columns = [label(k, keys) for k in across]
    if not columns:
        return cells[rows + ["value"]].rename(columns={"value": metric})
    wide = cells.pivot_table(index=rows or None, columns=columns, values="value",
                             aggfunc="first", sort=False).fillna("\u2014 (no runs)")
    wide.columns = [f"{metric} @ " + ", ".join(
        f"{c}={v}" for c, v in zip(columns, col if isinstance(col, tuple) else (col,)))
        for col in wide.columns]
    return wide.reset_index() if rows else wide


def render(table: pd.DataFrame, fmt: str = "md", by: Sequence[str] | None = None,
           metric: str | None = None, by_name: str = "by") -> str:
    """The aggregate as markdown, LaTeX or CSV text (CSV keeps the raw numbers)."""
    check_choice("format", fmt, FORMATS)
    if fmt == "csv" and by:
        return pivot(table, by, metric or (table.attrs["metrics"] or [None])[0], " ± ",
                     by_name).to_csv(index=False)
    if fmt == "csv":
        raw = table.copy()
        raw["seeds"] = raw["seeds"].map(lambda s: " ".join(map(str, s)))
        return raw.to_csv(index=False)
    pm = r" $\pm$ " if fmt == "latex" else " ± "
    if by:
        metric = metric or (table.attrs["metrics"] or [None])[0]
        if metric is None:
            raise ValueError("no metric to show: the runs have none of the test metrics")
        shown = pivot(table, by, metric, pm, by_name)
        notes = footnotes(table.attrs.get("references", []))
        method = None
    else:
        shown, notes = display_frame(table, pm)
        method = interval_note(table)
    if fmt == "latex":
        # Numbers right-aligned, text left; the rules are booktabs' (\toprule, \midrule).
        align = "".join("r" if _numeric_column(shown[c]) else "l" for c in shown.columns)
        escaped = shown.map(_latex_escape).rename(columns=_latex_escape)
        text = "% requires \\usepackage{booktabs}\n" + escaped.to_latex(index=False,
                                                                       column_format=align)
        if method:
            text += f"% {_latex_escape(method)}\n"
        return text + "".join(f"% [{i}] {_latex_escape(n)}\n" for i, n in enumerate(notes, 1))
    text = shown.to_markdown(index=False) + "\n"
    if method:
        text += f"\n{method}\n"
    if notes:
        text += "\n" + "".join(f"[{i}] {n}  \n" for i, n in enumerate(notes, 1))
    return text


_NUMBER = re.compile(r"^[\[(<]?[-+]?(\d|\.\d)")


def _numeric_column(cells: pd.Series) -> bool:
    """Whether a column of shown cells holds numbers ("0.1 ± 0.01", "[0.1, 0.2]", "3/3",
    "0.012* (vs gru)", "17,473"): at least as many cells start with a number as with a word
    ("best", "solved"); dashes and blanks do not count."""
    numbers = words = 0
    for cell in map(str, cells):
        cell = cell.strip()
        if not cell or cell.startswith("\u2014"):
            continue
        if _NUMBER.match(cell):
            numbers += 1
        else:
            words += 1
    return numbers > 0 and numbers >= words


def _latex_escape(value: Any) -> str:
    text = str(value)
    if r"$\pm$" in text:  # our own ± marker: escape what is around it, keep it
        head, _, tail = text.partition(r"$\pm$")
        return f"{_latex_escape(head.strip())} $\\pm$ {_latex_escape(tail.strip())}"
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                       ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"),
                       ("\u2014", "---"), ("±", r"$\pm$")):
        text = text.replace(char, repl)
    return text


def fit_columns(shown: pd.DataFrame, keys: set[str], width: int) -> list[str]:
    """The columns of ``shown`` that fit ``width`` characters, in the table's order: the row
    keys, the headline metric and its interval, solved and the verdict first, then the rest
    while they fit (summary.md keeps every column)."""
    first = [c for c in shown.columns if c in keys]
    metrics = [c for c in shown.columns if "(mean" in c]
    wanted = first + metrics[:1] + [c for c in shown.columns if " CI " in c]
    wanted += [c for c in shown.columns if c == "solved" or c.startswith("verdict")]
    # then the comparison's p, the run counts, and the rest in the table's order
    rest = sorted((c for c in shown.columns if c not in wanted),
                  key=lambda c: (not c.startswith("p vs"), c not in ("n", "diverged")))

    def cost(column: str) -> int:  # rich's cell padding and border: 3 characters a column
        cells = [len(str(v)) for v in shown[column]]
        return max([len(column), *cells]) + 3

    used = sum(cost(c) for c in wanted) + 1
    kept = list(wanted)
    for column in rest:
        if used + cost(column) <= width:
            kept.append(column)
            used += cost(column)
    return [c for c in shown.columns if c in kept]


def print_rich(table: pd.DataFrame, title: str, width: int | None = None, file=None) -> None:
    """The table on the console (what a sweep prints at its end), in the columns that fit the
    terminal (``width``, default the terminal's or $COLUMNS, else 100)."""
    import shutil

    from rich.console import Console
    from rich.table import Table

    width = width or shutil.get_terminal_size((100, 24)).columns
    shown, notes = display_frame(table)
    columns = fit_columns(shown, _key_labels(table), width)
    out = Table(title=title)
    for column in columns:
        out.add_column(column, justify="left" if column in _key_labels(table) else "right")
    for row in shown[columns].itertuples(index=False):
        out.add_row(*map(str, row))
    console = Console(width=width, file=file)
    console.print(out)
    left = len(shown.columns) - len(columns)
    if left:
        console.print(f"({left} more column{'s' if left > 1 else ''} in summary.md: "
                      f"{', '.join(c for c in shown.columns if c not in columns)})",
                      highlight=False, markup=False)
    method = interval_note(table)
    if method and any(" CI " in c for c in columns):
        console.print(method, highlight=False, markup=False)
    for i, note in enumerate(notes, 1):
        console.print(f"[{i}] {note}", highlight=False, markup=False)


def _key_labels(table: pd.DataFrame) -> set[str]:
    keys = table.attrs["keys"]
    return {label(k, keys) for k in keys}
