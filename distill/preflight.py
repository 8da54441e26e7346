"""Checks run before any compute, so bad input fails in seconds with one line, not mid-flow.

Besides paths and data, the chain of models is checked from `config.json` files and
tokenizers alone, without loading any weights: each student a stage would build (its
depth and vocabulary), the layers it keeps and its layer map, against the teacher it
learns from. A stage's teacher is the student of the stage before (or the run's teacher),
so its shape is the one worked out for that student; the run's teacher, before it is
fine-tuned, has its base model's architecture.
"""

from __future__ import annotations

import importlib.util
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from distill.config import DistillStageConfig, RunConfig, TrackingConfig, TrainingConfig
from distill.data.task_data import QAData, load_task_data
from distill.errors import ConfigError, ModelError
from distill.models.loading import check_weights, load_model_config, load_tokenizer
from distill.models.student import check_fresh_family, check_kept_layers, check_same_vocabulary, plan_student
from distill.store.artifacts import check_artifact_root, check_writable
from distill.training.layer_map import resolve_layer_map

TRACKING_EXTRA = "pip install 'distill[tracking]'"


def preflight(config: RunConfig) -> None:
    """Artifact root writable, trackers ready, data readable and valid, every model of the chain loadable and
    compatible."""
    # Nothing is left behind if the run is rejected: the flow creates the artifact root when it starts.
    check_artifact_root(config.artifact_root, keep_created=False)  # an object store: a probe object put and deleted
    check_tracking(config.tracking)  # installed, writable, answering: not a failure in the first stage that trains
    # Distillation trains students on the training data even when the teacher needs no fine-tuning. Loading also
    # makes the validation split (or reads its source), so a split that leaves nothing on one side fails here.
    data = load_task_data(config.data, need_train=not config.teacher.finetuned or bool(config.stages))
    check_sweep_metrics(config, data)
    check_devices(config)
    check_tracking_devices(config)
    check_chain(config)
    if config.augmentation is not None and config.stages:
        from distill.augment.runner import check_resources

        check_resources(config.augmentation)


def training_sections(config: RunConfig) -> list[tuple[str, TrainingConfig]]:
    """Every training the run does, by its place in the config (the baseline trains on prediction_layer's)."""
    sections = [] if config.teacher.finetuned else [("teacher.training", config.teacher.training)]
    for index, stage in enumerate(config.stages):
        if stage.intermediate_layer is not None:
            sections.append((f"stages[{index}].intermediate_layer.training", stage.intermediate_layer.training))
        sections.append((f"stages[{index}].prediction_layer.training", stage.prediction_layer.training))
    return sections


def check_devices(config: RunConfig, gpus: int | None = None) -> None:
    """On a GPU machine each `training.devices` fits its GPUs (`gpus`: torch's count, unless given). Without a
    GPU, N CPU processes (gloo) are allowed: that tests the multi-device path, it does not train faster."""
    if gpus is None:
        import torch

        if not torch.cuda.is_available():
            return
        gpus = torch.cuda.device_count()
    for where, training in training_sections(config):
        if training.devices > gpus:
            plural = "s" if gpus != 1 else ""
            raise ConfigError(
                f"{where}.devices is {training.devices}, but this process sees {gpus} GPU{plural} "
                "(CUDA_VISIBLE_DEVICES)"
            )


def check_tracking_devices(config: RunConfig) -> None:
    """`tracking` and `training.devices > 1` are refused together: the ranks' Trainer runs in torchrun's processes,
    out of reach of the stage's TensorBoard and MLflow callbacks, and a run must not publish curves it never drew."""
    if config.tracking is None:
        return
    for where, training in training_sections(config):
        if training.devices > 1:
            raise ConfigError(
                f"{where}.devices is {training.devices}: tracking (TensorBoard, MLflow) is not available for a stage "
                "trained on several devices; remove `tracking` or train on one device"
            )


def check_sweep_metrics(config: RunConfig, data: Any) -> None:
    """Each sweep's metric is one its validation data will report (the config knows the names, not the data)."""
    if not isinstance(data, QAData) or data.validation is None:
        return
    from distill.evaluation.evaluate import qa_version_2  # here: it loads the evaluation's model code

    for index, stage in enumerate(config.stages):
        metric = stage.sweep.metric_name("qa") if stage.sweep is not None else None
        where = f"stages[{index}].sweep.metric"
        if metric == "best_f1" and not qa_version_2(config.data, data.eval):
            raise ConfigError(f"{where}: best_f1 is scored with no-answer odds, and this run's QA is v1.1 (no "
                              "abstention); use f1 or exact")  # fmt: skip
        if metric in ("HasAns_f1", "HasAns_exact") and not any(qa["answers"] for qa in data.validation.questions()):
            raise ConfigError(f"{where}: {metric} needs answerable questions, and the validation data has none")


