"""What the stage bodies share: loading the run's data, setting up a stage's student, training it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, set_seed

from distill.config import DataConfig, TrainingConfig
from distill.data.task_data import ClassificationData, QAData, augmented_file_name, describe, load_task_data
from distill.evaluation.profiling import parameter_count
from distill.models.loading import ModelTask, load_model, load_tokenizer
from distill.models.student import build_student, check_same_vocabulary
from distill.stages.inputs import ArtifactRef, StudentStepInput
from distill.store.artifacts import StageDirectory
from distill.training.features import train_features
from distill.training.trainer import TrainSummary, train


def augmented_train_file(augmented: ArtifactRef | None, settings: DataConfig) -> str | None:
    """The augmented training file inside the augment stage's directory (None: the run does not augment)."""
    return None if augmented is None else str(Path(augmented.uri) / augmented_file_name(settings))


@dataclass(frozen=True)
class StudentSetup:
    """A stage's data, its student (model, tokenizer, name for messages) and the training features."""

    data: QAData | ClassificationData
    task: ModelTask
    student: Any
    tokenizer: Any
    student_name: str
    features: Any
    collator: Any


def prepare_student(
    inputs: StudentStepInput,
    *,
    student_init: str | None = None,
    attn_implementation: str | None = None,
    for_distillation: bool = False,
    train_file: str | None = None,
) -> StudentSetup:
    """The one way every step of a stage gets its student, so all of them start from the same weights.

    The student is built from `inputs.student` right after seeding (a new head or a fresh
    model is initialised from `inputs.seed`), or loaded from `student_init`, the output of
    intermediate-layer distillation. Features are tokenized once with the teacher's
    tokenizer, so teacher and student must share a vocabulary (checked here, before compute).
    `train_file` is the augmented training data, when the run augments.
    """
    data = load_task_data(inputs.data.config, train_file=train_file)
    task: ModelTask = "qa" if isinstance(data, QAData) else "classification"
    id2label = dict(enumerate(data.label_list)) if isinstance(data, ClassificationData) else None
    trust = inputs.trust_remote_code
    teacher_path = inputs.teacher.model()
    teacher_tokenizer = load_tokenizer(teacher_path, trust_remote_code=trust)
    set_seed(inputs.seed)
    if student_init is not None:
        student, _ = load_model(
            student_init, task, id2label=id2label, trust_remote_code=trust, attn_implementation=attn_implementation
        )
        tokenizer = load_tokenizer(student_init, trust_remote_code=trust)
        name = f"intermediate-distilled student '{student_init}'"
    else:
        student, tokenizer, name = build_student(
            inputs.student,
            teacher_path,
            task,
            id2label=id2label,
            trust_remote_code=trust,
            attn_implementation=attn_implementation,
        )
    check_same_vocabulary(teacher_path, teacher_tokenizer, name, tokenizer)
    features, collator = train_features(data, teacher_tokenizer, inputs.data.config, for_distillation=for_distillation)
    return StudentSetup(data, task, student, tokenizer, name, features, collator)


def train_student(
    setup: StudentSetup,
    training: TrainingConfig,
    inputs: StudentStepInput,
    directory: StageDirectory,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    show_progress: bool = False,
    **options: Any,
) -> TrainSummary:
    """Train the stage's student on its features, checkpointing into the stage directory.

    `options` go to `train` (trainer_class, trainer_kwargs, keep_extra_columns).
    """
    return train(
        setup.student,
        setup.features,
        training,
        checkpoint_dir=directory.checkpoints,
        seed=inputs.seed,
        callbacks=callbacks,
        data_collator=setup.collator,
        processing_class=setup.tokenizer,
        show_progress=show_progress,
        precision=inputs.precision,
        group_by_length=setup.task == "qa",
        **options,
    )


def student_metrics(setup: StudentSetup, summary: TrainSummary) -> dict[str, Any]:
    """What every student step reports: training summary, student size and data sizes."""
    return {
        **summary.as_metrics(),
        "student": setup.student_name,
        "student_parameters": parameter_count(setup.student),
        "train_features": len(setup.features),
        **describe(setup.data),
    }
