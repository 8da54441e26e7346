"""Typed stage inputs: exactly what one stage body reads, and therefore exactly what its cache key hashes.

A stage body takes one of these objects and nothing else from the run's config, so the key
cannot drift from what the stage reads: add a field the body needs and it is in the key;
read one the input lacks and the body fails (the inputs are frozen and strict). The key is
the hash of `key_payload()` plus the source of the code the stage runs (`code_fingerprint`
of `modules`, which follows imports, so this planning code is part of it too).

Three kinds of reference make an input fingerprint its own content:
  - `DataRef`: the data section and the hash of its source files' bytes;
  - `ModelRef`: a model by name; a local folder by the hash of its files, a hub model by id and revision;
  - `ArtifactRef`: an upstream stage's output by the hash of its output files. Where those
    files lie is not part of the key, and a recompute that writes identical bytes leaves
    every successor's key, hence its cache entry, as it was.

The `plan_*` functions (distill.stages.plan) build inputs from a `RunConfig`; they are the only
code that reads the run config on a stage's behalf.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from distill.config import (
    DataConfig,
    EvaluationConfig,
    ExportFormat,
    IntermediateLayerConfig,
    PredictionLayerConfig,
    PredictionTrainingConfig,
    StudentConfig,
    TeacherConfig,
    TrainingConfig,
)
from distill.config.augment import AugmentConfig
from distill.config.base import StrictModel
from distill.precision import ResolvedPrecision


class Frozen(StrictModel):
    """Immutable; written out as JSON (manifests) with secrets redacted, as every config section is."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DataRef(Frozen):
    """The run's data section, known in the key by its fingerprint: the sources' bytes and every other
    setting, not where the files lie (moving the data recomputes nothing)."""

    config: DataConfig = Field(exclude=True)
    fingerprint: str


class ModelRef(Frozen):
    """A model as the user named it; `fingerprint` is its local files' hash or `hub:<id>@<revision>`."""

    name: str
    revision: str | None = None
    fingerprint: str


class ArtifactRef(Frozen):
    """An upstream stage's output: its content hash (in the key) and where it lies (not in the key)."""

    content: str = Field(description="sha256 over the output files' names and bytes.")
    uri: str = Field(exclude=True, description="The stage directory, or a model folder used as is.")
    model_path: str | None = Field(default=None, exclude=True, description="Its model folder, if it has one.")

    def model(self) -> str:
        """The model folder; a stage handed an artifact without one is a wiring bug, not a user error."""
        if self.model_path is None:
            raise ValueError(f"artifact {self.uri} holds no model")
        return self.model_path


class StageInput(Frozen):
    """Base of every stage's input. `kind` names the stage; `modules` are the code it runs."""

    kind: ClassVar[str]
    modules: ClassVar[tuple[str, ...]]

    def key_payload(self) -> dict[str, Any]:
        """What the cache key hashes: every field, less those marked `exclude` (locations, names for messages)."""
        return self.model_dump(mode="json")

    def training_settings(self) -> TrainingConfig | None:
        """The training this stage runs; None for a stage that trains nothing."""
        return None

    @property
    def devices(self) -> int:
        """Devices the stage trains on (`training.devices`), so the slots it holds; 1 without training."""
        training = self.training_settings()
        return training.devices if training is not None else 1


class TeacherInput(StageInput):
    kind: ClassVar[str] = "finetune_teacher"
    modules: ClassVar[tuple[str, ...]] = ("distill.stages.teacher", "distill.stages.plan")

    seed: int
    precision: ResolvedPrecision
    data: DataRef
    teacher: TeacherConfig
    model: ModelRef

    def training_settings(self) -> TrainingConfig:
        return self.teacher.training


class AugmentInput(StageInput):
    kind: ClassVar[str] = "augment_training_data"
    modules: ClassVar[tuple[str, ...]] = ("distill.stages.augment", "distill.stages.plan")

    seed: int
    data: DataRef
    augmentation: AugmentConfig
    vectors: str | None = Field(description="Fingerprint of a local vectors file or folder, when one is used.")
    mlm: ModelRef | None = Field(description="The masked LM, when the method uses one.")

    def key_payload(self) -> dict[str, Any]:
        # Only what changes the output bytes: a new worker count gives the same file, so it must not recompute.
        payload = self.model_dump(mode="json", exclude={"augmentation"})
        return payload | {"augmentation": self.augmentation.output_settings(self.seed)}


