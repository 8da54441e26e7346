"""Stage task: evaluate a model (task metric, parameters, size, latency, throughput)."""

from __future__ import annotations

from prefect import task

from distill.artifacts import StageResult
from distill.config import RunConfig
from distill.errors import DistillError
from distill.precision import resolve_precision
from distill.stages import evaluate as evaluate_stage
from tasks.monitoring import publish_stage_summary
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage

EVALUATE = StageSpec(
    name="evaluate",
    modules=("distill.stages.evaluate",),
    config_of=lambda config: {
        "evaluation": config.evaluation.model_dump(mode="json"),
        "trust_remote_code": config.teacher.trust_remote_code,
        "precision": resolve_precision(config.precision, "cpu"),  # models are evaluated on the CPU
    },
)
# A sweep trial's score: the validation set only, no test set and no timing.
VALIDATE = StageSpec(
    name="validate",
    modules=("distill.stages.evaluate",),
    config_of=lambda config: {
        "eval_batch_size": config.teacher.training.eval_batch_size,
        "trust_remote_code": config.teacher.trust_remote_code,
        "precision": resolve_precision(config.precision, "cpu"),
    },
)


@task(name="evaluate", task_run_name="evaluate-{label}", **STAGE_TASK_OPTIONS)
def evaluate_model(config: RunConfig, model: StageResult, label: str) -> StageResult:
    """Score `model` on the eval data and measure its cost; `label` names it in reports (e.g. 'teacher')."""
    if model.model_path is None:
        raise DistillError(f"stage '{model.name}' produced no model to evaluate")
    result = run_stage(
        EVALUATE,
        config,
        lambda stage: {
            "model": label,
            **evaluate_stage.evaluate_model(
                config, model.model_path, stage.path, trust_remote_code=config.teacher.trust_remote_code
            ),
        },
        upstream={"model": model},
        extra=label,
    )
    publish_stage_summary(f"evaluate-{label}".replace("_", "-").lower(), f"Evaluation: {label}", result)
    return result


@task(name="validate", task_run_name="validate-{label}", **STAGE_TASK_OPTIONS)
def validate_model(config: RunConfig, model: StageResult, label: str) -> StageResult:
    """Score `model` on the validation data only (a sweep trial): `validation_*` metrics, never the test set."""
    if model.model_path is None:
        raise DistillError(f"stage '{model.name}' produced no model to validate")
    return run_stage(
        VALIDATE,
        config,
        lambda stage: evaluate_stage.validate_model(
            config, model.model_path, stage.path, trust_remote_code=config.teacher.trust_remote_code
        ),
        upstream={"model": model},
        extra=label,
    )
