"""The run config: every section together, its cross-field checks, and reading it from YAML.

Every section forbids unknown keys, so a typo (`learning_rat:`) is an error rather than
a silently ignored default. String values may reference the environment as `${VAR}` or
`${VAR:-default}` (write `$${` for a literal `${`). Errors name the file, the field and
the bad value on one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from distill.config.augment import AugmentConfig
from distill.config.base import StrictModel
from distill.config.data import DataConfig
from distill.config.export import ExportConfig
from distill.config.models import DistillStageConfig, TeacherConfig
from distill.config.sweep import SWEEP_METRICS, SweepRange, stage_field, trial_config
from distill.config.tracking import TrackingConfig
from distill.errors import ConfigError
from distill.precision import Precision


class EvaluationConfig(StrictModel):
    """How models are scored and measured: the task metric's batch size, then latency and throughput."""

    batch_size: int = Field(default=64, ge=1, description="Batch size of scoring a model on eval and validation data.")

    latency_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Seconds of timed batch-1 forwards (after a quarter of that in warm-up; throughput gets half): "
        "hundreds of samples for a small model, so a moment of other work on the machine cannot move the median.",
    )
    latency_samples: int = Field(
        default=20, ge=1, description="At least this many timed batch-1 forwards, however long a slow model takes."
    )
    throughput_batch_size: int = Field(default=32, ge=1, description="Batch size for the throughput figure.")
    latency_threads: int = Field(
        default=1,
        ge=1,
        description="torch CPU threads while timing. 1: with torch on every core, each operator waits for whichever "
        "thread another process preempted, and batch-1 latency jumped 5-100x whenever anything else ran (measured "
        "on 2 cores); one thread per request is also how CPU inference is usually served. Reported with the figures.",
    )


