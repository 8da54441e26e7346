"""What a person watching the Prefect UI sees: per-step training logs, live progress, stage summaries, and
where a stage's curves went in TensorBoard and MLflow."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import TaskRunContext
from prefect.runtime import flow_run
from transformers import TrainerCallback

from distill.config import RunConfig
from distill.redact import redact_text
from distill.stages.identity import StageId
from distill.store.artifacts import StageDirectory, StageResult
from distill.training.progress import (
    PROGRESS,
    PROGRESS_LOGGER,
    STEP_LINE,
    TrainingPace,
    format_duration,
    progress_text,
)

if TYPE_CHECKING:
    from distill.training.tracking import StageTrackers


class ProgressArtifact:
    """A Prefect progress artifact sent at most once per whole percent: cheap even for 100k-step runs."""

    def __init__(self, key: str, description: str, percent: float = 0.0) -> None:
        self.id = create_progress_artifact(progress=float(math.floor(percent)), key=key, description=description)
        self._shown = math.floor(percent)

    def update(self, percent: float, describe: Callable[[], str] | None = None) -> None:
        """`describe` is called only when the artifact is sent (once per percent), not at every step."""
        whole = math.floor(percent)
        if whole > self._shown:
            self._shown = whole
            update_progress_artifact(self.id, progress=float(whole), description=describe() if describe else None)


# Progress for the terminal: `distill run` draws one bar per running stage from these records (and drops
# them when its output is not a terminal); the readable lines logged at each Trainer log step go to the UI.
terminal_progress = logging.getLogger(PROGRESS_LOGGER)
_TERMINAL_INTERVAL_S = 0.5


class _TerminalThrottle:
    def __init__(self) -> None:
        self._last = 0.0

    def send(self, stage: str, done: int, total: int, describe: Callable[[], str], *, force: bool = False) -> None:
        """`describe` is called only for a record that is sent (twice a second at most), not at every step."""
        now = time.monotonic()
        if force or now - self._last >= _TERMINAL_INTERVAL_S:
            self._last = now
            text = describe()
            payload = {"stage": stage, "done": done, "total": total, "text": text}
            terminal_progress.info("%s: %s", stage, text, extra={PROGRESS: payload})


class PrefectTrainingMonitor(TrainerCallback):
    """Each Trainer log step as a readable line in the task run's logs; the progress artifact and the
    terminal's bar kept current (step, epoch, loss, samples/s, ETA)."""

    def __init__(self, stage_slug: str) -> None:
        self.stage_slug = stage_slug
        self.logger = get_run_logger()
        self.progress: ProgressArtifact | None = None
        self.pace: TrainingPace | None = None
        self.last_logs: dict[str, Any] = {}
        self.terminal = _TerminalThrottle()

    def _percent(self, state: Any) -> float:
        return 100.0 * state.global_step / state.max_steps if state.max_steps else 0.0

    def _text(self, state: Any, detail: bool = True) -> str:
        assert self.pace is not None
        return progress_text(
            state.global_step, state.max_steps, self.pace, self.last_logs, epoch=state.epoch, detail=detail
        )

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        samples_per_step = args.train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
        self.pace = TrainingPace(samples_per_step, start_step=state.global_step)
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
        if self.pace is None:
            return
        logs = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
        if "train_runtime" in logs:  # the Trainer's closing summary, not a step
            self.logger.info(
                "%s: trained %d steps in %s (mean loss %s)",
                self.stage_slug,
                state.global_step,
                format_duration(logs["train_runtime"]),
                f"{logs['train_loss']:.4f}" if "train_loss" in logs else "-",
            )
            return
        self.last_logs = logs
        self.logger.info("%s: %s", self.stage_slug, self._text(state), extra={STEP_LINE: True})

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is None or self.pace is None:
            return
        self.progress.update(self._percent(state), lambda: f"{self.stage_slug}: {self._text(state)}")
        self.terminal.send(self.stage_slug, state.global_step, state.max_steps, lambda: self._text(state, detail=False))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None and self.pace is not None:
            self.progress.update(100.0, lambda: f"{self.stage_slug}: {self._text(state)}")
            self.terminal.send(self.stage_slug, state.max_steps, state.max_steps, lambda: "done", force=True)


