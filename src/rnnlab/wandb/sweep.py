"""The W&B sweep config of a preset or a Hydra sweep command line (its command,
``rnnlab-wandb-sweep``, is rnnlab.commands.wandb_sweep).

W&B users run sweeps with ``wandb sweep`` + ``wandb agent`` instead of Hydra's ``-m``. This
writes the sweep config (YAML) whose agent runs ``rnnlab-train`` with Hydra overrides: the fixed
settings of the command line, then ``${args_no_hyphens}`` (``key=value`` per swept setting), so
each agent run is one rnnlab run -- same run dir layout, results.json, W&B name, group and row.

    rnnlab-wandb-sweep experiment=gru_variants seed=0,1 > sweep.yaml
    wandb sweep --project rnnlab sweep.yaml        # prints the sweep id
    wandb agent ENTITY/rnnlab/SWEEP_ID

The swept settings are the preset's (its ``hydra.sweeper.params``) and every comma list of the
command line (which wins over the preset's); the metric and its goal are the run's
``monitor.metric`` and ``monitor.mode``.
"""

from __future__ import annotations

METHODS = ("grid", "random", "bayes")


def sweep_spec(overrides: list[str], method: str = "grid") -> dict:
    """The W&B sweep config for ``rnnlab-train -m <overrides>``; ValueError with one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    import rnnlab.config.schemas  # noqa: F401  (registers the schemas and resolvers)
    from rnnlab.config.composition import command_line_error
    from rnnlab.config.configdir import CONFIG_DIR
    from rnnlab.config.errors import check_choice

    check_choice("--method", method, METHODS)
    reason = command_line_error(["-m", *overrides], CONFIG_DIR, "train")
    if reason is not None:
        raise ValueError(reason)
    parsed = OverridesParser.create().parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    swept = {o.get_key_element(): [_value(v) for v in o.sweep_iterator()]
             for o in parsed if o.is_sweep_override()}
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=fixed, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    preset = dict(cfg.hydra.sweeper.get("params") or {})
    from_preset = OverridesParser.create().parse_overrides(
        [f"{k}={v}" for k, v in preset.items() if k not in swept])
    parameters = {o.get_key_element(): [_value(v) for v in o.sweep_iterator()]
                  for o in from_preset}
    parameters.update(swept)
    if not parameters:
        raise ValueError("nothing to sweep: give a preset with a sweep (experiment=...) or a "
                         "comma list (model=rnn,gru)")
    return {
        "program": "rnnlab-train",
        # `wandb sweep` creates the sweep in this project unless --project says otherwise
        "project": str(OmegaConf.select(cfg, "logger.wandb.project", default=None) or "rnnlab"),
        "method": method,
        "metric": {"name": str(cfg.monitor.metric), "goal": f"{cfg.monitor.mode}imize"},
        # the agent talks to the W&B server, so its runs log online
        "command": ["${env}", "rnnlab-train", *fixed, "logger.wandb.offline=false",
                    "${args_no_hyphens}"],
        "parameters": {key: {"values": values} for key, values in parameters.items()},
    }


def _value(value):
    """A swept value as the agent should write it back into ``key=value``: numbers stay numbers
    (the W&B config shows them as such), the rest is Hydra's own spelling."""
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    return value if isinstance(value, (int, float)) else str(value)