class RunConfig(StrictModel):
    """One distillation run: data, teacher, stages and where results go."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name, used in artifact paths.")
    seed: int = Field(default=42, description="Seeds data sampling, initialisation and training.")
    artifact_root: str = Field(
        default="./artifacts",
        description="Where stage outputs are written: a folder (local or a shared mount), or s3://bucket/prefix to "
        "share finished stages between machines (each keeps a local cache; see deployments/README.md).",
    )
    data: DataConfig
    teacher: TeacherConfig
    augmentation: AugmentConfig | None = Field(
        default=None,
        description="Multiply the training data once (TinyBERT); every distillation step of every stage trains on "
        "it. The teacher and the baselines train on the original data, so the lift includes augmentation.",
    )
    stages: list[DistillStageConfig] = Field(default_factory=list, description="Students, in order.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    export: ExportConfig | None = Field(
        default_factory=ExportConfig,
        description="ONNX exports of the trained students (by default the final one, fp32 and int8), each checked "
        "against PyTorch and evaluated beside it. null exports nothing.",
    )
    tracking: TrackingConfig | None = Field(
        default=None,
        description="Also send each training stage's logged metrics to TensorBoard and/or MLflow. Observation only: "
        "no cache key depends on it. null (the default) tracks nothing beyond the Prefect UI.",
    )
    precision: Precision = Field(
        default="auto",
        description="'fp32', 'bf16' (autocast) or 'auto': bf16 on CUDA with bf16 and on CPUs with AMX-BF16 or "
        "AVX512-BF16, where it trains ~2.5x and infers ~3-4x faster; fp32 elsewhere. Applies to every stage.",
    )

    @model_validator(mode="after")
    def _unique_stage_names(self) -> RunConfig:
        names = [stage.name for stage in self.stages]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"stage names must be unique; repeated: {duplicates}")
        return self

    @model_validator(mode="after")
    def _sweeps_can_run(self) -> RunConfig:
        for index, stage in enumerate(self.stages):
            if stage.sweep is not None:
                _check_sweep(self, index, stage)
        return self


def _check_sweep(config: RunConfig, index: int, stage: DistillStageConfig) -> None:
    """A sweep is checked whole before anything runs: its data, its metric, and every value it may set."""
    sweep, where = stage.sweep, f"stages[{index}].sweep"
    assert sweep is not None
    if config.data.validation is None and config.data.validation_fraction is None:
        raise ValueError(
            f"{where}: needs validation data to choose on (data.validation or data.validation_fraction); "
            "data.eval is the test set and is never chosen on"
        )
    metrics = SWEEP_METRICS[config.data.task]
    if sweep.metric is not None and sweep.metric not in metrics:
        raise ValueError(f"{where}.metric: unknown metric '{sweep.metric}' for {config.data.task}; use one of "
                         f"{', '.join(metrics)}")  # fmt: skip
    if sweep.metric == "best_f1" and getattr(config.data, "version_2_with_negative", None) is False:
        raise ValueError(f"{where}.metric: best_f1 is scored with no-answer odds, and this run's QA is v1.1 (no "
                         "abstention); use f1 or exact")  # fmt: skip
    for name, space in sweep.params.items():
        section = name.split(".")[0]
        if section == "intermediate_layer" and stage.intermediate_layer is None:
            raise ValueError(f"{where}.params.{name}: the stage has no intermediate_layer to sweep")
        if section == "augmentation" and config.augmentation is None:
            raise ValueError(f"{where}.params.{name}: the run has no augmentation to sweep")
        if name.endswith(".training.epochs") and stage_field(config, stage.name, name.replace("epochs", "max_steps")):
            raise ValueError(f"{where}.params.{name}: the stage sets max_steps, which overrides epochs")
        # The values' bounds are the fields' own (e.g. loss_weight in [0, 1]): try each extreme on a copy.
        for value in [space.low, space.high] if isinstance(space, SweepRange) else space:
            try:
                trial_config(config, stage.name, {name: value})
            except ValidationError as exc:
                problem = exc.errors(include_url=False)[0]["msg"]
                raise ValueError(f"{where}.params.{name}: {value!r} is not a valid value: {problem}") from None
    # Rules across fields (e.g. not every intermediate weight 0) hold for each trial a grid will run, and for
    # the corners of a sampler's space.
    for params in sweep.grid() if sweep.method == "grid" else sweep.corners():
        try:
            trial_config(config, stage.name, params)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"{where}: the trial {params} is not a valid config: {problem}") from None


# --------------------------------------------------------------------------- loading

_ENV_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate_env(value: Any, *, where: str = "", env: dict[str, str] | None = None) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string of a parsed YAML tree.

    Done on parsed values, not raw text, so a value containing YAML syntax cannot change
    the document's structure. `where` is the dotted field path used in error messages.
    """
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: interpolate_env(v, where=_join(where, k), env=env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, where=f"{where}[{i}]", env=env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found is not None and (found != "" or default is None):
            return found
        if default is not None:
            return default
        raise ConfigError(f"{where or 'value'}: environment variable {name} is not set (use ${{{name}:-default}})")

    return _ENV_PATTERN.sub(substitute, value)


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line: `source: field.path: problem (got value)`, plus a count of further problems."""
    problems = error.errors(include_url=False)
    first = problems[0]
    loc = ""
    for part in first["loc"]:
        # Discriminated unions add the tag name ('qa') as a location part; hide it.
        if isinstance(part, int):
            loc += f"[{part}]"
        elif part not in ("qa", "classification"):
            loc = _join(loc, part)
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    # A check of the whole config names its own field (e.g. "stages[0].sweep: ...").
    line = f"{source}: {loc}: {message}" if loc else f"{source}: {message}"
    if first["type"] not in ("missing",) and "input" in first and not isinstance(first["input"], dict):
        line += f" (got {first['input']!r})"
    if len(problems) > 1:
        line += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return line


def parse_config(raw: Any, *, source: str = "config") -> RunConfig:
    """Validate an already-parsed mapping (e.g. a Prefect flow parameter) into a RunConfig."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        raw = interpolate_env(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a YAML run config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{at}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: config file is empty")
    return parse_config(raw, source=str(path))
