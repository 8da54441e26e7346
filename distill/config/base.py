"""The base of every config section, kept apart so section modules (e.g. `distill.config.augment`)
can define their models without importing the whole run config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

from distill.redact import redact


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_serializer(mode="wrap")
    def _redact_json(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # JSON is the form that leaves the process: files (manifests, `distill validate`), Prefect's API
        # and UI (flow parameters), logs. There secrets are "***" (distill.redact). Python-mode dumps keep
        # the real values: data fingerprints hash them, so cache keys still tell two sources apart.
        data = handler(self)
        return redact(data) if info.mode_is_json() else data


# The headline metric of each task: what reports lead with, and what choices are made on by default.
TASK_METRICS = {"qa": "f1", "classification": "accuracy"}


def task_metric(task: str) -> str:
    return TASK_METRICS[task]


def repeated(values: list[str]) -> list[str]:
    """The values that occur more than once in `values`, each named once, sorted: what a 'repeat' error lists."""
    return sorted({value for value in values if values.count(value) > 1})
