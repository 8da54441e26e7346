"""Stage tasks: prediction-layer distillation of a student, and the same student without distillation."""

from __future__ import annotations

import sys

from prefect import task

from distill.artifacts import StageResult, resolve_root
from distill.config import DistillStageConfig, RunConfig
from distill.stages import prediction
from distill.stages.evaluate import task_metric_name
from tasks.monitoring import PrefectTrainingMonitor, publish_stage_summary
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage


def _stage_of(config: RunConfig, name: str) -> DistillStageConfig:
    return next(stage for stage in config.stages if stage.name == name)


def _spec(name: str, stage_name: str, what: str) -> StageSpec:
    return StageSpec(
        name=name,
        modules=("distill.stages.prediction",),
        config_of=lambda config: {
            "seed": config.seed,
            "what": what,
            "stage": _stage_of(config, stage_name).model_dump(mode="json", exclude={"baseline", "min_teacher_metric"}),
        },
    )


def prediction_spec(stage_name: str) -> StageSpec:
    return _spec("distill_prediction_layer", stage_name, "distilled")


def baseline_spec(stage_name: str) -> StageSpec:
    return _spec("train_baseline", stage_name, "baseline")


@task(name="distill_prediction_layer", task_run_name="distill-{label}", **STAGE_TASK_OPTIONS)
def distill_prediction_layer(
    config: RunConfig, teacher: StageResult, label: str, teacher_metric: float | None = None
) -> StageResult:
    """Distil `teacher` into the student of stage `label` on softened outputs (Hinton), resuming after a crash."""
    stage = _stage_of(config, label)
    spec = prediction_spec(label)
    prediction.check_teacher_quality(
        task_metric_name(config), teacher_metric, stage.min_teacher_metric, teacher.model_path or teacher.uri
    )
    slug = f"distill-{label}"
    result = run_stage(
        spec,
        config,
        lambda directory: prediction.distill_prediction_layer(
            config,
            stage,
            teacher.model_path,
            teacher.manifest_sha256,
            directory,
            logits_root=resolve_root(config.artifact_root) / "teacher_logits",
            callbacks=[PrefectTrainingMonitor(slug)],
            show_progress=sys.stderr.isatty(),
        ),
        upstream={"teacher": teacher},
        extra=label,
    )
    publish_stage_summary(slug, f"Prediction-layer distillation: {label}", result)
    return result


@task(name="train_baseline", task_run_name="baseline-{label}", **STAGE_TASK_OPTIONS)
def train_baseline(config: RunConfig, teacher: StageResult, label: str) -> StageResult:
    """The stage's student trained without distillation (same init, data and schedule), for the lift."""
    stage = _stage_of(config, label)
    slug = f"baseline-{label}"
    result = run_stage(
        baseline_spec(label),
        config,
        lambda directory: prediction.train_baseline(
            config,
            stage,
            teacher.model_path,
            directory,
            callbacks=[PrefectTrainingMonitor(slug)],
            show_progress=sys.stderr.isatty(),
        ),
        upstream={"teacher": teacher},
        extra=label,
    )
    publish_stage_summary(slug, f"Baseline without distillation: {label}", result)
    return result
