"""Stage body: fine-tune the teacher on the task."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from transformers import TrainerCallback, set_seed

from distill.data.task_data import QAData, describe, load_task_data
from distill.models.loading import load_model, load_tokenizer, save_model
from distill.stages import distributed as on_devices
from distill.stages.inputs import TeacherInput
from distill.store.artifacts import StageDirectory
from distill.training import distributed
from distill.training.features import train_features
from distill.training.trainer import train


def finetune_teacher(
    inputs: TeacherInput,
    stage: StageDirectory,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    show_progress: bool = False,
    output: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune `inputs.teacher` on the training data; the model lands in `stage.model_dir`.

    Checkpoints go to `stage.checkpoints`, so a retry resumes instead of restarting.
    Returns training metrics and data sizes. With `training.devices > 1` the ranks train (torchrun)
    and `output` receives their output lines.
    """
    if on_devices.should_launch(inputs):
        return on_devices.launch(inputs, stage, output=output)
    teacher = inputs.teacher
    data = load_task_data(inputs.data.config)
    tokenizer = load_tokenizer(teacher.model, revision=teacher.revision, trust_remote_code=teacher.trust_remote_code)
    set_seed(inputs.seed)  # before loading: the new task head is initialised from this seed
    options = dict(
        revision=teacher.revision,
        trust_remote_code=teacher.trust_remote_code,
        allow_pickle_weights=teacher.allow_pickle_weights,
    )
    if isinstance(data, QAData):
        model, _ = load_model(teacher.model, "qa", **options)
    else:
        model, _ = load_model(teacher.model, "classification", id2label=dict(enumerate(data.label_list)), **options)
    features, collator = train_features(data, tokenizer, inputs.data.config)
    summary = train(
        model,
        features,
        teacher.training,
        checkpoint_dir=stage.checkpoints,
        seed=inputs.seed,
        callbacks=callbacks,
        data_collator=collator,
        processing_class=tokenizer,
        show_progress=show_progress,
        precision=inputs.precision,
        group_by_length=isinstance(data, QAData),
    )
    if distributed.is_main_process():
        save_model(model, tokenizer, stage.model_dir)
    return {**summary.as_metrics(), "train_features": len(features), **describe(data)}
