"""Stage task: fine-tune the teacher (or take an already fine-tuned one as is)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from distill.config import RunConfig
from distill.stages import identity
from distill.stages.inputs import TeacherInput
from distill.stages.plan import model_fingerprint, plan_teacher
from distill.store.artifacts import StageDirectory, StageResult
from tasks.monitoring import TrainingMonitoring, publish_stage_summary, stage_slug
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage

FINETUNE_TEACHER = StageSpec(plan_teacher, TeacherInput)


@task(name=FINETUNE_TEACHER.name, **STAGE_TASK_OPTIONS)
def finetune_teacher(config: RunConfig) -> StageResult:
    """Fine-tune the teacher on the task; resumes from the stage's newest checkpoint after a crash."""
    from distill.stages import teacher as teacher_stage  # here: a cached run never loads the training code

    inputs = FINETUNE_TEACHER.inputs({"config": config})
    slug = stage_slug(identity.TEACHER)
    monitoring = TrainingMonitoring(config, slug)

    def compute(stage: StageDirectory) -> dict[str, Any]:
        with monitoring.training(stage) as options:
            return teacher_stage.finetune_teacher(inputs, stage, **options)

    result = run_stage(inputs, config.artifact_root, compute)
    monitoring.publish()
    publish_stage_summary(slug, "Teacher fine-tuning", result)
    return result


@task(name="use_finetuned_teacher", **STAGE_TASK_OPTIONS)  # it may download the hub snapshot: retried
def use_finetuned_teacher(config: RunConfig) -> StageResult:
    """The config says the teacher is already fine-tuned: pass it on without training or copying."""
    from distill.models.loading import materialize

    teacher = config.teacher
    # A hub teacher is pinned to one local snapshot (at `revision`), so its files can be fingerprinted.
    path = materialize(teacher.model, revision=teacher.revision, allow_pickle_weights=teacher.allow_pickle_weights)
    get_run_logger().info("teacher '%s' is marked fine-tuned; skipping fine-tuning (%s)", teacher.model, path)
    fingerprint = model_fingerprint(path)
    return StageResult(
        name=FINETUNE_TEACHER.name,
        key="as-is",
        uri=path,
        manifest_sha256=fingerprint,
        content_sha256=fingerprint,
        metrics={"finetuned": "as is"},
        model_path=path,
    )
