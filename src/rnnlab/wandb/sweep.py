"""``rnnlab-wandb-sweep``: the W&B sweep config of a preset or a Hydra sweep command line.

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

import argparse
import sys
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnlab-wandb-sweep",
        description="Write the W&B sweep config (for `wandb sweep`) of a preset or a Hydra "
                    "sweep command line.")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra overrides, e.g. experiment=gru_variants "
                             "seed=0,1 (comma lists are swept)")
    parser.add_argument("--method", default="grid", help="grid (default), random or bayes")
    parser.add_argument("--out", type=Path, help="write the YAML here (default: stdout)")
    args = parser.parse_args(argv)
    try:
        spec = sweep_spec(args.overrides, args.method)
    except ValueError as error:
        print(f"rnnlab-wandb-sweep: error: {error}", file=sys.stderr)
        return 2
    import yaml

    text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
    if args.out:
        from rnnlab.run.atomic import atomic_open

        with atomic_open(args.out) as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    print(next_steps(spec["project"], args.out), file=sys.stderr)
    return 0


def next_steps(project: str, config: Path | None) -> str:
    """The two commands that start the sweep, spelled for this install: `wandb` from the same
    environment, and the agent with this environment's bin first on PATH, since each of its runs
    calls `rnnlab-train` by name."""
    import shlex

    bin_dir = Path(sys.executable).parent
    wandb = bin_dir / "wandb"
    wandb = shlex.quote(str(wandb)) if wandb.is_file() else "wandb"
    path = f"PATH={shlex.quote(str(bin_dir))}:$PATH "
    return ("rnnlab-wandb-sweep: " + (f"wrote {config}; " if config else "") + "next:\n"
            f"  {wandb} sweep --project {shlex.quote(project)} "
            f"{shlex.quote(str(config)) if config else 'SWEEP.yaml'}   # prints the sweep id\n"
            f"  {path}{wandb} agent ENTITY/{shlex.quote(project)}/SWEEP_ID")


if __name__ == "__main__":
    raise SystemExit(main())
