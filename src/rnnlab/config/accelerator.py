"""``trainer.accelerator=gpu`` (trainer=gpu, trainer=ddp) on a machine that clearly has no CUDA
GPU, refused before torch loads. Asking torch (``torch.cuda.is_available()``) would take the
seconds that importing it does; on Linux the NVIDIA driver's traces answer at once: no
/proc/driver/nvidia, no /dev/nvidia* device, no nvidia-smi on PATH (and no /dev/dxg, WSL's GPU,
nor /dev/kfd, ROCm's, which torch.cuda also drives) mean no GPU; so does CUDA_VISIBLE_DEVICES set
to hide every device. Anything else -- another OS, a driver present, a sweep whose launcher
runs its jobs on other machines (SLURM) -- is left to rnnlab.run.build, which asks torch where
the run starts and refuses in the same words.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

from omegaconf import OmegaConf

GPU_ACCELERATORS = ("gpu", "cuda")


def no_gpu_message(accelerator: str) -> str:
    """The one line of the refusal (rnnlab.run.build says the same once torch has looked)."""
    return (f"trainer.accelerator={accelerator} (trainer=gpu, trainer=ddp) needs a CUDA GPU and "
            "none is available here; use trainer=cpu (or trainer=ddp_cpu)")


def clearly_no_gpu(environ=os.environ, platform: str = sys.platform, root: str = "/") -> bool:
    """True only where it is certain, without torch, that torch would find no CUDA device."""
    if environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    if not platform.startswith("linux"):
        return False
    traces = [os.path.join(root, "proc/driver/nvidia"), os.path.join(root, "dev/dxg"),
              os.path.join(root, "dev/kfd")]
    if any(os.path.exists(path) for path in traces):
        return False
    if glob.glob(os.path.join(root, "dev/nvidia*")):
        return False
    return shutil.which("nvidia-smi", path=environ.get("PATH")) is None


# The Hydra launchers whose jobs run on this machine: only there does this machine's lack of a
# GPU matter (a SLURM sweep, hydra/launcher=submitit_slurm, is started from a login node that
# has none, for jobs on nodes that have them).
LOCAL_LAUNCHERS = ("basic", "joblib", "pack", "submitit_local")


def runs_here(overrides: list[str]) -> bool:
    """Whether the jobs of a command line with these overrides run on this machine (its
    launcher is a local one): the checks of this machine's resources apply only then."""
    launcher = [o.split("=", 1)[1] for o in overrides
                if o.split("=", 1)[0].lstrip("+~") == "hydra/launcher" and "=" in o]
    return not launcher or launcher[-1] in LOCAL_LAUNCHERS


def accelerator_error(cfg, overrides: list[str] = ()) -> str | None:
    """The one-line refusal of a GPU asked for (``cfg``, composed from ``overrides``) where the
    run would start on this machine and it clearly has none; None otherwise."""
    if not runs_here(overrides):
        return None
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", throw_on_resolution_failure=False)
    if str(accelerator) in GPU_ACCELERATORS and clearly_no_gpu():
        return no_gpu_message(str(accelerator))
    return None
