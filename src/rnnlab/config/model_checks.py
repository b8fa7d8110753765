"""The model settings SequenceModel would refuse, checked on the composed config before torch
loads (a second, not the ~10 s of importing Lightning): a form the cell does not have
(model.variant, model.reset, model.nonlinearity, model.mode), model.hidden_size given with
model.param_budget, model.impl=fused with a setting torch.nn's kernel cannot compute, dropout
with one layer, an init the cell does not take, an encoder the data cannot feed, and a
model.param_budget below the smallest model.

rnnlab.model.models makes the same checks, in the same words, for the Python API (where no
command line is composed). The smallest model's size needs torch to count exactly; here it is
bounded from below (:func:`smallest_model_bound`), so a budget under the bound is refused at
once and one between the bound and the exact count is refused by the model, as before.
"""

from __future__ import annotations

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnnlab.config.cellspecs import IMPLS, SPECS

ENCODERS = ("auto", "onehot", "embedding", "linear", "identity")
ONEHOT_MAX_VOCAB = 64  # rnnlab.model.models: "auto" one-hot encodes vocabularies up to this


def model_error(cfg, overrides: list[str] = ()) -> str | None:
    """The first model setting of ``cfg`` (composed from ``overrides``) that the model would
    refuse, as one line (None if none, or if the model node is not one this module can read:
    the model then says)."""
    try:
        model = OmegaConf.to_container(cfg.model, resolve=True) if "model" in cfg else None
    except OmegaConfBaseException:
        return None
    if not isinstance(model, dict) or model.get("cell") not in SPECS:
        return None
    spec = SPECS[model["cell"]]
    for key, choice in spec.variants.items():  # a form the cell does not have
        value = model.get(key)
        if value is not None and value not in choice.values:
            return f"model.{key}={value!r} is not one of {', '.join(choice.values)}"
    if model.get("param_budget") is not None and any(
            o.split("=", 1)[0].lstrip("+~") == "model.hidden_size" for o in overrides):
        return ("model.hidden_size and model.param_budget are both set: the budget solves for "
                "the hidden size; give one of them")
    impl = model.get("impl")
    if impl not in IMPLS:
        return f"model.impl={impl!r} is not one of {', '.join(IMPLS)}"
    if impl == "fused":
        if spec.fused is None:
            return (f"model.impl=fused: model={spec.name} has no torch.nn kernel (use "
                    "model.impl=scratch)")
        for key in spec.options:
            if key in model and model[key] not in spec.fused_only.get(key, ()):
                return (f"model.impl=fused has only torch.nn's cells: model.{key}={model[key]} "
                        "needs model.impl=scratch")
    dropout, layers = model.get("dropout"), model.get("num_layers")
    if (isinstance(dropout, (int, float)) and dropout and isinstance(layers, int)
            and layers == 1):
        return (f"model.dropout={dropout} acts between layers: set model.num_layers >= 2, or "
                "model.dropout=0")
    init = model.get("init")
    if init is not None and init not in spec.inits:
        return (f"model.init={init} does not apply to model={spec.name} (it takes "
                f"{'|'.join(spec.inits)})")
    return _encoder_error(model, cfg) or _budget_error(model, cfg)


def _data(cfg) -> dict | None:
    try:
        data = OmegaConf.to_container(cfg.data, resolve=True) if "data" in cfg else None
    except OmegaConfBaseException:
        return None
    return data if isinstance(data, dict) else None


def _encoder_error(model: dict, cfg) -> str | None:
    from rnnlab.data.shapes import synthetic_shape

    encoder = model.get("encoder")
    if encoder not in ENCODERS:
        return f"model.encoder={encoder!r} is not one of {', '.join(ENCODERS)}"
    data = _data(cfg)
    shape = synthetic_shape(data) if data is not None else None
    if shape is None:
        return None
    tokens = shape.vocab_size is not None
    if tokens and encoder in ("linear", "identity"):
        return (f"model.encoder={encoder} needs real-valued inputs; this dataset gives tokens "
                "(use onehot or embedding)")
    if not tokens and encoder in ("onehot", "embedding"):
        return (f"model.encoder={encoder} needs token inputs; this dataset gives real vectors "
                "(use identity or linear)")
    return None


def smallest_model_bound(model: dict, data: dict | None) -> int:
    """A lower bound on the parameters of ``model`` (a composed ``cfg.model``) at hidden_size=1,
    for ``data`` (its shapes where :func:`rnnlab.data.shapes.synthetic_shape` knows them; any
    data otherwise): the encoder's exact size, each layer's input weights and bias with one row
    (every cell has at least that), and the head (weights and bias, output size at least 1)."""
    from rnnlab.data.shapes import synthetic_shape

    shape = synthetic_shape(data) if data is not None else None
    layers = model.get("num_layers") if isinstance(model.get("num_layers"), int) else 1
    encoder, width = model.get("encoder"), model.get("embedding_dim")
    width = width if isinstance(width, int) and width >= 1 else 1
    if shape is None:
        return 1 + 1 + 2 * (max(layers, 1) - 1) + 2  # layer 0: >= 1 weight + 1 bias; the head
    tokens = shape.vocab_size is not None
    if encoder == "auto":
        encoder = ("onehot" if shape.vocab_size <= ONEHOT_MAX_VOCAB else "embedding") \
            if tokens else "identity"
    if encoder == "embedding":
        encoder_params, inputs = shape.vocab_size * width, width
    elif encoder == "linear":
        encoder_params, inputs = (shape.input_size + 1) * width, width
    else:  # onehot, identity: no parameters
        encoder_params, inputs = 0, shape.vocab_size if tokens else shape.input_size
    return encoder_params + inputs + 1 + 2 * (max(layers, 1) - 1) + 2 * shape.output_size


def _budget_error(model: dict, cfg) -> str | None:
    budget = model.get("param_budget")
    if isinstance(budget, bool) or not isinstance(budget, int):
        return None
    bound = smallest_model_bound(model, _data(cfg))
    if budget < bound:
        return (f"model.param_budget={budget} is below the smallest model (at least {bound} "
                "parameters at hidden_size=1)")
    return None
