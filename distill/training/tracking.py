"""Experiment tracking: a training stage's logged metrics in TensorBoard and/or MLflow, as `tracking:` asks.

These are transformers' own integrations (what `report_to=["tensorboard", "mlflow"]` would add), subclassed so
that every setting is an argument. As the Trainer builds them they read process-wide state: TensorBoardCallback
its folder from TENSORBOARD_LOGGING_DIR (transformers 5 dropped `logging_dir`); MLflowCallback, at setup, the
MLFLOW_* variables (its tags from MLFLOW_TAGS), then it logs through mlflow's fluent API, whose tracking URI and
experiment are globals of the process. The flow runs independent stages in threads of one process, and a
stage's folder and tags are its own. Their trainings take turns on a process lock (tasks/compute.py), so
setting os.environ inside that turn would work today, but only while every training holds the lock, and it would
leave the values behind for the rest of the process. Here each tracker holds its own folder, or its own
`MlflowClient`, run id and tags, nothing process-wide is read or set, and the Trainer's `report_to` stays "none".

Tracking observes and changes nothing a stage computes: no stage input holds it, no cache key depends on it, and
nothing is written into a stage directory (whose files are its content hash).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from transformers import TrainerCallback
from transformers.integrations import MLflowCallback, TensorBoardCallback

from distill.config import TrackingConfig
from distill.errors import first_line

# Tags on every MLflow run, so a run can be found from the stage, the flow run or the stage directory.
RUN_TAG = "distill.run"  # the run config's name
STAGE_TAG = "distill.stage"  # the stage's slug, as the Prefect task run is named
STAGE_KEY_TAG = "distill.stage_key"  # the stage directory's name: <artifact_root>/<stage kind>/<key>
FLOW_RUN_TAG = "distill.flow_run_id"  # the orchestrator's flow run (Prefect's id), when there is one

log = logging.getLogger("distill")


@dataclass(frozen=True)
class TrackedStage:
    """What names one computation of a stage to the trackers."""

    run: str  # the run config's name
    stage: str  # the stage's slug (distill-tiny-small, or distill-tiny-small-trial-0 in a sweep)
    key: str  # the stage directory's name
    flow_run_id: str | None = None


@dataclass(frozen=True)
class MLflowRun:
    """Where a stage's MLflow run lives."""

    tracking_uri: str
    experiment_id: str
    run_id: str

    @property
    def ui_url(self) -> str | None:
        """The run's page in the MLflow UI, for a server URI; None for a local store (no UI at a known address)."""
        parts = urlsplit(self.tracking_uri)
        if parts.scheme not in ("http", "https"):
            return None
        # Without credentials: a link is shown to everyone who sees the flow run, and the browser asks for its own.
        base = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl().rstrip("/")
        return f"{base}/#/experiments/{self.experiment_id}/runs/{self.run_id}"


class TensorBoardTracker(TensorBoardCallback):
    """transformers' TensorBoard integration writing to `log_dir`, never to TENSORBOARD_LOGGING_DIR's folder.

    A resumed stage continues its curves: what an interrupted attempt logged after the checkpoint it resumes
    from is purged (TensorBoard hides it), so each step keeps one value, the one in the final model's history.
    """

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.logging_dir = str(log_dir)
        self._purge_step: int | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # By now the Trainer has restored a resumed run's state: training goes on from the step after global_step
        # (whose own loss the earlier attempt logged, as it logs at every checkpoint).
        self._purge_step = state.global_step + 1
        super().on_train_begin(args, state, control, **kwargs)

    def _init_summary_writer(self, args: Any) -> None:
        self.tb_writer = self._SummaryWriter(log_dir=self.logging_dir, purge_step=self._purge_step)

    def close(self) -> None:
        if self.tb_writer is not None:
            self.tb_writer.close()
            self.tb_writer = None


