"""The distillation flow: teacher, its evaluation, then each student distilled and evaluated.

Every stage is content-cached under the run's artifact root, so a re-run skips finished
work, a failed run retried with `prefect flow-run retry` resumes, and changing one
stage's config recomputes that stage and what follows it, nothing before.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State

from distill.artifacts import StageResult, check_writable, resolve_root
from distill.config import RunConfig, load_config
from distill.preflight import preflight
from distill.report import Entry
from distill.stages.evaluate import task_metric_name
from tasks.augment import AUGMENT, augment_training_data
from tasks.distill import (
    baseline_spec,
    distill_intermediate_layers,
    distill_prediction_layer,
    intermediate_spec,
    prediction_spec,
    train_baseline,
)
from tasks.evaluate import EVALUATE, evaluate_model
from tasks.report import report
from tasks.stage import bind
from tasks.teacher import FINETUNE_TEACHER, finetune_teacher, use_finetuned_teacher

# Stage names accepted by `refresh` (and `distill run --refresh`).
STAGE_NAMES = (
    FINETUNE_TEACHER.name,
    AUGMENT.name,
    EVALUATE.name,
    "distill_intermediate_layers",
    "distill_prediction_layer",
    "train_baseline",
)


def _outcome(state: State, name: str, stages: list[dict[str, Any]]) -> StageResult:
    """The stage's result, recorded in `stages` with whether it ran or came from the cache."""
    result: StageResult = state.result()
    status = "cached" if state.name == "Cached" else "completed"
    stages.append({"name": name, "status": status, "uri": result.uri, "metrics": result.metrics})
    return result


# log_prints stays off: it replaces print(), which defeats dill's stdout capture inside `datasets`
# and floods the task logs with bytecode disassembly. Stage code logs through the run logger instead.
@flow(name="progressive-distillation", log_prints=False)
def progressive_distillation(config: RunConfig, refresh: list[str] | None = None) -> dict[str, Any]:
    """Run the stages `config` describes.

    Returns `stages` (name, status 'completed' or 'cached', uri, metrics for each) and the
    `leaderboard` (one row per evaluated model). `refresh` names stage kinds to recompute
    even when cached; their successors follow, because their upstream manifests change.
    """
    logger = get_run_logger()
    refresh = set(refresh or [])
    check_writable(resolve_root(config.artifact_root))
    metric = task_metric_name(config)
    stages: list[dict[str, Any]] = []

    def evaluate(model: StageResult, label: str) -> StageResult:
        task = bind(evaluate_model, EVALUATE, config, refresh=EVALUATE.name in refresh)
        return _outcome(task(config, model, label=label, return_state=True), f"evaluate_{label}", stages)

    if config.teacher.finetuned:
        teacher = _outcome(use_finetuned_teacher(config, return_state=True), FINETUNE_TEACHER.name, stages)
    else:
        task = bind(finetune_teacher, FINETUNE_TEACHER, config, refresh=FINETUNE_TEACHER.name in refresh)
        teacher = _outcome(task(config, return_state=True), FINETUNE_TEACHER.name, stages)
    teacher_eval = evaluate(teacher, "teacher")
    entries = [Entry(model="teacher", role="teacher", metrics=teacher_eval.metrics)]
    augmented = None
    if config.augmentation is not None and config.stages:  # once per run; every stage's KD steps reuse it
        task = bind(augment_training_data, AUGMENT, config, refresh=AUGMENT.name in refresh)
        augmented = _outcome(task(config, return_state=True), AUGMENT.name, stages)

    for stage in config.stages:
        teacher_metric = teacher_eval.metrics.get(metric)
        student_init = None
        if stage.intermediate_layer is not None:  # TinyBERT: internals first, then soft targets
            step_one = bind(
                distill_intermediate_layers,
                intermediate_spec(stage.name),
                config,
                refresh="distill_intermediate_layers" in refresh,
            )
            state = step_one(
                config, teacher, label=stage.name, teacher_metric=teacher_metric, augmented=augmented, return_state=True
            )
            student_init = _outcome(state, f"intermediate_{stage.name}", stages)
        distill = bind(
            distill_prediction_layer, prediction_spec(stage.name), config, refresh="distill_prediction_layer" in refresh
        )
        state = distill(
            config,
            teacher,
            label=stage.name,
            teacher_metric=teacher_metric,
            student_init=student_init,
            augmented=augmented,
            return_state=True,
        )
        student = _outcome(state, f"distill_{stage.name}", stages)
        entries.append(Entry(model=stage.name, role="distilled", metrics=evaluate(student, stage.name).metrics))
        if stage.baseline:
            baseline_task = bind(train_baseline, baseline_spec(stage.name), config, refresh="train_baseline" in refresh)
            baseline = _outcome(
                baseline_task(config, teacher, label=stage.name, return_state=True), f"baseline_{stage.name}", stages
            )
            label = f"{stage.name}-baseline"
            entries.append(
                Entry(model=label, role="baseline", metrics=evaluate(baseline, label).metrics, baseline_of=stage.name)
            )

    leaderboard = report(config, [entry.__dict__ for entry in entries])
    for stage in stages:
        logger.info("%s: %s (%s)", stage["name"], stage["status"], stage["uri"])
    return {"stages": stages, "leaderboard": leaderboard}


@flow(name="distill-config-file", log_prints=False)
def distill_config_file(
    config_path: str, artifact_root: str | None = None, refresh: list[str] | None = None
) -> dict[str, Any]:
    """Deployment entry point: read the YAML run config at run time, check it, run it.

    Reading at run time means an edited config applies to the next scheduled run. A relative
    `config_path` is resolved against the run's working directory (the repository root).
    """
    config = load_config(config_path)
    if artifact_root is not None:
        config = config.model_copy(update={"artifact_root": artifact_root})
    preflight(config)
    return progressive_distillation(config, refresh=refresh)
