"""Typed run configs: YAML in, validated pydantic models out (see `run` for the rules every section follows).

base    the strict base model every section derives from; each task's headline metric
data    data sources and the QA / classification data settings
models  teacher, student, training schedules and the two distillation steps of a stage
export  the `export:` section: ONNX formats and their checks
tracking the `tracking:` section: TensorBoard and MLflow
run     the whole run: evaluation settings, cross-field checks, reading YAML with ${VAR} interpolation
"""

from distill.config.base import TASK_METRICS, StrictModel, task_metric
from distill.config.data import ClassificationDataConfig, DataConfig, DataSource, QADataConfig
from distill.config.export import EXPORT_FORMATS, ExportConfig, ExportFormat
from distill.config.models import (
    DistillStageConfig,
    FreshStudentConfig,
    IntermediateLayerConfig,
    IntermediateTrainingConfig,
    ModelConfig,
    PredictionLayerConfig,
    PredictionTrainingConfig,
    StudentConfig,
    TeacherConfig,
    TrainingConfig,
)
from distill.config.run import (
    EvaluationConfig,
    RunConfig,
    format_validation_error,
    interpolate_env,
    load_config,
    parse_config,
)
from distill.config.tracking import Tracker, TrackingConfig

__all__ = [
    "TASK_METRICS",
    "ClassificationDataConfig",
    "DataConfig",
    "DataSource",
    "DistillStageConfig",
    "EXPORT_FORMATS",
    "EvaluationConfig",
    "ExportConfig",
    "ExportFormat",
    "FreshStudentConfig",
    "IntermediateLayerConfig",
    "IntermediateTrainingConfig",
    "ModelConfig",
    "PredictionLayerConfig",
    "PredictionTrainingConfig",
    "QADataConfig",
    "RunConfig",
    "StrictModel",
    "StudentConfig",
    "TeacherConfig",
    "Tracker",
    "TrackingConfig",
    "TrainingConfig",
    "format_validation_error",
    "interpolate_env",
    "load_config",
    "parse_config",
    "task_metric",
]