class MLflowTracker(MLflowCallback):
    """transformers' MLflow integration through a client of its own: one run per stage, with its name and tags.

    Logs what the stock callback logs (the training arguments and model config as params, every logged number
    as a metric at its step), but through `MlflowClient(tracking_uri)` and an explicit run id, never the fluent
    API's process-wide tracking URI, experiment and active run.
    """

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> None:
        super().__init__()  # checks that mlflow imports
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri, self.experiment, self.run_name, self.tags = tracking_uri, experiment, run_name, tags
        self.run: MLflowRun | None = None
        self._ended = False

    def setup(self, args: Any, state: Any, model: Any) -> None:
        if state.is_world_process_zero:
            experiment_id = self._experiment_id()
            created = self.client.create_run(experiment_id, run_name=self.run_name, tags=self.tags)
            self.run = MLflowRun(self.tracking_uri, experiment_id, created.info.run_id)
            self._log_params(args, model)
        self._initialized = True

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment)
        except MlflowException:  # another stage created it since (stages start concurrently)
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def _log_params(self, args: Any, model: Any) -> None:
        from mlflow.entities import Param

        params = args.to_dict()
        if getattr(model, "config", None) is not None:
            params = {**model.config.to_dict(), **params}
        # As the stock callback: values MLflow would reject as too long are left out, and batches stay in its limit.
        limit = self._MAX_PARAM_VAL_LENGTH
        kept = [Param(name, str(value)) for name, value in params.items() if len(str(value)) <= limit]
        for start in range(0, len(kept), self._MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run.run_id, params=kept[start : start + self._MAX_PARAMS_TAGS_PER_BATCH])

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any], model: Any = None, **kwargs) -> None:
        if not self._initialized:
            self.setup(args, state, model)
        if self.run is None or not logs:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(re.sub(r"[^0-9A-Za-z_\-. :/]", "_", name), float(value), now, state.global_step)
            for name, value in logs.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
        if metrics:
            try:
                self.client.log_batch(self.run.run_id, metrics=metrics)
            except Exception as exc:  # noqa: BLE001 - tracking observes; a lost MLflow server must not end training
                log.warning("MLflow: logging stopped for %s (%s); training goes on", self.run.run_id, first_line(exc))
                self.run = None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.end("FINISHED")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Checkpoints stay in the stage directory; they are not copied to MLflow."""

    def end(self, status: str) -> None:
        """Mark the run FINISHED or FAILED (once; a run never started has nothing to end)."""
        if self.run is not None and not self._ended:
            self._ended = True
            self.client.set_terminated(self.run.run_id, status=status)

    def __del__(self) -> None:
        """The stock callback ends the fluent API's active run here; this one never starts one."""


@dataclass
class StageTrackers:
    """The trackers of one stage's training: pass `callbacks` to the Trainer; read the rest afterwards."""

    callbacks: list[TrainerCallback] = field(default_factory=list)
    tensorboard_dir: Path | None = None
    mlflow: MLflowTracker | None = None

    @property
    def mlflow_run(self) -> MLflowRun | None:
        return self.mlflow.run if self.mlflow is not None else None


def tensorboard_dir(tracking: TrackingConfig, stage: TrackedStage) -> Path:
    """A folder per computation of a stage: stages never share a curve, nor do two configs of one stage."""
    assert tracking.tensorboard is not None
    return Path(tracking.tensorboard).expanduser().resolve() / stage.run / stage.stage / stage.key


@contextmanager
def stage_trackers(tracking: TrackingConfig | None, stage: TrackedStage) -> Iterator[StageTrackers]:
    """The trackers `tracking` asks for, for training `stage` inside the block.

    A block left by an exception marks the MLflow run FAILED (a finished training has marked it FINISHED).
    """
    trackers = StageTrackers()
    if tracking is None:
        yield trackers
        return
    if tracking.tensorboard is not None:
        trackers.tensorboard_dir = tensorboard_dir(tracking, stage)
        trackers.callbacks.append(TensorBoardTracker(trackers.tensorboard_dir))
    if tracking.mlflow is not None:
        tags = {RUN_TAG: stage.run, STAGE_TAG: stage.stage, STAGE_KEY_TAG: stage.key}
        if stage.flow_run_id is not None:
            tags[FLOW_RUN_TAG] = stage.flow_run_id
        trackers.mlflow = MLflowTracker(tracking.mlflow, tracking.experiment or stage.run, stage.stage, tags)
        trackers.callbacks.append(trackers.mlflow)
    try:
        yield trackers
    except BaseException:
        if trackers.mlflow is not None:
            try:
                trackers.mlflow.end("FAILED")
            except Exception:  # noqa: BLE001 - the training's own error is the one to report
                log.warning("could not mark MLflow run %s failed", trackers.mlflow.run, exc_info=True)
        raise
    finally:
        for callback in trackers.callbacks:
            if isinstance(callback, TensorBoardTracker):
                callback.close()
