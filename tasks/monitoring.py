"""What a person watching the Prefect UI sees: per-step training logs, live progress, stage summaries."""

from __future__ import annotations

import json
import math
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import TaskRunContext
from transformers import TrainerCallback

from distill.stages.identity import StageId
from distill.store.artifacts import StageResult


class ProgressArtifact:
    """A Prefect progress artifact sent at most once per whole percent: cheap even for 100k-step runs."""

    def __init__(self, key: str, description: str, percent: float = 0.0) -> None:
        self.id = create_progress_artifact(progress=float(math.floor(percent)), key=key, description=description)
        self._shown = math.floor(percent)

    def update(self, percent: float) -> None:
        whole = math.floor(percent)
        if whole > self._shown:
            self._shown = whole
            update_progress_artifact(self.id, progress=float(whole))


class PrefectTrainingMonitor(TrainerCallback):
    """Sends each Trainer log step to the task run's logger and keeps a progress artifact current."""

    def __init__(self, stage_slug: str) -> None:
        self.stage_slug = stage_slug
        self.logger = get_run_logger()
        self.progress: ProgressArtifact | None = None

    def _percent(self, state: Any) -> float:
        return 100.0 * state.global_step / state.max_steps if state.max_steps else 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress = ProgressArtifact(
            f"{self.stage_slug}-progress",
            f"{self.stage_slug}: training progress (% of {state.max_steps} steps)",
            self._percent(state),
        )
        if state.global_step:
            self.logger.info("training: %d steps, resumed at step %d", state.max_steps, state.global_step)
        else:
            self.logger.info("training: %d steps, starting at step 0", state.max_steps)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        shown = {k: round(v, 6) if isinstance(v, float) else v for k, v in (logs or {}).items()}
        self.logger.info("step %d/%d %s", state.global_step, state.max_steps, json.dumps(shown))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self._percent(state))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(100.0)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    return value if isinstance(value, int | str | bool) or value is None else json.dumps(value)


class PrefectProgress:
    """A `(done, total)` callback for non-training work: a progress artifact, and a log line every 10%."""

    def __init__(self, stage_slug: str, what: str) -> None:
        self.stage_slug, self.what = stage_slug, what
        self.logger = get_run_logger()
        self.progress: ProgressArtifact | None = None
        self._last_logged = -10

    def __call__(self, done: int, total: int) -> None:
        percent = 100.0 * done / total if total else 100.0
        if self.progress is None:
            self.progress = ProgressArtifact(f"{self.stage_slug}-progress", f"{self.stage_slug}: % of {self.what}")
        self.progress.update(percent)
        if int(percent) // 10 * 10 > self._last_logged:
            self._last_logged = int(percent) // 10 * 10
            self.logger.info("%s: %d/%d %s (%.0f%%)", self.stage_slug, done, total, self.what, percent)


def stage_slug(stage: StageId) -> str:
    """The slug this task run publishes under: its own name, which the flow sets to the stage's slug (a sweep
    trial's included); `stage`'s slug when the task runs bare, under Prefect's default name."""
    context = TaskRunContext.get()
    name = context.task_run.name if context is not None else ""
    return name if name.startswith(stage.slug) else stage.slug


def publish_stage_summary(spec_slug: str, title: str, result: StageResult, status: str = "completed") -> None:
    """A table artifact of the stage's metrics and a markdown artifact summarising it."""
    rows = [{"metric": name, "value": _cell(value)} for name, value in sorted(result.metrics.items())]
    create_table_artifact(table=rows, key=f"{spec_slug}-metrics", description=f"{title}: metrics")
    lines = [
        f"# {title}",
        "",
        f"- status: **{status}**",
        f"- output: `{result.uri}`",
        f"- cache key: `{result.key}`",
        f"- manifest sha256: `{result.manifest_sha256[:16]}…`",
    ]
    if result.model_path:
        lines.append(f"- model: `{result.model_path}`")
    headline = ("accuracy", "exact", "f1", "train_loss", "latency_p50_ms", "replaced_share", "answers_kept")
    headline = [k for k in headline if k in result.metrics]
    if headline:
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(result.metrics[k])} |" for k in headline]
    create_markdown_artifact(markdown="\n".join(lines), key=f"{spec_slug}-summary", description=title)
