"""Stage task: evaluate a model (task metric, parameters, size, latency, throughput); validate one (a sweep trial)."""

from __future__ import annotations

from prefect import task

from distill.config import RunConfig
from distill.errors import DistillError
from distill.stages.identity import evaluation
from distill.stages.inputs import EvaluateInput, ValidateInput
from distill.stages.plan import plan_evaluate, plan_validate
from distill.store.artifacts import StageResult
from tasks.monitoring import publish_stage_summary, stage_slug
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage

EVALUATE = StageSpec(plan_evaluate, EvaluateInput)
# A sweep trial's score: the validation set only, no test set and no timing.
VALIDATE = StageSpec(plan_validate, ValidateInput)


def _has_model(model: StageResult) -> None:
    if model.model_path is None:
        raise DistillError(f"stage '{model.name}' produced no model to evaluate")


@task(name=EVALUATE.name, **STAGE_TASK_OPTIONS)
def evaluate_model(config: RunConfig, model: StageResult, label: str) -> StageResult:
    """Score `model` on the eval data and measure its cost; `label` names it in reports (e.g. 'teacher')."""
    from distill.stages import evaluate as evaluate_stage  # here: a cached run never loads the model code

    _has_model(model)
    inputs = EVALUATE.inputs(dict(config=config, model=model, label=label))
    result = run_stage(
        inputs,
        config.artifact_root,
        lambda stage: {"model": label, **evaluate_stage.evaluate_model(inputs, stage.path)},
    )
    publish_stage_summary(stage_slug(evaluation(label)), f"Evaluation: {label}", result)
    return result


@task(name=VALIDATE.name, **STAGE_TASK_OPTIONS)
def validate_model(config: RunConfig, model: StageResult, label: str) -> StageResult:
    """Score `model` on the validation data only (a sweep trial): `validation_*` metrics, never the test set."""
    from distill.stages import evaluate as evaluate_stage

    _has_model(model)
    inputs = VALIDATE.inputs(dict(config=config, model=model, label=label))
    return run_stage(inputs, config.artifact_root, lambda stage: evaluate_stage.validate_model(inputs, stage.path))