class TrainingMonitoring:
    """What watches one stage's training: the Prefect monitor and, as the run's `tracking:` asks, TensorBoard
    and MLflow (an MLflow run per stage, tagged with this flow run's id)."""

    def __init__(self, config: RunConfig, slug: str) -> None:
        self.tracking, self.run, self.slug = config.tracking, config.name, slug
        self.trackers: StageTrackers | None = None

    @contextmanager
    def training(self, directory: StageDirectory) -> Iterator[dict[str, Any]]:
        """The options a stage body trains with (`callbacks`) while it computes `directory`; the terminal's
        progress comes from the monitor's bars, not the Trainer's tqdm."""
        # Here, not at the top: the trackers load transformers' integrations (seconds), which a cached run never needs.
        from distill.training.checkpoints import MirrorCheckpoints
        from distill.training.tracking import TrackedStage, stage_trackers

        stage = TrackedStage(self.run, self.slug, directory.path.name, flow_run_id=flow_run.get_id())
        with stage_trackers(self.tracking, stage) as trackers:
            self.trackers = trackers
            callbacks = [PrefectTrainingMonitor(self.slug), *trackers.callbacks]
            if directory.remote is not None:  # checkpoints go to the object store too: a retry elsewhere resumes
                callbacks.append(MirrorCheckpoints(directory.checkpoint_saved))
            # A stage training on several devices runs its Trainer in torchrun's processes, out of these
            # callbacks' sight: its ranks' output lines (rank 0's progress) come to the task run's log instead.
            logger = get_run_logger()
            yield {"callbacks": callbacks, "output": lambda line: logger.info("%s: %s", self.slug, line)}

    def publish(self) -> None:
        """Where the stage's curves went: a link to its MLflow run, its TensorBoard folder. A cached stage trained
        nothing and has none."""
        if self.trackers is None:
            return
        logger = get_run_logger()
        folder = self.trackers.tensorboard_dir
        # Only a folder the stage wrote events to: a stage trained elsewhere (several devices) wrote none.
        if folder is not None and folder.is_dir() and any(path.is_file() for path in folder.rglob("*")):
            logger.info("TensorBoard events in %s", folder)
            markdown = f"# TensorBoard: {self.slug}\n\nEvents in `{folder}`.\n\n`tensorboard --logdir {folder}`"
            create_markdown_artifact(
                markdown=markdown, key=f"{self.slug}-tensorboard", description=f"{self.slug}: TensorBoard events"
            )
        run = self.trackers.mlflow_run
        if run is None:
            return
        uri = redact_text(run.tracking_uri)
        description = f"{self.slug}: MLflow run {run.run_id} (experiment {run.experiment_id}) at {uri}"
        logger.info("%s", description)
        if run.ui_url is not None:
            create_link_artifact(
                link=run.ui_url, link_text=f"MLflow run {self.slug}", key=f"{self.slug}-mlflow", description=description
            )
        else:  # a local store has no UI at a known address: say how to open one
            markdown = f"# MLflow: {self.slug}\n\n{description}\n\n`mlflow ui --backend-store-uri {uri}`"
            create_markdown_artifact(markdown=markdown, key=f"{self.slug}-mlflow", description=description)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    return value if isinstance(value, int | str | bool) or value is None else json.dumps(value)


class PrefectProgress:
    """A `(done, total)` callback for non-training work: a progress artifact, a log line every 10%, and the
    terminal's bar."""

    def __init__(self, stage_slug: str, what: str) -> None:
        self.stage_slug, self.what = stage_slug, what
        self.logger = get_run_logger()
        self.progress: ProgressArtifact | None = None
        self.pace: TrainingPace | None = None
        self._last_logged = -10
        self.terminal = _TerminalThrottle()

    def _text(self, done: int, total: int) -> str:
        assert self.pace is not None
        rate = self.pace.samples_per_second(done)
        left = self.pace.seconds_left(done, total)
        return (
            f"{done}/{total} {self.what} ({math.floor(100 * done / total) if total else 100}%) | "
            f"{f'{rate:.1f}/s' if rate is not None else '-/s'} | "
            f"ETA {format_duration(left) if left is not None else '-'}"
        )

    def __call__(self, done: int, total: int) -> None:
        percent = 100.0 * done / total if total else 100.0
        if self.progress is None:
            self.pace = TrainingPace(samples_per_step=1, start_step=done)
            self.progress = ProgressArtifact(f"{self.stage_slug}-progress", f"{self.stage_slug}: % of {self.what}")
        self.progress.update(percent, lambda: f"{self.stage_slug}: {self._text(done, total)}")
        self.terminal.send(self.stage_slug, done, total, lambda: self._text(done, total), force=done >= total)
        if int(percent) // 10 * 10 > self._last_logged:
            self._last_logged = int(percent) // 10 * 10
            self.logger.info("%s: %s", self.stage_slug, self._text(done, total), extra={STEP_LINE: True})


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
