"""Stage tasks for one student: intermediate-layer and prediction-layer distillation, and its no-KD baseline."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from distill.artifacts import StageDirectory, StageResult, resolve_root
from distill.config import DistillStageConfig, RunConfig
from distill.precision import resolve_precision
from distill.stages import intermediate, prediction
from distill.stages.evaluate import selection_metric
from tasks.augment import augmented_train_file
from tasks.monitoring import PrefectTrainingMonitor, publish_stage_summary
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage


def _stage_of(config: RunConfig, name: str) -> DistillStageConfig:
    return next(stage for stage in config.stages if stage.name == name)


def _spec(name: str, module: str, stage_name: str, sections: Callable[[DistillStageConfig], dict]) -> StageSpec:
    """A step's key holds only the config that step reads, so e.g. a new temperature leaves the baseline cached."""
    return StageSpec(
        name=name,
        modules=(module,),
        config_of=lambda config: {
            "seed": config.seed,
            "precision": resolve_precision(config.precision),  # resolved: 'auto' on another machine may differ
            **sections(_stage_of(config, stage_name)),
        },
    )


def intermediate_spec(stage_name: str) -> StageSpec:
    return _spec(
        "distill_intermediate_layers",
        "distill.stages.intermediate",
        stage_name,
        lambda stage: {
            "student": stage.student.model_dump(mode="json"),
            "intermediate_layer": stage.intermediate_layer.model_dump(mode="json"),
        },
    )


def prediction_spec(stage_name: str) -> StageSpec:
    # The student's starting point is in the key through the upstream intermediate result, when there is one.
    return _spec(
        "distill_prediction_layer",
        "distill.stages.prediction",
        stage_name,
        lambda stage: {
            "student": stage.student.model_dump(mode="json"),
            "prediction_layer": stage.prediction_layer.model_dump(mode="json"),
        },
    )


def baseline_spec(stage_name: str) -> StageSpec:
    return _spec(
        "train_baseline",
        "distill.stages.prediction",
        stage_name,
        lambda stage: {
            "student": stage.student.model_dump(mode="json"),
            "training": stage.prediction_layer.training.model_dump(mode="json"),
        },
    )


def _monitoring(slug: str) -> dict[str, Any]:
    return {"callbacks": [PrefectTrainingMonitor(slug)], "show_progress": sys.stderr.isatty()}


def _run_step(
    spec: StageSpec,
    config: RunConfig,
    label: str,
    kind: str,
    title: str,
    body: Callable[[StageDirectory, dict[str, Any]], dict[str, Any]],
    upstream: dict[str, StageResult],
) -> StageResult:
    """What every student step shares: the cached stage run with training monitoring, then its summary."""
    # Artifact keys: intermediate-<stage>, distill-<stage>, baseline-<stage>; a sweep trial's task run is named
    # <kind>-<stage>-trial-<n>, and its artifacts follow that name, so trials never overwrite one another's.
    context = TaskRunContext.get()
    slug = context.task_run.name if context is not None else f"{kind}-{label}"
    result = run_stage(
        spec, config, lambda directory: body(directory, _monitoring(slug)), upstream=upstream, extra=label
    )
    publish_stage_summary(slug, f"{title}: {label}", result)
    return result


def _check_teacher(
    config: RunConfig, stage: DistillStageConfig, teacher: StageResult, evaluation: StageResult | None
) -> None:
    # On validation when the run has it: eval is the test set, which nothing is selected on.
    key, label = selection_metric(config)
    value = evaluation.metrics.get(key) if evaluation is not None else None
    prediction.check_teacher_quality(label, value, stage.min_teacher_metric, teacher.model_path or teacher.uri)


@task(name="distill_intermediate_layers", task_run_name="intermediate-{label}", **STAGE_TASK_OPTIONS)
def distill_intermediate_layers(
    config: RunConfig,
    teacher: StageResult,
    label: str,
    teacher_evaluation: StageResult | None = None,
    augmented: StageResult | None = None,
) -> StageResult:
    """TinyBERT step one: the student of stage `label` learns `teacher`'s embeddings, hidden states, attentions.

    `augmented` is the augment stage's result when the run augments: training uses its data.
    `teacher_evaluation` (the teacher's evaluate result) is checked against `min_teacher_metric`;
    it is not part of the cache key.
    """
    stage = _stage_of(config, label)
    _check_teacher(config, stage, teacher, teacher_evaluation)
    return _run_step(
        intermediate_spec(label),
        config,
        label,
        "intermediate",
        "Intermediate-layer distillation",
        lambda directory, monitoring: intermediate.distill_intermediate_layers(
            config, stage, teacher.model_path, directory, train_file=augmented_train_file(augmented), **monitoring
        ),
        upstream={"teacher": teacher} | ({"augmented": augmented} if augmented else {}),
    )


@task(name="distill_prediction_layer", task_run_name="distill-{label}", **STAGE_TASK_OPTIONS)
def distill_prediction_layer(
    config: RunConfig,
    teacher: StageResult,
    label: str,
    teacher_evaluation: StageResult | None = None,
    student_init: StageResult | None = None,
    augmented: StageResult | None = None,
) -> StageResult:
    """Distil `teacher` into the student of stage `label` on softened outputs (Hinton), resuming after a crash.

    `student_init` is the intermediate-layer step's result when the stage runs both steps; it
    is part of the cache key, so a new step one means a new step two.
    """
    stage = _stage_of(config, label)
    _check_teacher(config, stage, teacher, teacher_evaluation)
    return _run_step(
        prediction_spec(label),
        config,
        label,
        "distill",
        "Prediction-layer distillation",
        lambda directory, monitoring: prediction.distill_prediction_layer(
            config,
            stage,
            teacher.model_path,
            teacher.manifest_sha256,
            directory,
            logits_root=resolve_root(config.artifact_root) / "teacher_logits",
            student_init=student_init.model_path if student_init else None,
            train_file=augmented_train_file(augmented),
            **monitoring,
        ),
        upstream={"teacher": teacher}
        | ({"student_init": student_init} if student_init else {})
        | ({"augmented": augmented} if augmented else {}),
    )


@task(name="train_baseline", task_run_name="baseline-{label}", **STAGE_TASK_OPTIONS)
def train_baseline(config: RunConfig, teacher: StageResult, label: str) -> StageResult:
    """The stage's student trained without distillation (same init, data and schedule), for the lift."""
    stage = _stage_of(config, label)
    return _run_step(
        baseline_spec(label),
        config,
        label,
        "baseline",
        "Baseline without distillation",
        lambda directory, monitoring: prediction.train_baseline(
            config, stage, teacher.model_path, directory, **monitoring
        ),
        upstream={"teacher": teacher},
    )
