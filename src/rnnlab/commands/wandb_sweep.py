"""``rnnlab-wandb-sweep``: the W&B sweep config of a preset or a Hydra sweep command line
(rnnlab.wandb.sweep), and the two commands that start it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlab.wandb.sweep import sweep_spec


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
