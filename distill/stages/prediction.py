"""Stage bodies: prediction-layer distillation of a student, and its no-distillation baseline.

Both build the same student from the same seed, tokenize the same features with the
teacher's tokenizer and train on the same schedule, so the difference between them is
the distillation lift and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from distill.errors import DistillError
from distill.models.inference import OUTPUT_NAMES
from distill.models.loading import load_model, save_model
from distill.stages import distributed as on_devices
from distill.stages.common import augmented_train_file, prepare_student, student_metrics, train_student
from distill.stages.inputs import BaselineInput, PredictionInput
from distill.store.artifacts import StageDirectory
from distill.training import distributed
from distill.training import teacher_logits as logits_cache
from distill.training.distillation import PredictionDistillationTrainer

log = logging.getLogger("distill")


def check_teacher_quality(metric_label: str, value: float | None, threshold: float | None, teacher: str) -> None:
    """Fail before any compute when the teacher is too weak to be worth distilling (e.g. untrained).

    `metric_label` names the figure and its set, e.g. "validation f1" (see `evaluate.selection_metric`).
    """
    if threshold is None:
        return
    if value is None:
        raise DistillError(f"min_teacher_metric is set but teacher '{teacher}' has no {metric_label} to check")
    if value < threshold:
        raise DistillError(
            f"teacher '{teacher}' has {metric_label} {value:.4g}, below min_teacher_metric {threshold:.4g}; "
            "fine-tune it first (or lower the threshold)"
        )


def distill_prediction_layer(
    inputs: PredictionInput,
    directory: StageDirectory,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    show_progress: bool = False,
    output: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the stage's student on the teacher's softened outputs; the student lands in `directory.model_dir`.

    With `inputs.student_init` (the output of intermediate-layer distillation) training continues
    from that student instead of a newly built one. `inputs.augmented` is the augmented training
    data, when the run augments. With `training.devices > 1` the ranks train (torchrun) and `output`
    receives their output lines.
    """
    if on_devices.should_launch(inputs):
        return on_devices.launch(inputs, directory, output=output)
    setup = prepare_student(
        inputs,
        student_init=inputs.student_init.model() if inputs.student_init else None,
        for_distillation=True,
        train_file=augmented_train_file(inputs.augmented, inputs.data.config),
    )
    settings = inputs.prediction_layer
    features, task = setup.features, setup.task
    teacher_path = inputs.teacher.model()

    def load_teacher() -> Any:
        return load_model(teacher_path, task, trust_remote_code=inputs.trust_remote_code)[0]

    output_names = OUTPUT_NAMES[task]
    trainer_kwargs: dict[str, Any] = {
        "task": task,
        "temperature": settings.temperature,
        "loss_weight": settings.loss_weight,
    }
    extra: dict[str, Any] = {"teacher_cache": settings.teacher_cache}
    if settings.teacher_cache and settings.loss_weight > 0:
        precision = inputs.precision
        # With several processes rank 0 computes the logits while the others wait, then they read its files.
        with distributed.main_process_first():
            arrays, folder, seconds = logits_cache.load_or_compute(
                Path(inputs.logits_root),
                inputs.teacher.content,
                features,
                # The teacher is loaded only to compute its logits: every later student of it (a sweep's trials, a
                # retry) reads them from disk and never loads it.
                lambda: logits_cache.teacher_pass(
                    load_teacher(),
                    features,
                    output_names,
                    batch_size=settings.training.eval_batch_size,
                    precision=precision,
                ),
                precision=precision,
            )
        if seconds:
            log.info("teacher logits computed in %.1fs into %s", seconds, folder)
        else:
            log.info("teacher logits reused from %s", folder)
        trainer_kwargs["teacher_logits"] = arrays
        extra.update(teacher_pass_seconds=round(seconds, 3), teacher_logits=str(folder))
    elif settings.loss_weight > 0:  # the teacher runs at every step
        trainer_kwargs["teacher_model"] = load_teacher()
    summary = train_student(
        setup,
        settings.training,
        inputs,
        directory,
        callbacks=callbacks,
        show_progress=show_progress,
        trainer_class=PredictionDistillationTrainer,
        trainer_kwargs=trainer_kwargs,
        keep_extra_columns=True,
    )
    if distributed.is_main_process():
        save_model(setup.student, setup.tokenizer, directory.model_dir)
    return {**student_metrics(setup, summary), **extra}


def train_baseline(
    inputs: BaselineInput,
    directory: StageDirectory,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    show_progress: bool = False,
    output: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The same student, data and schedule, trained on hard labels only: the no-distillation reference."""
    if on_devices.should_launch(inputs):
        return on_devices.launch(inputs, directory, output=output)
    setup = prepare_student(inputs)
    summary = train_student(setup, inputs.training, inputs, directory, callbacks=callbacks, show_progress=show_progress)
    if distributed.is_main_process():
        save_model(setup.student, setup.tokenizer, directory.model_dir)
    return student_metrics(setup, summary)
