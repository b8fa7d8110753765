"""A finished run's model, rebuilt from its run directory: the config it ran with (results.json,
else ``.hydra/config.yaml``) and the weights of one of its checkpoints. What the analysis
commands (rnnlab-lyapunov, rnnlab-by-position) measure a trained model on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINTS = ("best", "last")


@dataclass
class Trained:
    config: Any  # the run's config (an OmegaConf DictConfig)
    model: Any  # rnnlab.model.models.SequenceModel with the checkpoint's weights, in eval mode
    step: int
    epoch: int
    data: Any  # the run's own data module (its seed, so its splits are the run's), not set up

    def datamodule(self, **overrides):
        """The run's data module, with ``overrides`` of data settings (e.g. ``seq_len=256``:
        fresh splits drawn from the run's seed at that setting), set up."""
        from hydra.utils import instantiate

        datamodule = (instantiate(self.config.data, seed=self.config.seed, **overrides)
                      if overrides else self.data)
        datamodule.setup()
        return datamodule


def load_trained(run_dir: Path, checkpoint: str = "best") -> Trained:
    """The model of ``run_dir`` at ``checkpoints/<checkpoint>.ckpt``; ValueError (one line) if
    the directory is not a run of rnnlab-train with that checkpoint."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    import rnnlab.config.schemas  # noqa: F401  (resolvers used by saved configs)
    from rnnlab.config.untrusted import check_config, load_checkpoint
    from rnnlab.model.models import SequenceModel
    from rnnlab.run.rundir import RunDir

    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    run = RunDir(run_dir)
    ckpt = run.checkpoint(checkpoint)
    config = run.config()
    if not config or not ckpt.is_file():
        missing = (ckpt.relative_to(run.path) if config else
                   f"{run.results.name} or {run.hydra_config.relative_to(run.path)}")
        raise ValueError(f"{run_dir}: no {missing} (not a run dir of rnnlab-train?)")
    # A run dir is untrusted: its config may name only rnnlab's own targets, and its checkpoint
    # loads weights only (UntrustedContent / CorruptCheckpoint are one-line ValueErrors).
    check_config(config, run.recorded_config())
    state = load_checkpoint(ckpt)
    cfg = OmegaConf.create(config)
    data = instantiate(cfg.data, seed=cfg.seed)
    model = SequenceModel(data.spec, **OmegaConf.to_container(cfg.model, resolve=True))
    model.load_state_dict({key.removeprefix("model."): value
                           for key, value in state["state_dict"].items()
                           if key.startswith("model.")})
    model.eval()
    return Trained(cfg, model, int(state.get("global_step", 0)), int(state.get("epoch", 0)), data)
