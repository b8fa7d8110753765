"""Which jobs of a sweep train together (``hydra/launcher=pack``), and where each pack runs.

Torch-free: the launcher decides before anything is built.
- :func:`solo_reason`: why a job cannot join a pack (it then runs alone, as with the basic
  launcher), or None.
- :func:`pack_key`: jobs with the same key share one loop: the same data sizes and batches, the
  same trainer loop and cadence, the same loggers and test split. They may differ in what each
  member computes on its own (:data:`MEMBER_KEYS`).
- :func:`plan`: packs of at most ``size`` members, split evenly so that ``parallel`` packs keep
  ``parallel`` workers busy.
- :func:`placement`: one pack per GPU on a node with GPUs; on CPU one pack per core, one thread
  each.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from rnnlab.run.rundir import RunDir

# What the members of one pack may differ in: what each member computes or records on its own.
MEMBER_KEYS = ("seed", "optimizer", "model", "divergence_factor", "paths", "reference",
               "compare", "tags", "experiment_name", "trainer.gradient_clip_val",
               "trainer.gradient_clip_algorithm", "callbacks.early_stopping",
               "callbacks.solved_stop", "callbacks.gradflow", "callbacks.model_checkpoint",
               "callbacks.last_checkpoint", "callbacks.mid_epoch_checkpoint",
               "callbacks.progress_bar")


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree.get(part) if isinstance(tree, dict) else None
        if tree is None:
            return
    if isinstance(tree, dict):
        tree.pop(last, None)


def pack_key(cfg: dict[str, Any]) -> str:
    """The resolved config less :data:`MEMBER_KEYS`, as one string, with the job's own run dir
    (in its loggers' and callbacks' paths) written as ``<run dir>``."""
    run_dir = str((cfg.get("paths") or {}).get("output_dir") or "")
    tree = json.loads(json.dumps(cfg, default=str))
    for dotted in MEMBER_KEYS:
        _drop(tree, dotted)
    text = json.dumps(tree, sort_keys=True)
    return text.replace(run_dir, "<run dir>") if run_dir else text


def solo_reason(cfg: dict[str, Any], output_dir: str | os.PathLike) -> str | None:
    """Why the job with resolved config ``cfg`` trains alone, or None (it can join a pack)."""
    run_dir = RunDir(output_dir)
    if run_dir.results.exists():
        return "it has a result (kept, or trained on from its checkpoint alone)"
    if run_dir.checkpoint("last").exists():
        return "it resumes from its checkpoint (a killed pack's members resume alone)"
    if cfg.get("scheduler"):
        return "a learning-rate scheduler (not packed yet)"
    trainer = cfg.get("trainer") or {}
    devices = trainer.get("devices", 1)
    if (trainer.get("num_nodes") or 1) > 1 or "ddp" in str(trainer.get("strategy", "")) or (
            isinstance(devices, int) and devices > 1) or (
            isinstance(devices, (list, tuple)) and len(devices) > 1):
        return "it trains on several devices (DDP)"
    if trainer.get("val_check_interval") not in (None, 1.0):
        return "trainer.val_check_interval: a member stops only at an epoch end"
    if trainer.get("accumulate_grad_batches", 1) != 1:
        return "trainer.accumulate_grad_batches"
    return None


def plan(keys: list[str | None], size: int, parallel: int) -> list[list[int]]:
    """Packs of job indices: jobs with the same key (None: alone), at most ``size`` per pack,
    as evenly split as ``parallel`` workers need (8 jobs, 2 workers: two packs of 4). A group of
    one is a pack of one: it runs alone."""
    if size < 1 or parallel < 1:
        raise ValueError(f"hydra.launcher.size and hydra.launcher.parallel must be >= 1, got "
                         f"{size} and {parallel}")
    groups: dict[str, list[int]] = {}
    packs: list[list[int]] = []
    for index, key in enumerate(keys):
        if key is None:
            packs.append([index])
        else:
            groups.setdefault(key, []).append(index)
    for members in groups.values():
        count = max(math.ceil(len(members) / size), min(parallel, len(members) // 2 or 1))
        if count > parallel:  # whole rounds of `parallel` packs: no worker idle at the end
            count = min(math.ceil(count / parallel) * parallel, len(members) // 2 or 1)
        base, extra = divmod(len(members), count)
        start = 0
        for i in range(count):
            end = start + base + (1 if i < extra else 0)
            packs.append(members[start:end])
            start = end
    return sorted(packs, key=lambda pack: pack[0])


def placement(packs: int, accelerator: str, gpus: int, cpus: int,
              parallel: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """How many packs run at once, and for each pack (in order) where: ``{"device": i}`` (a GPU
    index, packs spread round-robin) or ``{"threads": 1}`` (CPU: one core each)."""
    on_gpu = accelerator in ("gpu", "cuda", "auto") and gpus > 0
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ValueError(f"trainer.accelerator={accelerator}: no CUDA GPU here for the packs")
    slots = gpus if on_gpu else cpus
    at_once = max(1, min(packs, parallel or slots))
    if on_gpu:
        return at_once, [{"device": i % gpus} for i in range(packs)]
    return at_once, [{"threads": 1} for _ in range(packs)]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
