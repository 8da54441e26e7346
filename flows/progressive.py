"""The distillation flow: teacher, then evaluation (students and the chain build on this).

Every stage is content-cached under the run's artifact root, so a re-run skips finished
work, a failed run retried with `prefect flow-run retry` resumes, and changing one
stage's config recomputes that stage and what follows it, nothing before.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State

from distill.artifacts import StageResult, check_writable, resolve_root
from distill.config import RunConfig
from tasks.evaluate import EVALUATE, evaluate_model
from tasks.stage import bind
from tasks.teacher import FINETUNE_TEACHER, finetune_teacher, use_finetuned_teacher

# Stage names accepted by `refresh` (and `distill run --refresh`).
STAGE_NAMES = (FINETUNE_TEACHER.name, EVALUATE.name)


def _summary(state: State, name: str) -> tuple[StageResult, dict[str, Any]]:
    result: StageResult = state.result()
    status = "cached" if state.name == "Cached" else "completed"
    return result, {"name": name, "status": status, "uri": result.uri, "metrics": result.metrics}


# log_prints stays off: it replaces print(), which defeats dill's stdout capture inside `datasets`
# and floods the task logs with bytecode disassembly. Stage code logs through the run logger instead.
@flow(name="progressive-distillation", log_prints=False)
def progressive_distillation(config: RunConfig, refresh: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the stages `config` describes and return one summary per stage: name, status, uri, metrics.

    `refresh` names stages to recompute even when cached (their successors follow, because
    their upstream manifest changes).
    """
    logger = get_run_logger()
    refresh = set(refresh or [])
    check_writable(resolve_root(config.artifact_root))
    stages: list[dict[str, Any]] = []

    if config.teacher.finetuned:
        teacher_state = use_finetuned_teacher(config, return_state=True)
    else:
        teacher_task = bind(finetune_teacher, FINETUNE_TEACHER, config, refresh=FINETUNE_TEACHER.name in refresh)
        teacher_state = teacher_task(config, return_state=True)
    teacher, summary = _summary(teacher_state, FINETUNE_TEACHER.name)
    stages.append(summary)

    evaluate = bind(evaluate_model, EVALUATE, config, refresh=EVALUATE.name in refresh)
    _, summary = _summary(evaluate(config, teacher, label="teacher", return_state=True), "evaluate_teacher")
    stages.append(summary)

    for stage in stages:
        logger.info("%s: %s (%s)", stage["name"], stage["status"], stage["uri"])
    return stages
