"""The `tracking:` section: where each training stage's logged metrics also go (TensorBoard, MLflow).

Tracking observes training and changes nothing it computes, so no stage input holds it and no cache key
depends on it; a cached stage trains nothing and reports nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from distill.config.base import StrictModel

# The names transformers' `report_to` gives these integrations.
Tracker = Literal["tensorboard", "mlflow"]


class TrackingConfig(StrictModel):
    """Send every training stage's logged metrics (loss, learning rate, ...) to TensorBoard, MLflow or both."""

    tensorboard: str | None = Field(
        default=None,
        min_length=1,
        description="Folder for TensorBoard event files. Each stage writes to <folder>/<run name>/<stage>/<stage "
        "key>/, so stages (and two computations of one stage) never share a curve; `tensorboard --logdir <folder>`.",
    )
    mlflow: str | None = Field(
        default=None,
        min_length=1,
        description="MLflow tracking URI: a server (http://127.0.0.1:5000) or a local store (sqlite:///mlflow.db). "
        "Each stage that trains is one MLflow run, named after the stage and tagged with the Prefect flow run.",
    )
    experiment: str | None = Field(
        default=None,
        min_length=1,
        description="MLflow experiment of the runs (created if missing). Default: the run's name.",
    )

    @model_validator(mode="after")
    def _tracks_something(self) -> TrackingConfig:
        if self.tensorboard is None and self.mlflow is None:
            raise ValueError("set tensorboard (a folder), mlflow (a tracking URI) or both, or remove the section")
        if self.experiment is not None and self.mlflow is None:
            raise ValueError("experiment names an MLflow experiment: set mlflow (a tracking URI) too")
        return self

    @property
    def trackers(self) -> list[Tracker]:
        """The integrations asked for, by their `report_to` names."""
        chosen: list[Tracker] = []
        if self.tensorboard is not None:
            chosen.append("tensorboard")
        if self.mlflow is not None:
            chosen.append("mlflow")
        return chosen