def check_tracking(tracking: TrackingConfig | None) -> None:
    """Each tracker asked for is installed, the TensorBoard folder writable and an MLflow server listening."""
    if tracking is None:
        return
    for tracker in tracking.trackers:
        if importlib.util.find_spec(tracker) is None:  # both packages import under their distribution's name
            raise ConfigError(f"tracking.{tracker}: the {tracker} package is not installed ({TRACKING_EXTRA})")
    if tracking.tensorboard is not None:
        check_writable(Path(tracking.tensorboard).expanduser(), "tracking.tensorboard", keep_created=False)
    if tracking.mlflow is not None:
        _check_server_answers(tracking.mlflow)


def _check_server_answers(uri: str) -> None:
    """Something listens at an http(s) tracking URI: otherwise the MLflow client retries for minutes, mid-run.

    Only a TCP connection is tried, so a server behind authentication passes too."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=5).close()
    except OSError as exc:
        raise ConfigError(
            f"tracking.mlflow: nothing answers at {parts.hostname}:{port} ({exc.strerror or exc}); "
            "start the MLflow server or fix the URI"
        ) from None


@dataclass(frozen=True)
class ModelShape:
    """What the checks need to know of a model the run loads or builds, without its weights."""

    label: str  # names it in messages: "model 'x'" or "the student of stage 'y'"
    layers: int | None  # encoder depth; None when its config does not say (then depth checks are skipped)
    vocabulary_of: str  # the model whose tokenizer it uses, hence the vocabulary it shares
    config: Any  # its family's transformers config (a fresh student copies the teacher's)


class _Chain:
    """Loads each real model's config, tokenizer and weight headers once, and compares shapes."""

    def __init__(self, trust_remote_code: bool) -> None:
        self.trust_remote_code = trust_remote_code
        self.tokenizers: dict[str, Any] = {}

    def real_model(self, name: str, *, revision: str | None = None, allow_pickle_weights: bool = False) -> ModelShape:
        check_weights(name, allow_pickle_weights=allow_pickle_weights)
        model_config = load_model_config(name, revision=revision, trust_remote_code=self.trust_remote_code)
        self.tokenizer(name, revision)
        return ModelShape(f"model '{name}'", getattr(model_config, "num_hidden_layers", None), name, model_config)

    def tokenizer(self, name: str, revision: str | None = None) -> Any:
        if name not in self.tokenizers:
            self.tokenizers[name] = load_tokenizer(name, revision=revision, trust_remote_code=self.trust_remote_code)
        return self.tokenizers[name]

    def student(self, stage: DistillStageConfig, teacher: ModelShape) -> ModelShape:
        """The shape of the student `stage.student` builds: the plan `build_student` builds from, checked."""
        plan = plan_student(stage.student, teacher.vocabulary_of)
        where, label = f"stage '{stage.name}'", f"the student of stage '{stage.name}'"
        # A kept-layers or fresh student of the stage's teacher starts from that teacher's shape (it may not
        # exist yet: the previous stage's student); any other model is read from its files.
        base = teacher if plan.from_teacher else self.real_model(plan.base)
        try:
            if plan.fresh is not None:
                check_fresh_family(base.config, base.label)
                return ModelShape(label, plan.fresh.num_layers, base.vocabulary_of, base.config)
            if plan.layers is None:
                return base
            if base.layers is not None:
                check_kept_layers(plan.layers, base.layers, base.label)
        except ModelError as exc:
            raise ModelError(f"{where}: {'student.fresh: ' if plan.fresh else ''}{exc}") from None
        return ModelShape(label, len(plan.layers), base.vocabulary_of, base.config)

    def same_vocabulary(self, teacher: ModelShape, student: ModelShape) -> None:
        if teacher.vocabulary_of != student.vocabulary_of:
            check_same_vocabulary(
                teacher.vocabulary_of,
                self.tokenizer(teacher.vocabulary_of),
                student.vocabulary_of,
                self.tokenizer(student.vocabulary_of),
            )


def check_chain(config: RunConfig) -> None:
    """Every stage's student can be built from its teacher, shares its vocabulary and fits its layer map."""
    chain = _Chain(config.teacher.trust_remote_code)
    teacher = config.teacher
    run_teacher = chain.real_model(
        teacher.model, revision=teacher.revision, allow_pickle_weights=teacher.allow_pickle_weights
    )
    previous = run_teacher
    for stage in config.stages:
        stage_teacher = previous if stage.teacher == "previous" else run_teacher
        student = chain.student(stage, stage_teacher)
        chain.same_vocabulary(stage_teacher, student)
        intermediate = stage.intermediate_layer
        if intermediate is not None and student.layers is not None and stage_teacher.layers is not None:
            try:
                resolve_layer_map(intermediate.layer_map, student.layers, stage_teacher.layers)
            except ConfigError as exc:
                raise ConfigError(f"stage '{stage.name}': intermediate_layer.{exc}") from None
        previous = student
