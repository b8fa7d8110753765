"""The training progress bar: Lightning's Rich bar, drawn from the training loop at most
``refresh_rate`` times a second.

Lightning's RichProgressBar redraws from a thread of its own up to ``refresh_rate`` (default 100)
times a second and updates its task and metrics (a ``.item()`` per metric) after every batch.
With steps of a few milliseconds (the quickstart's GRU: ~8 ms) that is a full redraw about every
step, beside the training thread on a 2-core machine; its batch-end hook alone cost 0.18-0.20 ms
per step (scripts/bench_step.py --hooks), 0.05-0.07 ms here. Here the bar is drawn in the
training thread (no refresh thread) and a batch end that comes sooner than 1 / refresh_rate after
the last draw is skipped; the last batch of an epoch is always drawn, so the bar ends where the
epoch did.
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import RichProgressBar

__all__ = ["ProgressBar"]


class ProgressBar(RichProgressBar):
    """RichProgressBar that redraws at most ``refresh_rate`` times a second, in the loop's thread.
    Every other argument is RichProgressBar's."""

    def __init__(self, refresh_rate: int = 10, **kwargs):
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self._next_draw = 0.0

    def _init_progress(self, trainer) -> None:
        super()._init_progress(trainer)
        live = getattr(self.progress, "live", None)
        thread = getattr(live, "_refresh_thread", None)
        if thread is not None:  # no second thread: refresh() below draws
            thread.stop()
            thread.join()
            live._refresh_thread = None
            live.auto_refresh = False

    def refresh(self, hard: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if hard or now >= self._next_draw:
            self._next_draw = now + 1.0 / self.refresh_rate
            self.progress.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last = batch_idx + 1 >= self.total_train_batches
        if (self.train_progress_bar_id is not None and not last
                and time.monotonic() < self._next_draw):
            return
        if last:
            self._next_draw = 0.0  # drawn now, whenever the previous draw was
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
