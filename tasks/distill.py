"""Stage tasks for one student: intermediate-layer and prediction-layer distillation, and its no-KD baseline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task

from distill.config import RunConfig
from distill.stages.identity import StageId, Step
from distill.stages.inputs import BaselineInput, IntermediateInput, PredictionInput, StudentStepInput
from distill.stages.plan import plan_baseline, plan_intermediate, plan_prediction, selection_metric, stage_config
from distill.store.artifacts import StageDirectory, StageResult
from tasks.monitoring import TrainingMonitoring, publish_stage_summary, stage_slug
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage

# The stage bodies (distill.stages.intermediate, .prediction) are imported inside the tasks, which Prefect
# calls only to compute: a fully cached run never loads torch's model classes or the Trainer.

# A step's input holds only the config that step reads, so e.g. a new temperature leaves the baseline cached.
INTERMEDIATE = StageSpec(plan_intermediate, IntermediateInput)
PREDICTION = StageSpec(plan_prediction, PredictionInput)
BASELINE = StageSpec(plan_baseline, BaselineInput)


def _run_step(
    inputs: StudentStepInput,
    config: RunConfig,
    step: Step,
    title: str,
    body: Callable[[StageDirectory, dict[str, Any]], dict[str, Any]],
) -> StageResult:
    """What every student step shares: the cached stage run with training monitoring, then its summary."""
    # Artifact keys follow the task run's name (the stage's slug: distill-<stage>, or distill-<stage>-trial-<n>
    # for a sweep trial), so trials never overwrite one another's.
    slug = stage_slug(StageId(step, inputs.stage))
    monitoring = TrainingMonitoring(config, slug)

    def compute(directory: StageDirectory) -> dict[str, Any]:
        with monitoring.training(directory) as options:
            return body(directory, options)

    result = run_stage(inputs, config.artifact_root, compute)
    monitoring.publish()
    publish_stage_summary(slug, f"{title}: {inputs.stage}", result)
    return result


def _check_teacher(config: RunConfig, label: str, teacher: StageResult, evaluation: StageResult | None) -> None:
    # On validation when the run has it: eval is the test set, which nothing is selected on.
    key, metric = selection_metric(config)
    value = evaluation.metrics.get(key) if evaluation is not None else None
    threshold = stage_config(config, label).min_teacher_metric
    from distill.stages import prediction

    prediction.check_teacher_quality(metric, value, threshold, teacher.model_path or teacher.uri)


@task(name=INTERMEDIATE.name, **STAGE_TASK_OPTIONS)
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
    from distill.stages import intermediate  # here: a cached run never loads the training code

    _check_teacher(config, label, teacher, teacher_evaluation)
    inputs = INTERMEDIATE.inputs(dict(config=config, teacher=teacher, label=label, augmented=augmented))
    return _run_step(
        inputs,
        config,
        "intermediate",
        "Intermediate-layer distillation",
        lambda directory, monitoring: intermediate.distill_intermediate_layers(inputs, directory, **monitoring),
    )


@task(name=PREDICTION.name, **STAGE_TASK_OPTIONS)
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
    from distill.stages import prediction  # here: a cached run never loads the training code

    _check_teacher(config, label, teacher, teacher_evaluation)
    inputs = PREDICTION.inputs(
        dict(config=config, teacher=teacher, label=label, student_init=student_init, augmented=augmented)
    )
    return _run_step(
        inputs,
        config,
        "distill",
        "Prediction-layer distillation",
        lambda directory, monitoring: prediction.distill_prediction_layer(inputs, directory, **monitoring),
    )


@task(name=BASELINE.name, **STAGE_TASK_OPTIONS)
def train_baseline(config: RunConfig, teacher: StageResult, label: str) -> StageResult:
    """The stage's student trained without distillation (same init, data and schedule), for the lift."""
    from distill.stages import prediction  # here: a cached run never loads the training code

    inputs = BASELINE.inputs(dict(config=config, teacher=teacher, label=label))
    return _run_step(
        inputs,
        config,
        "baseline",
        "Baseline without distillation",
        lambda directory, monitoring: prediction.train_baseline(inputs, directory, **monitoring),
    )
