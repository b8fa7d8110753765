"""The cells' test matrix, read from the registry (``rnnlab.config.cellspecs.SPECS``): every cell in
each of its forms, so that a cell added in its two files is gradchecked, its step Jacobians checked,
run under autocast and, where torch.nn has it, compared with torch.nn, without editing a test.

A :class:`Case` is one cell with some of its settings: a form (one value of each of its
``variants``, e.g. ``variant=mgu, reset=before``) or a feature on its own form (``layer_norm``,
``zoneout``). Every function takes the registry as an argument (rnnlab's by default), so
tests/test_cell_matrix.py can show the cases a throwaway entry brings with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from rnnlab.config.cellspecs import SPECS, CellSpec

# The cells tests/test_cells_reference.py writes out as plain autograd equations.
REFERENCE_CELLS = ("rnn", "gru", "lstm")


@dataclass(frozen=True)
class Case:
    """One cell (its registry entry) with ``options``: its constructor settings."""

    spec: CellSpec
    options: dict = field(default_factory=dict)

    @property
    def cell(self) -> str:
        return self.spec.name

    @property
    def cls(self) -> type:
        """rnnlab's own implementation (the hand-written backward)."""
        return self.spec.implementation("scratch")

    @property
    def family(self) -> str:
        """The module that holds its equations (``rnnlab.cells.minrnn`` for minGRU and minLSTM)."""
        return self.spec.scratch.partition(":")[0]

    @property
    def steps_by_recurrence(self) -> bool:
        """Its layers run as a step recurrence (rnnlab.cells.recurrence), not a scan."""
        return hasattr(self.cls, "recurrence")

    @property
    def id(self) -> str:
        words = [v if isinstance(v, str) else k if v is True else f"{k}={v}"
                 for k, v in self.options.items()]
        return "-".join([self.cell, *words])

    def make(self, *args, **kwargs):
        """The scratch module with this case's settings (``kwargs``: sizes, compile, dtype...)."""
        return self.cls(*args, **self.options, **kwargs)

    def torch_nn(self, *args, **kwargs):
        """torch.nn's kernel for this case (the registry's fused class), with the settings it
        takes: those it offers a choice of (``nonlinearity``), not the scratch-only ones."""
        chosen = {k: v for k, v in self.options.items()
                  if len([x for x in self.spec.fused_only.get(k, ()) if x is not None]) > 1}
        return self.spec.implementation("fused")(*args, **chosen, **kwargs)


def forms(specs: Mapping[str, CellSpec] = SPECS) -> list[Case]:
    """Every cell in each of its forms (every combination of its variants' values)."""
    return [Case(spec, form) for spec in specs.values() for form in spec.forms()]


def own_forms(specs: Mapping[str, CellSpec] = SPECS) -> list[Case]:
    """Every cell in its own form (the first value of each variant)."""
    return [Case(spec, spec.forms()[0]) for spec in specs.values()]


def features(specs: Mapping[str, CellSpec] = SPECS) -> list[Case]:
    """Each feature of each cell on its own form (its constructor's defaults)."""
    return [Case(spec, {name: value})
            for spec in specs.values() for name, value in spec.features.items()]


def torch_nn_forms(specs: Mapping[str, CellSpec] = SPECS) -> list[Case]:
    """The forms torch.nn's kernel computes (the cells with a fused class, the values their
    ``fused_only`` allows)."""
    return [case for case in forms(specs) if case.spec.fused is not None
            and all(v in case.spec.fused_only.get(k, (v,)) for k, v in case.options.items())]


def one_per_family(cases: list[Case]) -> list[Case]:
    """The first case of each family (each module of equations): where one case stands for
    the machinery a family shares (compiled graphs, masks on variable lengths)."""
    first: dict[str, Case] = {}
    for case in cases:
        first.setdefault(case.family, case)
    return list(first.values())


def with_reference(cases: list[Case]) -> list[Case]:
    """The cases tests/test_cells_reference.py has plain equations for."""
    return [case for case in cases if case.cell in REFERENCE_CELLS]


def params(cases: list[Case], *marks) -> list:
    return [pytest.param(case, id=case.id, marks=marks) for case in cases]
