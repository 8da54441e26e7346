"""The terminal during `distill run`: one live line per running stage, the other log lines above them.

    finetune-teacher      ━━━━━━━━━━━━╸━━━━━━━━  step 120/400 (30%) | epoch 1.20 | loss 0.4321 | ... | ETA 2m05s
    augment-training-data ━━━━━━━━━━━━━━━━━━━━━  310/352 training units augmented (88%) | 41.0/s | ETA 1s

The stages' monitors (tasks/monitoring.py) send their progress as log records on the `distill_progress`
logger. On a terminal they drive these bars, and the per-step lines written for the Prefect UI are not
repeated; elsewhere (a pipe, a CI log) the bars are left out and those readable lines are printed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distill.redact import install_log_redaction
from distill.training.progress import PROGRESS, PROGRESS_LOGGER, STEP_LINE


class StageBars(logging.Handler):
    """A logging handler that draws progress records as rich bars and prints every other record above them."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = Console(file=stream or sys.stderr)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=16),
            TextColumn("{task.fields[text]}"),
            console=self.console,
            transient=True,  # the bars go when the run ends; the log lines above them stay
            refresh_per_second=4,
        )
        self._bars: dict[str, Any] = {}
        self._width = 0

    def __enter__(self) -> StageBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            payload = getattr(record, PROGRESS, None)
            if payload is not None:
                self._show(payload)
            elif not getattr(record, STEP_LINE, False):
                self.console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # a display problem must never end a run
            self.handleError(record)

    def _show(self, payload: dict[str, Any]) -> None:
        stage, done, total = payload["stage"], int(payload["done"]), int(payload["total"])
        if stage not in self._bars:
            if done >= total:
                return  # finished before its first bar was drawn
            self._width = max(self._width, len(stage))
            self._bars[stage] = self.progress.add_task(stage, total=total, text="")
            for name, bar in self._bars.items():  # keep the bars' columns aligned
                self.progress.update(bar, description=name.ljust(self._width))
        bar = self._bars[stage]
        self.progress.update(bar, completed=done, total=total, text=payload["text"])
        if done >= total:  # one line per *running* stage: a finished stage's summary is in the log above
            self.progress.remove_task(bar)
            del self._bars[stage]


@contextmanager
def stage_progress(stream: Any = None, *, bars: bool | None = None) -> Iterator[None]:
    """While it is open, progress records become bars (on a terminal) or are dropped (elsewhere)."""
    stream = stream or sys.stderr
    if bars is None:
        bars = stream.isatty()
    if not bars:
        yield  # the `distill_progress` logger stays below the root's WARNING level: its records go nowhere
        return
    root = logging.getLogger()
    plain = [h for h in root.handlers if isinstance(h, logging.StreamHandler) and h.stream is stream]
    handler = StageBars(stream)
    if plain:
        handler.setFormatter(plain[0].formatter)
    install_log_redaction(handler)
    progress_logger = logging.getLogger(PROGRESS_LOGGER)
    level = progress_logger.level
    progress_logger.setLevel(logging.INFO)
    for old in plain:
        root.removeHandler(old)
    root.addHandler(handler)
    try:
        with handler:
            yield
    finally:
        root.removeHandler(handler)
        for old in plain:
            root.addHandler(old)
        progress_logger.setLevel(level)
