"""Published numbers and baselines: one ``reference`` format for every preset.

A preset's ``reference`` is a list of entries::

    reference:
      - metric: test/loss            # the metric it is compared with
        where: {model.cell: lstm, data.seq_len: 1000}   # the row it belongs to ({} = every row)
        value: 0.0204                # a number, shown in the "published" column, and/or
        claim: "LSTM stays at the memoryless baseline"  # what the paper says, as a footnote
        source: "Bai, Kolter & Koltun 2018, arXiv:1803.01271, Table 1"
        role: published              # or: baseline (a published baseline value)

Baselines computed by the task itself (``baseline/loss``: the memoryless copy loss, 1/6 for
adding) need no entry: every run logs them and the tables show them beside ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rnnlab.config.errors import check_choice

ROLES = ("published", "baseline")
_FIELDS = {"metric", "where", "value", "claim", "source", "role", "note"}


class ReferenceError(ValueError):
    """A malformed ``reference`` entry; the message is one line naming the entry and the field."""


@dataclass(frozen=True)
class Reference:
    metric: str
    source: str
    where: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    claim: str | None = None
    role: str = "published"
    note: str | None = None

    def matches(self, settings: dict[str, Any]) -> bool:
        """Whether a row with these (flat, dotted) settings is the setting this entry reports."""
        return all(_same(settings.get(key), want) for key, want in self.where.items())

    def where_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.where.items()) or "every row"


def _same(have: Any, want: Any) -> bool:
    if hasattr(have, "item") and getattr(have, "ndim", None) == 0:  # numpy's bool_, int64: the
        have = have.item()  # Python value, so that np.False_ is the setting `false`
    if want is None:
        return have is None or (isinstance(have, float) and math.isnan(have))
    if isinstance(want, bool) or isinstance(have, bool):
        return have is want
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return math.isclose(float(have), float(want), rel_tol=1e-9, abs_tol=1e-12)
    return str(have) == str(want)


def parse_references(entries: Any, where: str = "reference") -> list[Reference]:
    """Validate a ``reference`` list (from a preset or a results.json) into Reference entries."""
    if entries is None:
        return []
    if not isinstance(entries, (list, tuple)):
        raise ReferenceError(f"{where} must be a list of entries with metric, source and value "
                             f"or claim; got {type(entries).__name__}")
    parsed = []
    for i, entry in enumerate(entries):
        name = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ReferenceError(f"{name} must be a mapping, got {type(entry).__name__}")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ReferenceError(f"{name} has unknown field(s) {', '.join(sorted(unknown))}; "
                                 f"allowed: {', '.join(sorted(_FIELDS))}")
        for required in ("metric", "source"):
            if not entry.get(required):
                raise ReferenceError(f"{name} needs '{required}'")
        if entry.get("value") is None and not entry.get("claim"):
            raise ReferenceError(f"{name} needs a 'value' (number) or a 'claim' (text)")
        value = entry.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ReferenceError(f"{name}.value must be a number, got {value!r}")
        role = entry.get("role") or "published"
        check_choice(f"{name}.role", role, ROLES, error=ReferenceError)
        where_ = entry.get("where") or {}
        if not isinstance(where_, dict):
            raise ReferenceError(f"{name}.where must map config keys to values, e.g. "
                                 "{model.cell: lstm}")
        parsed.append(Reference(metric=str(entry["metric"]), source=str(entry["source"]),
                                where=dict(where_), role=role, note=entry.get("note"),
                                value=None if value is None else float(value),
                                claim=entry.get("claim")))
    return parsed


def collect(reference_lists) -> list[Reference]:
    """The distinct entries of many runs' ``reference`` lists, in first-seen order."""
    seen: dict[tuple, Reference] = {}
    for entries in reference_lists:
        if isinstance(entries, list):
            for ref in parse_references(entries):
                seen.setdefault(_identity(ref), ref)
    return list(seen.values())


def carried_by(refs: list[Reference], reference_lists) -> list[int]:
    """Indices into ``refs`` of the entries that these runs' ``reference`` lists hold: a
    reference speaks of the runs of its own preset only (a table of several presets' runs never
    puts quickstart's "every row" claim on a copy-task row of another preset)."""
    carried = {_identity(ref) for ref in collect(reference_lists)}
    return [i for i, ref in enumerate(refs) if _identity(ref) in carried]


def _identity(ref: Reference) -> tuple:
    return (ref.metric, tuple(sorted((k, str(v)) for k, v in ref.where.items())), ref.value,
            ref.claim, ref.source, ref.role)


def best_match(refs: list[Reference], settings: dict[str, Any], metric: str,
               role: str = "published") -> Reference | None:
    """The most specific numeric entry for this metric and row (most ``where`` keys wins)."""
    candidates = [r for r in refs if r.metric == metric and r.role == role
                  and r.value is not None and r.matches(settings)]
    return max(candidates, key=lambda r: len(r.where), default=None)
