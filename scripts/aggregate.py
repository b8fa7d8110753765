#!/usr/bin/env python
"""Aggregate run directories into a paper-style table (the same as the `rnnlab-aggregate` command).

    python scripts/aggregate.py logs/multiruns/forget_bias_jozefowicz2015/*
"""

import sys

from rnnlab.commands.aggregate import main

if __name__ == "__main__":
    sys.exit(main())
