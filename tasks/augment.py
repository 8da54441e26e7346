"""Stage task: augment the training data once per run; every student's distillation steps reuse it."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from distill.artifacts import StageResult
from distill.config import RunConfig
from distill.fingerprint import file_fingerprint, folder_fingerprint
from distill.stages import augment as augment_stage
from tasks.monitoring import PrefectProgress, publish_stage_summary
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage


def _augment_config(config: RunConfig) -> dict:
    # Only what changes the output bytes: a new worker count must not recompute (it gives the same file).
    settings = config.augmentation
    assert settings is not None
    key = settings.output_settings(config.seed)
    vectors = Path(settings.vectors).expanduser()
    if settings.needs_vectors and vectors.exists():  # a local vectors file or folder: a change to it counts
        key["vectors"] = file_fingerprint(vectors) if vectors.is_file() else folder_fingerprint(vectors)
    return key


def _augment_models(config: RunConfig) -> list[str]:
    return [config.augmentation.mlm] if config.augmentation and config.augmentation.needs_mlm else []


AUGMENT = StageSpec(
    name="augment_training_data",
    modules=("distill.stages.augment",),
    config_of=_augment_config,
    models_of=_augment_models,
)


@task(name="augment_training_data", **STAGE_TASK_OPTIONS)
def augment_training_data(config: RunConfig) -> StageResult:
    """Multiply the training split TinyBERT-style (answers kept exact); cached by data + settings."""
    result = run_stage(
        AUGMENT,
        config,
        lambda directory: augment_stage.augment_training_data(
            config, directory, progress=PrefectProgress(AUGMENT.slug, "training units augmented")
        ),
    )
    publish_stage_summary(AUGMENT.slug, "Training data augmentation", result)
    return result


def augmented_train_file(result: StageResult | None) -> str | None:
    """The augmented training file inside the stage's directory (None: the run does not augment)."""
    return None if result is None else f"{result.uri}/{result.metrics['train_file']}"
