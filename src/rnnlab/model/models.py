"""SequenceModel: input encoder -> stacked recurrent layers -> head.

The recurrent stack is one multi-layer cell module, either rnnlab's own (``impl=scratch``, with
the hand-written backward that records dL/dh_t) or torch.nn's (``impl=fused``). Both share
parameter names and the ``forward(input, hx, lengths)`` interface, so everything here is the
same for both.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.cells.init import INIT_SCHEMES
from rnnlab.config.cellspecs import (
    SPECS,
    ClassicModelConfig,
    LSTMModelConfig,
    ModelConfig,
    cell_spec,
)
from rnnlab.config.errors import ConfigError, check_choice
from rnnlab.config.schemas import out_of_bounds
from rnnlab.data.base import DataSpec

ENCODERS = ("auto", "onehot", "embedding", "linear", "identity")
# "auto" one-hot encodes small vocabularies (the synthetic tasks), embeds large
ONEHOT_MAX_VOCAB = 64


def cell_class(cell: str, impl: str):
    """The class that implements ``cell`` for ``impl`` (its rnnlab.config.cellspecs entry)."""
    return cell_spec(cell).implementation(impl)


def _cell_options(cell: str, impl: str, options: dict, record_grad_norms: bool) -> dict:
    """The constructor options of one cell type (its own settings in its schema), refusing those
    it does not have and, for torch.nn's kernels, the values they cannot compute."""
    spec = cell_spec(cell)
    for key in options:
        if key not in spec.options:
            raise ConfigError(f"model.{key} is not a setting of model={cell}")
    if impl == "fused":
        for key, value in options.items():
            if value not in spec.fused_only.get(key, ()):
                raise ConfigError(f"model.impl=fused has only torch.nn's cells: model.{key}="
                                  f"{value} needs model.impl=scratch")
        return {k: v for k, v in options.items() if k == "nonlinearity"}
    options = {k: v for k, v in options.items() if v is not None}  # None: the cell's own default
    return {**options, "record_grad_norms": record_grad_norms}


_M, _C, _L = ModelConfig, ClassicModelConfig, LSTMModelConfig  # the defaults, from the schemas


