"""The Lyapunov spectrum, step-Jacobian norms and gate statistics of a trained run, on demand,
from its checkpoint (docs/gradflow.md, "Step Jacobians"; its command, rnnlab-lyapunov, is
rnnlab.commands.lyapunov).

Rebuilds the run's model from its config (results.json, else ``.hydra/config.yaml``), loads
the checkpoint's weights, takes the first ``rows`` rows of the first validation batch and
measures what the monitor's dynamics record holds (rnnlab.gradflow.dynamics), in eval mode.
Scratch cells only (torch.nn's kernels have no step equations of ours).
"""

from __future__ import annotations

from pathlib import Path


def measure_run(run_dir: Path, checkpoint: str = "best", rows: int = 16, k: int = 8) -> dict:
    """The dynamics of ``run_dir``'s model at ``checkpoint``: ``{"step", "checkpoint", "rows",
    "layers": {layer: {"lyapunov": [...], scalars...}}}``; ValueError (one line) if the run
    cannot be measured."""
    from rnnlab.gradflow.dynamics import DynamicsRecorder, _has_scratch_stack
    from rnnlab.run.trained import load_trained

    trained = load_trained(run_dir, checkpoint)
    model, cfg = trained.model, trained.config
    if not _has_scratch_stack(model):
        raise ValueError(f"{run_dir}: model.impl={cfg.model.impl}: step Jacobians need "
                         "model.impl=scratch")
    datamodule = trained.datamodule()
    recorder = DynamicsRecorder(rows=rows, lyapunov_k=k)
    recorder.keep_batch(next(iter(datamodule.val_dataloader())))
    step = trained.step
    scalars = recorder.measure(model, step, trained.epoch)
    layers = {}
    for i, layer in enumerate(recorder.records[-1]["layers"]):
        name = f"layer{i}"
        layers[name] = {"lyapunov": [float(v) for v in layer["lyapunov"]],
                        **{key.rsplit("/", 1)[1]: value for key, value in scalars.items()
                           if key.startswith(f"gradflow/{name}/")}}
    return {"run_dir": str(run_dir), "checkpoint": checkpoint, "step": step,
            "rows": int(recorder.batch["x"].shape[0]), "state_size": recorder.records[-1]
            ["layers"][0]["state_size"], "layers": layers}
