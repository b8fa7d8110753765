"""What a run prints: third-party lines that say nothing about the run are filtered, once.

Filtered (each seen on every quickstart job, 2026-12):

* torch's deprecation of ``isinstance(treespec, LeafSpec)``, which Lightning's own
  ``utilities/_pytree.py`` triggers at every fit and test (nine times in a 3-job sweep): nothing
  a user can change;
* Lightning's "💡 Tip: ... try installing litlogger" advertisement at every Trainer.

(wandb's "The anonymous setting has no effect" at every run is not filtered but avoided:
``tracking.wandb_logger`` leaves out the ``anonymous=None`` Lightning passes to ``wandb.init``.)

While a run resumes from a checkpoint (:func:`resuming`), also the two warnings every resume
gives and that say nothing wrong: Lightning's "Checkpoint directory ... exists and is not empty"
(it is the run's own) and torchmetrics' "compute ... called before update" for the train metrics
(their states come from the checkpoint; torchmetrics counts updates of this process only).

Everything else — Lightning's progress, our own one-line results, every other warning — stays.
``RNNLAB_CONSOLE=all`` keeps the filtered lines too.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_PYTREE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
_TIP = "\N{ELECTRIC LIGHT BULB} Tip:"
# Where Lightning's rank_zero_info records are created (fabric's and pytorch's rank_zero).
_RANK_ZERO = ("lightning.fabric.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIP)


_TIPS = _DropTips()


def quiet_third_party() -> None:
    """Install the filters (idempotent); a no-op under ``RNNLAB_CONSOLE=all``."""
    if os.environ.get("RNNLAB_CONSOLE") == "all":
        return
    warnings.filterwarnings("ignore", message=_PYTREE)
    for name in _RANK_ZERO:
        logger = logging.getLogger(name)
        if _TIPS not in logger.filters:
            logger.addFilter(_TIPS)


_RESUME_WARNINGS = (r"Checkpoint directory .* exists and is not empty",
                    r"The ``compute`` method of metric .* was called before the ``update`` method")


@contextmanager
def resuming() -> Iterator[None]:
    """Within: the warnings a resume gives that say nothing wrong (see the module docstring)."""
    with warnings.catch_warnings():
        if os.environ.get("RNNLAB_CONSOLE") != "all":
            for message in _RESUME_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
        yield