class SequenceModel(nn.Module):
    # Every default is the schema's (rnnlab.config.cellspecs), so the Python API builds what the CLI
    # builds; the cell's own settings (cell_options) default in the cell's class.
    def __init__(
        self,
        spec: DataSpec,
        cell: str = "gru",
        impl: str = _M.impl,
        hidden_size: int = _M.hidden_size,
        num_layers: int = _M.num_layers,
        dropout: float = _M.dropout,
        param_budget: int | None = _M.param_budget,
        init: str = _C.init,
        forget_bias: float | None = _L.forget_bias,
        chrono_tmax: float | None = _L.chrono_tmax,
        encoder: str = _M.encoder,
        embedding_dim: int = _M.embedding_dim,
        record_grad_norms: bool = _M.record_grad_norms,
        **cell_options,
    ):
        """``cell_options``: the chosen cell's own settings (``nonlinearity``, ``variant``,
        ``reset``, ``layer_norm``, ``zoneout``, ``mode``, ...; see its schema in
        ``rnnlab.config.cellspecs``); one the cell does not take is refused."""
        super().__init__()
        check_choice("model.encoder", encoder, ENCODERS, error=ConfigError)
        for key, value in (("model.num_layers", num_layers), ("model.dropout", dropout)):
            if (error := out_of_bounds(key, value)) is not None:
                raise ConfigError(error)
        if dropout and num_layers == 1:  # torch.nn would drop it with a warning; say so instead
            raise ConfigError(f"model.dropout={dropout} acts between layers: set "
                              "model.num_layers >= 2, or model.dropout=0")
        if forget_bias is not None and not cell_spec(cell).has("forget_bias"):
            raise ConfigError(f"model.forget_bias applies only to model=lstm (got model={cell})")
        if chrono_tmax is not None and not cell_spec(cell).has("chrono_tmax"):
            having = ", ".join(n for n, c in SPECS.items() if c.has("chrono_tmax"))
            raise ConfigError(f"model.chrono_tmax applies only to model={having} (got "
                              f"model={cell})")
        check_choice("model.init", init, INIT_SCHEMES, error=ConfigError)
        if init not in cell_spec(cell).inits:
            raise ConfigError(f"model.init={init} does not apply to model={cell} (it takes "
                              f"{'|'.join(cell_spec(cell).inits)})")
        self.spec = spec
        self.cell_name, self.impl = cell, impl
        self.record_grad_norms = bool(record_grad_norms)
        self.encoder_kind = self._resolve_encoder(encoder, spec)
        rnn_class = cell_class(cell, impl)
        options = _cell_options(cell, impl, cell_options, record_grad_norms)
        if param_budget is not None:
            hidden_size = solve_hidden_size(
                param_budget, spec=spec, cell=cell, impl=impl, num_layers=num_layers,
                encoder=encoder, embedding_dim=embedding_dim, **cell_options)
        if hidden_size < 1:
            raise ConfigError(f"model.hidden_size must be >= 1, got {hidden_size}")
        self.hidden_size, self.num_layers = hidden_size, num_layers

        self.encoder, rnn_input = self._build_encoder(spec, embedding_dim)
        try:
            self.rnn = rnn_class(rnn_input, hidden_size, num_layers=num_layers, batch_first=True,
                                 dropout=dropout if num_layers > 1 else 0.0, **options)
        except ValueError as error:  # a cell's own argument check, already one line
            raise ConfigError(f"model: {error}") from None
        self.head = nn.Linear(hidden_size, spec.output_size)
        from rnnlab.cells import initialize_recurrent

        try:
            initialize_recurrent(self.rnn, init, forget_bias, chrono_tmax)
        except ValueError as error:
            raise ConfigError(f"model.{error}") from None

    # ------------------------------------------------------------------------------ build
    @staticmethod
    def _resolve_encoder(encoder: str, spec: DataSpec) -> str:
        tokens = spec.vocab_size is not None
        if encoder == "auto":
            if tokens:
                return "onehot" if spec.vocab_size <= ONEHOT_MAX_VOCAB else "embedding"
            return "identity"
        if tokens and encoder in ("linear", "identity"):
            raise ConfigError(f"model.encoder={encoder} needs real-valued inputs; "
                              "this dataset gives tokens (use onehot or embedding)")
        if not tokens and encoder in ("onehot", "embedding"):
            raise ConfigError(f"model.encoder={encoder} needs token inputs; "
                              "this dataset gives real vectors (use identity or linear)")
        return encoder

    def _build_encoder(self, spec: DataSpec, embedding_dim: int) -> tuple[nn.Module | None, int]:
        kind = self.encoder_kind
        if kind == "onehot":
            return None, spec.vocab_size
        if kind == "embedding":
            return nn.Embedding(spec.vocab_size, embedding_dim, padding_idx=0), embedding_dim
        if kind == "linear":
            return nn.Linear(spec.input_size, embedding_dim), embedding_dim
        return None, spec.input_size

    # ---------------------------------------------------------------------------- forward
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder_kind == "onehot":
            return F.one_hot(x, self.spec.vocab_size).to(self.head.weight.dtype)
        if self.encoder is None:
            return x
        return self.encoder(x)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits or predictions: (B, T, O) for per-step tasks, (B, O) for last-step tasks."""
        inputs = self.encode(x)
        if self._flow_watch and torch.is_grad_enabled():  # only while a gradflow probe is armed
            inputs = self._watch_input(inputs)
        output, _ = self.rnn(inputs, lengths=lengths)
        if self.spec.per_step:
            return self.head(output)
        return self.head(last_valid_step(output, lengths))

    # ------------------------------------------------------------------------ gradient flow
    # Read by rnnlab.gradflow. Class-level defaults: when no probe is armed, forward pays one
    # attribute read.
    _flow_watch = False
    _flow_input: torch.Tensor | None = None
    _flow_input_grad: torch.Tensor | None = None

    @property
    def gradient_flow_quantity(self) -> str:
        """What :meth:`gradient_flow` measures: ``"dL/dh_t"`` (scratch cells: the total gradient
        at every layer's hidden state, through the recurrence) or ``"dL/dx_t"`` (fused cells,
        whose kernels hide dL/dh_t: the gradient reaching the first layer's input at step t)."""
        return "dL/dh_t" if hasattr(self.rnn, "hidden_grad_norms") else "dL/dx_t"

    def watch_gradient_flow(self, on: bool = True) -> None:
        """Arm (or disarm) the gradient-flow record for the following forward/backward passes.

        Armed: the scratch cells record dL/dh_t even with ``record_grad_norms=False``, and the
        forward keeps the recurrent stack's input (:attr:`gradient_flow_input`) with a hook that
        catches dL/dx_t. Disarmed: back to the configured ``record_grad_norms`` and a bare forward.
        """
        self._flow_watch = bool(on)
        self._flow_input = self._flow_input_grad = None
        if hasattr(self.rnn, "record_grad_norms"):
            self.rnn.record_grad_norms = bool(on) or self.record_grad_norms

    @property
    def gradient_flow_input(self) -> torch.Tensor | None:
        """The recurrent stack's input (B, T, I) of the last armed forward (a tensor that requires
        grad, so ``torch.autograd.grad(..., gradient_flow_input)`` reaches it)."""
        return self._flow_input

    def _watch_input(self, inputs: torch.Tensor) -> torch.Tensor:
        if not inputs.requires_grad:  # one-hot / identity encoders: nothing upstream to lose
            inputs = inputs.detach().requires_grad_()
        inputs.register_hook(self._keep_input_grad)
        self._flow_input = inputs
        return inputs

    def _keep_input_grad(self, grad: torch.Tensor) -> None:
        self._flow_input_grad = grad.detach()

    def gradient_flow(self) -> dict[str, torch.Tensor]:
        """Per-sample gradient norms from the last backward: ``{layer_name: (T, B) float32}``.

        ``gradient_flow_quantity`` says which: scratch cells give ||dL/dh_t|| for every layer
        (``layer0``, ``layer1``, ...), recorded by their own backward; fused cells give
        ||dL/dx_t|| at the input of the first layer only (``layer0``; a multi-layer torch.nn module
        exposes no input of its deeper layers), available after a backward through a forward run
        under :meth:`watch_gradient_flow`. 0 at padded steps. Empty when nothing was recorded.
        """
        if self.gradient_flow_quantity == "dL/dh_t":
            norms = self.rnn.hidden_grad_norms
            if norms is None:
                return {}
            return {f"layer{k}": norms[k] for k in range(norms.shape[0])}
        grad = self._flow_input_grad
        if grad is None:
            return {}
        # float64: squares of float32 gradients below ~1e-19 would underflow
        norms = torch.linalg.vector_norm(grad.double(), dim=-1).float()  # (B, T): batch_first
        return {"layer0": norms.t().contiguous()}

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def last_valid_step(output: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(B, T, H) -> (B, H): each sequence's output at its last valid step."""
    if lengths is None:
        return output[:, -1]
    index = (lengths.to(output.device) - 1).clamp(min=0).view(-1, 1, 1).expand(
        -1, 1, output.shape[-1])
    return output.gather(1, index).squeeze(1)


def count_params(spec: DataSpec, hidden_size: int, **model_options) -> int:
    """Parameters of a model, counted without allocating it (meta device)."""
    with torch.device("meta"):
        return SequenceModel(spec, hidden_size=hidden_size, **model_options).num_params


def solve_hidden_size(budget: int, spec: DataSpec, **model_options) -> int:
    """The largest hidden size whose model has at most ``budget`` parameters (Chung 2014 style
    comparisons at equal parameter count)."""
    if count_params(spec, 1, **model_options) > budget:
        raise ConfigError(f"model.param_budget={budget} is below the smallest model "
                          f"({count_params(spec, 1, **model_options)} parameters at hidden_size=1)")
    low, high = 1, 2
    while count_params(spec, high, **model_options) <= budget:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if count_params(spec, middle, **model_options) <= budget:
            low = middle
        else:
            high = middle
    return low
