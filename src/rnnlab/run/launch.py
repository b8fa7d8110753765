"""The launch environment (the ranks a launcher started, its name, the run-dir stamp) is read in
rnnlab.config.launch: the stamp is needed while the config is composed, and config/ imports
nothing from run/. This name stays for run/train.py and run/distributed.py, which import it from
here; new code imports rnnlab.config.launch."""

from __future__ import annotations

from rnnlab.config.launch import launched_ranks, launcher_name, run_stamp

__all__ = ["launched_ranks", "launcher_name", "run_stamp"]
