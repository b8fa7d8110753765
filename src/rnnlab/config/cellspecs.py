"""The cells rnnlab knows: one entry each, the single place the rest of the program reads.

A :class:`CellSpec` holds a cell's config schema (every setting it has, with its default: what
Hydra checks a command line against), the classes that implement it (rnnlab's own, with the
hand-written backward, and torch.nn's kernel where one exists, named so that nothing here
imports torch), which of its settings torch.nn's kernel can honour, which ``model.init``
schemes it takes, and a one-line summary (``rnnlab-train --help``). rnnlab.config.schemas stores
each schema as the ``model`` group's option of that name (``model=gru``; there is no conf/model
YAML), rnnlab.model.models builds from the classes and checks options against the schema.

Each entry also names the cell's variants (the settings that pick a form of it, with their
values) and its features (settings that add to any form, such as layer norm): the cell tests
build their matrix from them (tests/cell_matrix.py: gradcheck, Jacobians, autocast, parity with
torch.nn), run labels name a form by them (rnnlab-plot-gradflow), and rnnlab.cells.init asks
:func:`spec_of` which cell a module is.

Adding a cell: its module in ``rnnlab/cells/``, its schema and entry here; two files.
"""

# ruff: noqa: UP045  (Optional[...]: the spelling OmegaConf structured configs have always read)
from __future__ import annotations

import dataclasses
import importlib
import itertools
from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from rnnlab.config.errors import ConfigError, check_choice


# ---------------------------------------------------------------------------------- schemas
# One schema per cell, so a setting that cannot apply to a cell is not a key of its config and
# Hydra refuses it (`model=rnn model.forget_bias=1`). Every default lives here.
@dataclass
class ModelConfig:
    """What every cell has."""

    cell: str = MISSING
    impl: str = "scratch"  # scratch (ours, records dL/dh_t) | fused (torch.nn: rnn, gru, lstm)
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0  # between layers (num_layers >= 2)
    # Solve hidden_size so the whole model has at most this many parameters (Chung 2014 style).
    param_budget: Optional[int] = None
    encoder: str = "auto"  # auto | onehot | embedding | linear | identity
    embedding_dim: int = 128
    # Record the per-step norm of dL/dh_t in the scratch cells' backward (gradient flow).
    record_grad_norms: bool = True


@dataclass
class ClassicModelConfig(ModelConfig):
    """The cells with a recurrent weight matrix W_hh."""

    init: str = "default"  # default | orthogonal | identity (recurrent weights) | chrono (gates)


@dataclass
class RNNModelConfig(ClassicModelConfig):
    cell: str = "rnn"
    nonlinearity: str = "tanh"  # tanh | relu


@dataclass
class GatedModelConfig(ClassicModelConfig):
    variant: Optional[str] = None  # null: the cell's own form (gru: gru, lstm: torch)
    layer_norm: bool = False  # layer-normalised projections (Ba et al. 2016, haste's form)
    zoneout: float = 0.0  # probability a unit keeps its previous value (Krueger et al. 2017)
    # T_max of init=chrono (Tallec & Ollivier 2018): the longest dependency to expect, e.g.
    # ${data.seq_len}; read only with model.init=chrono, which needs it.
    chrono_tmax: Optional[float] = None


@dataclass
class GRUModelConfig(GatedModelConfig):
    cell: str = "gru"
    # after (torch.nn/cuDNN) | before (Cho et al. 2014 v3); null: the variant's own form
    # (after for gru and no_reset, before for mgu). variant: gru | no_reset | mgu
    reset: Optional[str] = None


@dataclass
class LSTMModelConfig(GatedModelConfig):
    cell: str = "lstm"  # variant: torch | vanilla | nig | nfg | nog | niaf | noaf | np | cifg | fgr
    forget_bias: Optional[float] = None  # the forget gate's initial total bias (Jozefowicz 2015)


@dataclass
class MinGRUModelConfig(ModelConfig):
    cell: str = "mingru"
    mode: str = "parallel"  # parallel | log | sequential: how the scan is computed (same numbers)
    init: str = ClassicModelConfig.init  # default | chrono (the update gate's bias; no W_hh)
    chrono_tmax: Optional[float] = GatedModelConfig.chrono_tmax  # as the gated cells'


@dataclass
class MinLSTMModelConfig(MinGRUModelConfig):
    cell: str = "minlstm"


@dataclass
class IndRNNModelConfig(ModelConfig):
    cell: str = "indrnn"
    # bound on the recurrent weights |u| (Li et al. 2018); null: 2^(1/T), T the batch's length
    recurrent_max: Optional[float] = None





# ---------------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class Choice:
    """A setting that picks a form of a cell (its equations, or how they are computed): its
    values, the cell's own form first (what the setting's default, or null, gives), and how a
    run's label names another value: by itself (``relu``, ``mgu``: ``by_name``) or as
    ``setting=value`` (``reset=before``)."""

    values: tuple[str, ...]
    by_name: bool = False

    def label(self, setting: str, value) -> str | None:
        """The words a run's label gives ``value`` (None: the own form, which goes unsaid)."""
        if value is None or value == self.values[0]:
            return None
        return str(value) if self.by_name else f"{setting}={value}"


