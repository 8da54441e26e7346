"""Every stage's typed input for a config, planned as the stage tasks plan them, with stand-in upstream artifacts."""

from __future__ import annotations

from distill.config import RunConfig
from distill.stages import plan
from distill.stages.inputs import ArtifactRef, StageInput

TEACHER = ArtifactRef(content="teacher-content", uri="/stages/teacher", model_path="/stages/teacher/model")
AUGMENTED = ArtifactRef(content="augmented-content", uri="/stages/augmented")
STUDENT_INIT = ArtifactRef(content="init-content", uri="/stages/init", model_path="/stages/init/model")


def every_input(config: RunConfig, stage: str) -> list[StageInput]:
    """One input per stage kind the config runs (augment and intermediate only when configured)."""
    inputs: list[StageInput] = [
        plan.plan_teacher(config),
        plan.plan_evaluate(config, TEACHER, "teacher"),
        plan.plan_validate(config, TEACHER),
        plan.plan_prediction(config, TEACHER, stage, STUDENT_INIT, AUGMENTED),
        plan.plan_baseline(config, TEACHER, stage),
    ]
    if config.export is not None:
        inputs += [plan.plan_export(config, STUDENT_INIT, f"{stage}-{fmt}", fmt) for fmt in config.export.formats]
    if config.augmentation is not None:
        inputs.append(plan.plan_augment(config))
    if plan.stage_config(config, stage).intermediate_layer is not None:
        inputs.append(plan.plan_intermediate(config, TEACHER, stage, AUGMENTED))
    return inputs
