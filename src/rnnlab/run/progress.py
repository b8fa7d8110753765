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

The bar stays one line in the terminal (issue 39, item 2). Lightning's metrics column writes every
metric (``v_num: 6xy_ train/loss: 0.217 val/loss: ...``) and Rich wraps it over 2-4 lines of a
100-column terminal; here the column shows only the metrics that fit beside the other columns,
the headline first (the checkpoint's monitor, ``val/loss``; then ``train/loss``; then the rest in
Lightning's order), with 3 significant digits (``.3f`` printed a solved run's 0.000128 as 0.000).
``v_num`` (the logger's version: the run dir names the run) is left out. The bar itself gives way
down to ``MIN_BAR`` columns before a metric is dropped; no other column is ever wrapped (Rich
shrank the time column beside the bar and wrapped it onto a second line).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import (
    CustomBarColumn,
    MetricsTextColumn,
    RichProgressBarTheme,
)

__all__ = ["ProgressBar", "fitting_metrics"]

MIN_BAR = 10  # the bar's columns kept before a metric is dropped
FORMAT = ".3g"


def ranked(names: Iterable[str], headline: str | None) -> list[str]:
    """The metric names in the order the bar shows them: the headline, train/loss, the rest."""
    names = [n for n in names if n != "v_num"]
    first = [n for n in (headline, "train/loss") if n in names]
    return list(dict.fromkeys([*first, *names]))


def fitting_metrics(metrics: Mapping[str, object], width: int, headline: str | None = None,
                    delimiter: str = " ", fmt: str = FORMAT) -> str:
    """``name: value`` of the metrics that fit in ``width`` columns, in :func:`ranked` order: a
    metric that does not fit is left out (a shorter one after it may still fit)."""
    shown: list[str] = []
    used = 0
    for name in ranked(metrics, headline):
        value = metrics[name]
        if not isinstance(value, str):
            try:
                value = f"{value:{fmt}}"
            except (TypeError, ValueError):
                value = str(value)
        text = f"{name}: {value}"
        need = len(text) + (len(delimiter) if shown else 0)
        if used + need <= width:
            shown.append(text)
            used += need
    return delimiter.join(shown)


class _FittingMetrics(MetricsTextColumn):
    """Lightning's metrics column, cut to the terminal's width left by the other columns."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._task = None

    def _budget(self, task) -> int:
        from rich.measure import Measurement

        bar = self._trainer.progress_bar_callback
        console = bar.progress.console
        used = 0
        columns = [c for c in bar.progress.columns if c is not self]
        for column in columns:
            if isinstance(column, CustomBarColumn):
                used += MIN_BAR
            else:
                used += Measurement.get(console, console.options, column(task)).maximum
        return console.width - used - len(columns)  # a space between columns

    def render(self, task):
        self._task = task  # Lightning's render picks the task; the text fits beside it
        return super().render(task)

    def _generate_metrics_texts(self):
        headline = _headline(self._trainer)
        yield fitting_metrics(self._metrics, self._budget(self._task), headline,
                              self._text_delimiter, self._metrics_format)


def _headline(trainer) -> str | None:
    checkpoint = getattr(trainer, "checkpoint_callback", None)
    return getattr(checkpoint, "monitor", None) or "val/loss"


class ProgressBar(RichProgressBar):
    """RichProgressBar that redraws at most ``refresh_rate`` times a second, in the loop's thread.
    Every other argument is RichProgressBar's."""

    def __init__(self, refresh_rate: int = 10, theme: RichProgressBarTheme | None = None,
                 **kwargs):
        super().__init__(refresh_rate=refresh_rate,
                         theme=theme or RichProgressBarTheme(metrics_format=FORMAT), **kwargs)
        self._next_draw = 0.0
        self._transient = False  # the next stop leaves nothing behind (see on_test_end)

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics

    def _init_progress(self, trainer) -> None:
        fresh = self.progress is None or self._progress_stopped
        super()._init_progress(trainer)
        if fresh and self.progress is not None and self._metric_component is not None:
            old = self._metric_component  # the metrics column, cut to the terminal's width
            self._metric_component = _FittingMetrics(trainer, old._style, old._text_delimiter,
                                                     old._metrics_format)
            self.progress.columns = tuple(self._metric_component if c is old else c
                                          for c in self.progress.columns)
            from rich.table import Column

            for column in self.progress.columns:  # only the bar gives way to the metrics
                if not isinstance(column, CustomBarColumn):
                    column._table_column = Column(no_wrap=True)
        live = getattr(self.progress, "live", None)
        thread = getattr(live, "_refresh_thread", None)
        if thread is not None:  # no second thread: refresh() below draws
            thread.stop()
            thread.join()
            live._refresh_thread = None
            live.auto_refresh = False

    def on_test_end(self, trainer, pl_module) -> None:
        """In a multirun the finished test bar goes (the job's report line follows): a sweep's
        job prints its training bar and its report, not a third bar (nor a blank line)."""
        from rnnlab.config.hydra_runtime import in_multirun

        self._transient = self.test_progress_bar_id is not None and in_multirun()

    def _stop_progress(self) -> None:
        if getattr(self, "_transient", False) and self.progress is not None:
            self._transient = False
            if not self.progress.disable:  # Progress.stop() would print the bar or a blank line
                self.progress.live.transient = True
                self.progress.live.stop()
            self._progress_stopped = True
            return
        super()._stop_progress()

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
