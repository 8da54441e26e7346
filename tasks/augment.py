"""Stage task: augment the training data once per run; every student's distillation steps reuse it."""

from __future__ import annotations

from prefect import task

from distill.config import RunConfig
from distill.stages import identity
from distill.stages.inputs import AugmentInput
from distill.stages.plan import plan_augment
from distill.store.artifacts import StageResult
from tasks.monitoring import PrefectProgress, publish_stage_summary, stage_slug
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage

AUGMENT = StageSpec(plan_augment, AugmentInput)


@task(name=AUGMENT.name, **STAGE_TASK_OPTIONS)
def augment_training_data(config: RunConfig) -> StageResult:
    """Multiply the training split TinyBERT-style (answers kept exact); cached by data + settings."""
    from distill.stages import augment as augment_stage  # here: a cached run never loads nlpaug

    inputs = AUGMENT.inputs({"config": config})
    slug = stage_slug(identity.AUGMENT)
    result = run_stage(
        inputs,
        config.artifact_root,
        lambda directory: augment_stage.augment_training_data(
            inputs, directory, progress=PrefectProgress(slug, "training units augmented")
        ),
    )
    publish_stage_summary(slug, "Training data augmentation", result)
    return result