class _Scoring(StageInput):
    """What scoring a model reads: the data, how to batch it, the precision, and the model."""

    modules: ClassVar[tuple[str, ...]] = ("distill.stages.evaluate", "distill.stages.plan")

    data: DataRef
    batch_size: int
    precision: ResolvedPrecision = Field(description="Scoring precision: models are scored on the CPU.")
    trust_remote_code: bool
    model: ArtifactRef


class EvaluateInput(_Scoring):
    kind: ClassVar[str] = "evaluate"

    label: str = Field(description="Names the model in its metrics and reports, e.g. 'teacher'.")
    cost: EvaluationConfig = Field(description="How latency and throughput are measured.")
    speed_precision: ResolvedPrecision = Field(description="The precision on the device latency is timed on.")


class ValidateInput(_Scoring):
    kind: ClassVar[str] = "validate"


class StudentStepInput(StageInput):
    """What every step that trains a stage's student reads."""

    seed: int
    precision: ResolvedPrecision
    data: DataRef
    trust_remote_code: bool
    student: StudentConfig
    student_models: tuple[ModelRef, ...] = Field(description="Models `student` names (model or source).")
    teacher: ArtifactRef
    stage: str = Field(exclude=True, description="The config stage's name, for messages.")


class IntermediateInput(StudentStepInput):
    kind: ClassVar[str] = "distill_intermediate_layers"
    modules: ClassVar[tuple[str, ...]] = ("distill.stages.intermediate", "distill.stages.plan")

    intermediate_layer: IntermediateLayerConfig
    augmented: ArtifactRef | None = Field(description="Augmented training data, when the run augments.")

    def training_settings(self) -> TrainingConfig:
        return self.intermediate_layer.training


class PredictionInput(StudentStepInput):
    kind: ClassVar[str] = "distill_prediction_layer"
    modules: ClassVar[tuple[str, ...]] = ("distill.stages.prediction", "distill.stages.plan")

    prediction_layer: PredictionLayerConfig
    student_init: ArtifactRef | None = Field(description="The intermediate-layer step's student, when there is one.")
    augmented: ArtifactRef | None = Field(description="Augmented training data, when the run augments.")
    logits_root: str = Field(exclude=True, description="Where teacher logits are cached (keyed by their own content).")

    def training_settings(self) -> TrainingConfig:
        return self.prediction_layer.training


class BaselineInput(StudentStepInput):
    kind: ClassVar[str] = "train_baseline"
    modules: ClassVar[tuple[str, ...]] = ("distill.stages.prediction", "distill.stages.plan")

    training: PredictionTrainingConfig = Field(description="The prediction-layer step's schedule, on labels only.")

    def training_settings(self) -> TrainingConfig:
        return self.training


class ExportInput(StageInput):
    kind: ClassVar[str] = "export"
    modules: ClassVar[tuple[str, ...]] = ("distill.stages.export", "distill.stages.plan")

    data: DataRef = Field(description="The eval data the export is checked on.")
    batch_size: int
    trust_remote_code: bool
    model: ArtifactRef
    export_format: ExportFormat
    opset: int
    max_abs_diff: float = Field(description="fp32: the largest logit difference allowed.")
    min_agreement: float = Field(description="int8: the share of predictions that must agree.")
    label: str = Field(exclude=True, description="The exported model's name, for messages.")


STAGE_INPUTS: tuple[type[StageInput], ...] = (
    TeacherInput,
    AugmentInput,
    EvaluateInput,
    ValidateInput,
    IntermediateInput,
    PredictionInput,
    BaselineInput,
    ExportInput,
)
STAGE_KINDS: tuple[str, ...] = tuple(cls.kind for cls in STAGE_INPUTS)
