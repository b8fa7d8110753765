"""Runs whose ranks a launcher started: one process per device, from `torchrun` or SLURM's `srun`
(the submitit launcher with `hydra.launcher.tasks_per_node` = GPUs per node).

Every rank runs the whole `rnnlab-train` command, so they must agree on one run directory (rank 0
writes results.json; Lightning writes checkpoints and logs from rank 0; a resumed run must find
the same checkpoint on every rank). The run-dir stamp below is therefore, under such a launcher,
an id the launcher gives every rank alike instead of the time each rank happened to start.
Standard library only: this is imported while the config is composed.
"""

from __future__ import annotations

import datetime as _dt
import os

__all__ = ["launched_ranks", "launcher_name", "run_stamp"]


def launched_ranks() -> tuple[int, int] | None:
    """(global rank, world size) of this process when a launcher started several ranks of this
    command (torchrun: RANK, WORLD_SIZE; srun: SLURM_PROCID, SLURM_NTASKS); None otherwise,
    also for one rank and for the workers Lightning's ddp_spawn starts itself (they never run the
    command)."""
    for rank_var, size_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        rank, size = os.environ.get(rank_var), os.environ.get(size_var)
        if rank is None or size is None:
            continue
        try:
            rank_i, size_i = int(rank), int(size)
        except ValueError:
            continue
        if size_i > 1:
            return rank_i, size_i
    return None


def launcher_name() -> str:
    """"torchrun" or "srun": which launcher started the ranks (for messages)."""
    return "torchrun" if "RANK" in os.environ and "WORLD_SIZE" in os.environ else "srun"


def _shared_launch_id() -> str | None:
    """An id every rank of this launch sees alike, or None (no launcher, or it gives none)."""
    if launched_ranks() is None:
        return None
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if launcher_name() == "torchrun":
        # torchrun's default rendezvous id is "none" for every launch: not an id
        return f"torchrun-{run_id}" if run_id and run_id != "none" else None
    job, step = os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_STEP_ID", "0")
    return f"slurm-{job}.{step}" if job else None


def run_stamp(pattern: str = "%Y-%m-%d_%H-%M-%S-%f") -> str:
    """The last part of a run/sweep dir (the `rnnlab_stamp` resolver): the time now, formatted
    with ``pattern``; under a launcher that started several ranks, its shared launch id instead
    (SLURM job and step, torchrun's rendezvous id), so every rank resolves the same directory."""
    return _shared_launch_id() or _dt.datetime.now().strftime(pattern)
