"""Stage planning: each stage's typed input, built from the run config and its upstream artifacts.

The only place that reads a `RunConfig` on a stage's behalf (see distill.stages.inputs). The
orchestration layer calls one `plan_*` function per stage task, for the cache key and again for
the body, so both see the same object.
"""

from __future__ import annotations

from pathlib import Path

from distill.config import DistillStageConfig, ExportFormat, RunConfig
from distill.config.base import task_metric
from distill.data.task_data import data_fingerprint, has_validation
from distill.models.loading import resolve_model
from distill.precision import default_device, resolve_precision
from distill.stages.inputs import (
    ArtifactRef,
    AugmentInput,
    BaselineInput,
    DataRef,
    EvaluateInput,
    ExportInput,
    IntermediateInput,
    ModelRef,
    PredictionInput,
    TeacherInput,
    ValidateInput,
)
from distill.store.artifacts import StageResult, resolve_root
from distill.store.fingerprint import file_fingerprint, folder_fingerprint

MODEL_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "*.bin")
TEACHER_LOGITS = "teacher_logits"  # under the artifact root; keyed by the teacher's content and the features


def model_fingerprint(name: str, revision: str | None = None) -> str:
    """Content hash of a local model folder; id and revision stand in for a hub model."""
    ref = resolve_model(name)
    if ref.local:
        return folder_fingerprint(ref.location, MODEL_FILES)
    return f"hub:{ref.location}@{revision or 'main'}"


def model_ref(name: str, revision: str | None = None) -> ModelRef:
    return ModelRef(name=name, revision=revision, fingerprint=model_fingerprint(name, revision))


def data_ref(config: RunConfig) -> DataRef:
    return DataRef(config=config.data, fingerprint=data_fingerprint(config.data))


def artifact_ref(result: StageResult) -> ArtifactRef:
    """A stage's result as the stages after it read it."""
    return ArtifactRef(content=result.content_sha256, uri=result.uri, model_path=result.model_path)


def model_artifact(path: str) -> ArtifactRef:
    """A model folder outside any stage (a model to score, a teacher used as is), keyed by its files."""
    return ArtifactRef(content=model_fingerprint(path), uri=path, model_path=path)


def stage_config(config: RunConfig, name: str) -> DistillStageConfig:
    for stage in config.stages:
        if stage.name == name:
            return stage
    raise ValueError(f"no stage named {name!r} in run {config.name!r}")  # a wiring bug: names come from the config


def plan_teacher(config: RunConfig) -> TeacherInput:
    teacher = config.teacher
    return TeacherInput(
        seed=config.seed,
        precision=resolve_precision(config.precision),  # resolved: 'auto' on another machine may differ
        data=data_ref(config),
        teacher=teacher,
        model=model_ref(teacher.model, teacher.revision),
    )


def plan_augment(config: RunConfig) -> AugmentInput:
    settings = config.augmentation
    if settings is None:
        raise ValueError(f"run {config.name!r} has no augmentation section")
    vectors = None
    path = Path(settings.vectors).expanduser()
    if settings.needs_vectors and path.exists():  # a local vectors file or folder: a change to it counts
        vectors = file_fingerprint(path) if path.is_file() else folder_fingerprint(path)
    return AugmentInput(
        seed=config.seed,
        data=data_ref(config),
        augmentation=settings,
        vectors=vectors,
        mlm=model_ref(settings.mlm) if settings.needs_mlm else None,
    )


def plan_evaluate(config: RunConfig, model: ArtifactRef, label: str) -> EvaluateInput:
    return EvaluateInput(
        data=data_ref(config),
        batch_size=config.evaluation.batch_size,
        precision=resolve_precision(config.precision, "cpu"),  # models are scored where they load: on the CPU
        trust_remote_code=config.teacher.trust_remote_code,
        model=model,
        label=label,
        cost=config.evaluation,
        speed_precision=resolve_precision(config.precision, default_device()),
    )


def plan_validate(config: RunConfig, model: ArtifactRef) -> ValidateInput:
    return ValidateInput(
        data=data_ref(config),
        batch_size=config.evaluation.batch_size,
        precision=resolve_precision(config.precision, "cpu"),
        trust_remote_code=config.teacher.trust_remote_code,
        model=model,
    )


def plan_export(config: RunConfig, model: ArtifactRef, label: str, export_format: ExportFormat) -> ExportInput:
    settings = config.export
    if settings is None:
        raise ValueError(f"run {config.name!r} has no export section")
    return ExportInput(
        data=data_ref(config),
        batch_size=config.evaluation.batch_size,
        trust_remote_code=config.teacher.trust_remote_code,
        model=model,
        export_format=export_format,
        opset=settings.opset,
        max_abs_diff=settings.max_abs_diff,
        min_agreement=settings.min_agreement,
        label=label,
    )


def _student_step(config: RunConfig, stage: DistillStageConfig, teacher: ArtifactRef) -> dict:
    student = stage.student
    named = [(student.model, None), (student.source, None)]
    return dict(
        seed=config.seed,
        precision=resolve_precision(config.precision),
        data=data_ref(config),
        trust_remote_code=config.teacher.trust_remote_code,
        student=student,
        # A local folder is keyed by its files, so new weights there recompute the stage.
        student_models=tuple(model_ref(name, revision) for name, revision in named if name is not None),
        teacher=teacher,
        stage=stage.name,
    )


def plan_intermediate(
    config: RunConfig, teacher: ArtifactRef, label: str, augmented: ArtifactRef | None = None
) -> IntermediateInput:
    stage = stage_config(config, label)
    if stage.intermediate_layer is None:
        raise ValueError(f"stage {label!r} has no intermediate_layer section")
    return IntermediateInput(
        **_student_step(config, stage, teacher),
        intermediate_layer=stage.intermediate_layer,
        augmented=augmented,
    )


def plan_prediction(
    config: RunConfig,
    teacher: ArtifactRef,
    label: str,
    student_init: ArtifactRef | None = None,
    augmented: ArtifactRef | None = None,
) -> PredictionInput:
    stage = stage_config(config, label)
    return PredictionInput(
        **_student_step(config, stage, teacher),
        prediction_layer=stage.prediction_layer,
        student_init=student_init,
        augmented=augmented,
        logits_root=str(resolve_root(config.artifact_root) / TEACHER_LOGITS),
    )


def plan_baseline(config: RunConfig, teacher: ArtifactRef, label: str) -> BaselineInput:
    stage = stage_config(config, label)
    return BaselineInput(**_student_step(config, stage, teacher), training=stage.prediction_layer.training)


def task_metric_name(config: RunConfig) -> str:
    """The headline metric for the run's task."""
    return task_metric(config.data.task)


def selection_metric(config: RunConfig) -> tuple[str, str]:
    """The evaluation key choices are made on, and its name for messages.

    `validation_<metric>` ("validation f1") when the run has validation data; otherwise the
    eval metric ("eval f1"), as before validation sets existed.
    """
    metric = task_metric_name(config)
    if has_validation(config.data):
        return f"validation_{metric}", f"validation {metric}"
    return metric, f"eval {metric}"
