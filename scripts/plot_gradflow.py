#!/usr/bin/env python
"""The same as `rnnlab-plot-gradflow` (rnnlab.commands.plot_gradflow), for a checkout without
the console script on PATH: `.venv/bin/python scripts/plot_gradflow.py RUN_DIR...`."""

from rnnlab.commands.plot_gradflow import main

if __name__ == "__main__":
    raise SystemExit(main())