@dataclass(frozen=True)
class CellSpec:
    name: str
    schema: type
    summary: str  # one line for rnnlab-train --help
    scratch: str  # "module:Class" of rnnlab's own implementation
    fused: Optional[str] = None  # "module:Class" of the torch.nn kernel behind the same API
    # setting -> the values of it torch.nn's kernel computes (any other needs impl=scratch)
    fused_only: dict[str, tuple] = field(default_factory=dict)
    # the model.init schemes (rnnlab.cells.init) it takes: orthogonal and identity rewrite W_hh,
    # chrono the keep gate's bias
    inits: tuple[str, ...] = ("default", "orthogonal", "identity", "chrono")
    # the settings that pick a form of the cell, each a Choice of values (own form first): the
    # cell tests cover every combination, and run labels name a form by them
    variants: dict[str, Choice] = field(default_factory=dict)
    # settings that add to any form (setting -> a value that turns it on): the cell tests try
    # each with the cell's forms
    features: dict[str, object] = field(default_factory=dict)

    def forms(self) -> list[dict[str, str]]:
        """Every form of the cell, as its settings: one per combination of its variants' values,
        the own form first (``[{}]`` for a cell with one form)."""
        settings = list(self.variants)
        return [dict(zip(settings, values))
                for values in itertools.product(*(self.variants[s].values for s in settings))]

    @property
    def options(self) -> tuple[str, ...]:
        """The cell's own settings, which its class takes (the rest, every cell's, are the
        model's: :class:`ModelConfig`, ``init``, ``forget_bias``, ``chrono_tmax``)."""
        return tuple(f.name for f in dataclasses.fields(self.schema) if f.name not in MODEL_KEYS)

    def has(self, setting: str) -> bool:
        return setting in {f.name for f in dataclasses.fields(self.schema)}

    def implementation(self, impl: str):
        """The class for ``impl`` (scratch | fused); ConfigError if it has none."""
        check_choice("model.impl", impl, IMPLS, error=ConfigError)
        path = self.scratch if impl == "scratch" else self.fused
        if path is None:
            raise ConfigError(f"model.impl=fused: model={self.name} has no torch.nn kernel (use "
                              "model.impl=scratch)")
        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)


IMPLS = ("scratch", "fused")
# What SequenceModel itself takes (the encoder, the stack, the initialisation), not the cell.
MODEL_KEYS = frozenset({f.name for f in dataclasses.fields(ModelConfig)}
                       | {"init", "forget_bias", "chrono_tmax"})
_GATED_FUSED_ONLY = {"layer_norm": (False,), "zoneout": (0, 0.0)}
_GATED_FEATURES = {"layer_norm": True, "zoneout": 0.2}
_MODES = {"mode": Choice(("parallel", "log", "sequential"))}  # how the scan is computed

SPECS: dict[str, CellSpec] = {spec.name: spec for spec in (
    CellSpec("rnn", RNNModelConfig,
             "Elman tanh RNN (ReLU: model.nonlinearity=relu; IRNN: add model.init=identity)",
             "rnnlab.cells.rnn:RNN", "rnnlab.cells.fused:FusedRNN",
             fused_only={"nonlinearity": ("tanh", "relu")},
             inits=("default", "orthogonal", "identity"),
             variants={"nonlinearity": Choice(("tanh", "relu"), by_name=True)}),
    CellSpec("gru", GRUModelConfig,
             "GRU; model.reset=after (torch.nn/cuDNN) or before (Cho et al. 2014 v3), "
             "model.variant=gru|no_reset|mgu",
             "rnnlab.cells.gru:GRU", "rnnlab.cells.fused:FusedGRU",
             fused_only={"variant": (None, "gru"), "reset": (None, "after"),
                         **_GATED_FUSED_ONLY},
             variants={"variant": Choice(("gru", "no_reset", "mgu"), by_name=True),
                       "reset": Choice(("after", "before"))},
             features=_GATED_FEATURES),
    CellSpec("lstm", LSTMModelConfig,
             "LSTM (model.variant=torch, torch.nn's form, or Greff et al. 2017's); "
             "model.forget_bias=1 opens the memory path",
             "rnnlab.cells.lstm:LSTM", "rnnlab.cells.fused:FusedLSTM",
             fused_only={"variant": (None, "torch"), **_GATED_FUSED_ONLY},
             variants={"variant": Choice(("torch", "vanilla", "nig", "nfg", "nog", "niaf", "noaf",
                                          "np", "cifg", "fgr"), by_name=True)},
             features=_GATED_FEATURES),
    CellSpec("mingru", MinGRUModelConfig,
             "minGRU (Feng et al. 2024): gates read x_t only, trained as a parallel scan "
             "(model.mode=parallel|log|sequential, same numbers)",
             "rnnlab.cells.minrnn:MinGRU",
             inits=("default", "chrono"), variants=_MODES),
    CellSpec("minlstm", MinLSTMModelConfig,
             "minLSTM (Feng et al. 2024): normalised forget/input gates that read x_t only",
             "rnnlab.cells.minrnn:MinLSTM",
             inits=("default", "chrono"), variants=_MODES),
    CellSpec("indrnn", IndRNNModelConfig,
             "IndRNN (Li et al. 2018): h_t = relu(W x_t + u ⊙ h_{t-1} + b), |u| <= 2^(1/T)",
             "rnnlab.cells.indrnn:IndRNN", inits=("default",)),
)}


def cell_spec(cell: str) -> CellSpec:
    check_choice("model.cell", cell, SPECS, error=ConfigError)
    return SPECS[cell]


def spec_of(cls: type) -> CellSpec | None:
    """The entry whose scratch or fused class ``cls`` is (or derives from); None for a class the
    registry does not name. Compares the "module:Class" paths, so nothing is imported."""
    paths = {f"{k.__module__}:{k.__qualname__}" for k in cls.__mro__}
    for spec in SPECS.values():
        if spec.scratch in paths or spec.fused in paths:
            return spec
    return None
