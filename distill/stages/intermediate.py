"""Stage body: TinyBERT intermediate-layer distillation (step one of two; prediction-layer follows)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from safetensors.torch import save_file
from transformers import TrainerCallback

from distill.config import IntermediateLayerConfig
from distill.evaluation.profiling import parameter_count
from distill.models.attention import RECORDING_ATTENTION
from distill.models.loading import load_model, save_model
from distill.models.student import num_layers
from distill.stages import distributed as on_devices
from distill.stages.common import augmented_train_file, prepare_student, student_metrics, train_student
from distill.stages.inputs import IntermediateInput
from distill.store.artifacts import StageDirectory
from distill.training import distributed
from distill.training.intermediate import (
    HiddenProjections,
    IntermediateDistillationTrainer,
    attach_projections,
    detach_projections,
)
from distill.training.layer_map import resolve_layer_map


def attention_implementation(settings: IntermediateLayerConfig) -> str | None:
    """The recording eager attention when the attention loss is on, else the default (SDPA) kernels.

    Only this stage ever records attention; every other stage keeps the fast kernels.
    """
    return RECORDING_ATTENTION if settings.attention_weight > 0 else None


def distill_intermediate_layers(
    inputs: IntermediateInput,
    directory: StageDirectory,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    show_progress: bool = False,
    output: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the stage's student to match the teacher's embeddings, hidden states and attentions.

    The student lands in `directory.model_dir` (a plain HF model with its task head, ready
    for prediction-layer distillation); the learned projections and the layer map are
    saved next to it. `inputs.augmented` is the augmented training data, when the run augments.
    With `training.devices > 1` the ranks train (torchrun) and `output` receives their output lines.
    """
    if on_devices.should_launch(inputs):
        return on_devices.launch(inputs, directory, output=output)
    settings = inputs.intermediate_layer
    # The same initial student as the baseline's (and, without this step, the prediction-layer step's).
    attention = attention_implementation(settings)
    train_file = augmented_train_file(inputs.augmented, inputs.data.config)
    setup = prepare_student(inputs, attn_implementation=attention, train_file=train_file)
    student = setup.student
    teacher_path = inputs.teacher.model()
    teacher, _ = load_model(
        teacher_path, setup.task, trust_remote_code=inputs.trust_remote_code, attn_implementation=attention
    )
    pairs = resolve_layer_map(
        settings.layer_map, num_layers(student, setup.student_name), num_layers(teacher, teacher_path)
    )
    projections = HiddenProjections(pairs, student.config.hidden_size, teacher.config.hidden_size)
    attach_projections(student, projections)
    summary = train_student(
        setup,
        settings.training,
        inputs,
        directory,
        callbacks=callbacks,
        show_progress=show_progress,
        trainer_class=IntermediateDistillationTrainer,
        trainer_kwargs={
            "teacher_model": teacher,
            "pairs": pairs,
            "embedding_weight": settings.embedding_weight,
            "hidden_weight": settings.hidden_weight,
            "attention_weight": settings.attention_weight,
            "attention_loss": settings.attention_loss,
        },
    )
    detach_projections(student)
    if distributed.is_main_process():
        save_file(
            {k: v.contiguous() for k, v in projections.state_dict().items()},
            str(directory.path / "projections.safetensors"),
        )
        (directory.path / "layer_map.json").write_text(json.dumps({"pairs": pairs}) + "\n")
        save_model(student, setup.tokenizer, directory.model_dir)
    return {
        **student_metrics(setup, summary),
        "layer_map": [list(pair) for pair in pairs],
        "projection_parameters": parameter_count(projections),
    }
