"""The terminal during a run: a live line per running stage, the log lines above, the per-step lines not repeated."""

from __future__ import annotations

import io
import logging

from distill.training.progress import PROGRESS, PROGRESS_LOGGER, STEP_LINE
from distill_cli.progress import StageBars, stage_progress


def _progress(stage: str, done: int, total: int, text: str) -> None:
    payload = {"stage": stage, "done": done, "total": total, "text": text}
    logging.getLogger(PROGRESS_LOGGER).info("%s: %s", stage, text, extra={PROGRESS: payload})


def test_each_running_stage_gets_one_bar_and_a_finished_one_goes() -> None:
    out = io.StringIO()
    bars = StageBars(out)
    bars.console.force_terminal = True  # rich draws bars for terminals only; this StringIO stands for one
    record = logging.LogRecord
    with bars:
        for stage, done in [("finetune-teacher", 10), ("augment-training-data", 3), ("finetune-teacher", 20)]:
            payload = {"stage": stage, "done": done, "total": 100, "text": f"step {done}/100 | ETA 1m00s"}
            bars.emit(_record(record, "progress", {PROGRESS: payload}))
        shown = {task.description.strip(): task.completed for task in bars.progress.tasks}
        assert shown == {"finetune-teacher": 20, "augment-training-data": 3}
        drawn = _drawn(bars)
        assert len(drawn) == 2 and "finetune-teacher" in drawn[0] and "step 20/100 | ETA 1m00s" in drawn[0], drawn
        bars.emit(_record(record, "finetune-teacher: step 20/100 | loss 0.1", {STEP_LINE: True}))
        bars.emit(_record(record, "report written to /tmp/x", {}))
        done = {"stage": "finetune-teacher", "done": 100, "total": 100, "text": "done"}
        bars.emit(_record(record, "progress", {PROGRESS: done}))
        assert [task.description.strip() for task in bars.progress.tasks] == ["augment-training-data"]
    text = out.getvalue()
    assert "report written to /tmp/x" in text
    assert "loss 0.1" not in text  # the per-step line is the bar's job on a terminal


def _drawn(bars: StageBars) -> list[str]:
    """The bars' lines as the terminal would show them now."""
    from rich.console import Console

    screen = Console(file=io.StringIO(), width=120, force_terminal=False)
    screen.print(bars.progress.get_renderable())
    return [line for line in screen.file.getvalue().splitlines() if line.strip()]


def _record(factory: type[logging.LogRecord], message: str, extra: dict) -> logging.LogRecord:
    record = factory("prefect.task_runs", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_off_a_terminal_progress_records_are_dropped_and_log_lines_kept() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with stage_progress(out, bars=False):
            _progress("finetune-teacher", 5, 10, "step 5/10")
            logging.getLogger("distill").warning("a warning still shows")
    finally:
        root.removeHandler(handler)
    assert "step 5/10" not in out.getvalue()
    assert "a warning still shows" in out.getvalue()


def test_on_a_terminal_the_plain_handler_is_replaced_for_the_run_and_restored() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with stage_progress(out, bars=True):
            assert handler not in root.handlers
            assert any(isinstance(h, StageBars) for h in root.handlers)
            _progress("distill-tiny-small", 5, 10, "step 5/10 | ETA 3s")
        assert handler in root.handlers
        assert not any(isinstance(h, StageBars) for h in root.handlers)
    finally:
        root.removeHandler(handler)
    assert logging.getLogger(PROGRESS_LOGGER).level == logging.NOTSET
