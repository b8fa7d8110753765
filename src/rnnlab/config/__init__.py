"""What a run is asked to be: the config tree's path, its schemas and the cell registry, the
composition checks and refusals made before torch loads, what the Hydra run says about itself,
the launch (the ranks torchrun or srun started, the run-dir stamp they share), the errors
reported in one line, and the checks of what a run directory recorded.

Nothing here imports torch or Lightning at import time (the cells import rnnlab.config.errors),
nor anything of run/ (tests/test_imports.py)."""
