"""Everything rnnlab builds for Weights & Biases, in one place (the runs' W&B logger itself is set
up with the other loggers, in tracking.py):

- charts.py: the gradient-flow custom charts (Vega-Lite presets, their tables, the colour range);
- gradflow.py: what the gradient-flow monitor logs to a run (tables and custom charts);
- dashboard.py: workspaces and reports built from code (``rnnlab-dashboard``);
- sweep.py: a W&B sweep config from a preset or a Hydra sweep command line
  (``rnnlab-wandb-sweep``).

The package is named after what it serves; inside it ``import wandb`` is an absolute import and
reaches the real W&B client. Nothing is imported here, so importing a submodule stays light.
"""
