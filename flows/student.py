"""The steps that make one student: [intermediate-layer distillation →] prediction-layer distillation."""

from __future__ import annotations

from typing import Any

from prefect.futures import PrefectFuture

from distill.config import DistillStageConfig, RunConfig
from distill.stages.identity import StageId
from flows.submitter import StageSubmitter
from tasks.distill import INTERMEDIATE, PREDICTION, distill_intermediate_layers, distill_prediction_layer


def submit_student(
    submit: StageSubmitter,
    config: RunConfig,
    stage: DistillStageConfig,
    teacher: PrefectFuture,
    *,
    augmented: PrefectFuture | None,
    gate: dict[str, Any],
    trial: int | None = None,
) -> dict[str, PrefectFuture]:
    """Submit the stage's student steps under `config`; returns their futures by step ('intermediate', 'distill').

    `trial` numbers a sweep trial: its steps are named `<step>_<stage>-trial-<n>` in the run's
    summary and the UI. `gate` carries the teacher's evaluation for `min_teacher_metric`.
    """
    steps: dict[str, PrefectFuture] = {}
    student_init = None
    if stage.intermediate_layer is not None:  # TinyBERT: internals first, then soft targets
        student_init = steps["intermediate"] = submit(
            StageId("intermediate", stage.name, trial),
            distill_intermediate_layers,
            INTERMEDIATE,
            teacher,
            label=stage.name,
            augmented=augmented,
            config=config,
            **gate,
        )
    steps["distill"] = submit(
        StageId("distill", stage.name, trial),
        distill_prediction_layer,
        PREDICTION,
        teacher,
        label=stage.name,
        student_init=student_init,
        augmented=augmented,
        config=config,
        **gate,
    )
    return steps
