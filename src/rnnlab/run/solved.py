"""Stop a run once it has solved its task, and say so ([fair]'s "spend the budget where it
informs").

A threshold task (copy, adding, parity: tasks with a ``baseline/loss``) is *solved* when the
validation loss is below ``below`` x the baseline -- the same threshold the tables' per-seed
verdict uses (:data:`rnnlab.run.verdict.SOLVED_BELOW`). :class:`SolvedStop` stops training
after ``consecutive`` validations in a row under it, and records in results.json (``solved``)
the step of the first validation of that streak and that the run stopped early. A run that never
gets there trains its whole budget and records ``solved.step: null``.

It is off unless ``callbacks.solved_stop.consecutive`` is set (the comparison protocol,
``rnnlab-compare``, sets it; the reason is in its record). The streak is saved in every
checkpoint, so a resumed run goes on counting.
"""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch.callbacks import Callback

VAL_LOSS = "val/loss"
BASELINE = "baseline/loss"


class SolvedStop(Callback):
    def __init__(self, below: float = 0.10, consecutive: int | None = None):
        if isinstance(below, bool) or not isinstance(below, (int, float)) or not 0 < below < 1:
            raise ValueError(f"callbacks.solved_stop.below must be a number in (0, 1) (a fraction "
                             f"of the task's baseline loss), got {below!r}")
        if consecutive is not None and (isinstance(consecutive, bool)
                                        or not isinstance(consecutive, int) or consecutive < 1):
            raise ValueError("callbacks.solved_stop.consecutive must be an integer >= 1 "
                             f"(validations in a row) or null (never stop), got {consecutive!r}")
        self.below = float(below)
        self.consecutive = consecutive
        self.streak = 0
        self.streak_start: int | None = None  # step of the streak's first validation
        self.stopped = False

    @property
    def state_key(self) -> str:
        return "rnnlab.SolvedStop"

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "streak_start": self.streak_start,
                "stopped": self.stopped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.streak = int(state_dict.get("streak", 0))
        self.streak_start = state_dict.get("streak_start")
        self.stopped = bool(state_dict.get("stopped", False))

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.consecutive is None:
            return
        metrics = trainer.callback_metrics
        if VAL_LOSS not in metrics or BASELINE not in metrics:
            return  # not a threshold task: the validation setting says so at build time
        loss, baseline = float(metrics[VAL_LOSS]), float(metrics[BASELINE])
        under = math.isfinite(loss) and baseline > 0 and loss < self.below * baseline
        if not under:
            self.streak, self.streak_start = 0, None
            return
        if self.streak == 0:
            # Lightning's global step at a validation counts the updates done (as curves.py's
            # solved_step: the first validation under the threshold, after that many updates).
            self.streak_start = int(trainer.global_step)
        self.streak += 1
        if self.streak >= self.consecutive:
            self.stopped = True
            trainer.should_stop = True

    def record(self) -> dict[str, Any]:
        """results.json's ``solved`` field."""
        return {"step": self.streak_start if self.streak >= (self.consecutive or 1) else None,
                "stopped_early": self.stopped, "below": self.below,
                "consecutive": self.consecutive,
                "rule": (f"stop after {self.consecutive} validations in a row with val/loss < "
                         f"{self.below:g} x baseline/loss")}
