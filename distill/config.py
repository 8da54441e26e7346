"""Typed run configs: YAML in, validated pydantic models out.

Every section forbids unknown keys, so a typo (`learning_rat:`) is an error rather than
a silently ignored default. String values may reference the environment as `${VAR}` or
`${VAR:-default}` (write `$${` for a literal `${`). Errors name the file, the field and
the bad value on one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from distill.augment.config import AugmentConfig
from distill.config_base import StrictModel
from distill.errors import ConfigError
from distill.precision import Precision
from distill.sweep import SWEEP_METRICS, SweepConfig, SweepRange, stage_field, trial_config

# --------------------------------------------------------------------------- data


class DataSource(StrictModel):
    """Where a dataset comes from: a local file, or a Hugging Face hub dataset id."""

    path: str = Field(description="Local file (.json/.json.gz SQuAD, .tsv/.csv/.jsonl, optionally .gz) or hub id.")
    split: str | None = Field(default=None, description="Hub split, e.g. 'train' or 'validation'. Ignored for files.")
    name: str | None = Field(default=None, description="Hub dataset config name, e.g. 'sst2' for 'glue'.")
    revision: str | None = Field(default=None, description="Hub revision; pin it for reproducible runs.")
    local_copy: str | None = Field(
        default=None,
        description="File under $DISTILL_DATA_DIR read instead of `path` when that variable is set "
        "(one config for offline and connected machines).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        # Most configs name a file: accept a bare string as the path.
        return {"path": value} if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


ArticleSelection = Annotated[int, Field(ge=1)] | list[str]

# A validation set is where choices are made (sweeps, min_teacher_metric, the v2 no-answer threshold), so that
# eval stays the test set: reported, never selected on. Both data sections take it the same two ways.
ValidationFraction = Annotated[
    float | None,
    Field(
        gt=0,
        lt=1,
        description="Hold out this share of the training data as the validation set (seeded by validation_seed), "
        "so choices are made on it and eval stays the test set. QA: whole articles of the training selection, so "
        "no paragraph is in both; classification: distinct texts (pairs), so no sentence is in both. Held out "
        "before max_train_samples. Not with data.validation.",
    ),
]
ValidationSeed = Annotated[
    int,
    Field(
        description="Seed of the share validation_fraction holds out (and of the max_validation_samples sample "
        "for classification); apart from sample_seed, so a different training subset keeps the same validation set.",
    ),
]
MaxValidationSamples = Annotated[
    int | None,
    Field(
        ge=1,
        description="Cap on validation questions (QA: the first N in file order) or rows (classification: a "
        "sample seeded by validation_seed), for quicker selection. None: the whole validation set.",
    ),
]


def _check_validation_fields(data: QADataConfig | ClassificationDataConfig) -> None:
    """The rules both data sections share for their validation set (one-line messages naming the fields)."""
    if data.validation is not None and data.validation_fraction is not None:
        raise ValueError("set data.validation or data.validation_fraction, not both")
    if data.validation_fraction is not None and data.train is None:
        raise ValueError("validation_fraction needs data.train (the data it is held out from)")
    if data.max_validation_samples is not None and data.validation is None and data.validation_fraction is None:
        raise ValueError("max_validation_samples needs data.validation or data.validation_fraction")


class QADataConfig(StrictModel):
    """Extractive QA in SQuAD format (v1.1, or v2.0 with unanswerable questions)."""

    task: Literal["qa"] = "qa"
    train: DataSource | None = Field(default=None, description="Training data; may be the same file as eval.")
    eval: DataSource = Field(description="Evaluation data.")
    train_articles: ArticleSelection | None = Field(
        default=None,
        description="Articles to train on: the first N in file order, or a list of titles. "
        "Needed when train and eval are one file (only SQuAD dev is available offline).",
    )
    eval_articles: ArticleSelection | None = Field(
        default=None, description="Articles to evaluate on: the last N in file order, or a list of titles."
    )
    validation: DataSource | None = Field(
        default=None,
        description="Validation data of its own, where choices are made (sweeps, min_teacher_metric; on v2 the "
        "no-answer threshold, the official script's best_f1_thresh, with eval figures at it as tuned_*), so eval "
        "stays the test set. May be the train or eval file (split by validation_articles).",
    )
    validation_articles: ArticleSelection | None = Field(
        default=None,
        description="Articles to validate on: a list of titles, or N: the first N in file order that are not "
        "training articles (train | validation | ... | eval when all three are one file). Must not overlap train "
        "or eval.",
    )
    validation_fraction: ValidationFraction = None
    validation_seed: ValidationSeed = 0
    max_validation_samples: MaxValidationSamples = None
    version_2_with_negative: bool | None = Field(
        default=None, description="Allow no-answer predictions. None: true when the data has unanswerable questions."
    )
    max_seq_length: int = Field(default=384, ge=32, le=8192, description="Tokens per window (question + context).")
    doc_stride: int = Field(default=128, ge=1, description="Overlap between consecutive windows of a long context.")
    n_best_size: int = Field(default=20, ge=1, description="Start/end candidates searched per window.")
    max_answer_length: int = Field(default=30, ge=1, description="Longest answer, in tokens.")
    null_score_diff_threshold: float = Field(
        default=0.0,
        description="v2: abstain when the no-answer odds (null score minus best span score, a logit difference) "
        "exceed this; the official script's --na-prob-thresh on the null_odds.json evaluation writes. 0: HF's default.",
    )
    max_train_samples: int | None = Field(default=None, ge=1, description="Cap on training questions (smoke runs).")
    max_eval_samples: int | None = Field(default=None, ge=1, description="Cap on evaluation questions.")

    @model_validator(mode="after")
    def _stride_fits(self) -> QADataConfig:
        if self.doc_stride >= self.max_seq_length:
            raise ValueError(
                f"doc_stride ({self.doc_stride}) must be smaller than max_seq_length ({self.max_seq_length})"
            )
        return self

    @model_validator(mode="after")
    def _validation_articles_need_a_source(self) -> QADataConfig:
        if self.validation_articles is not None and self.validation is None:
            raise ValueError("validation_articles needs data.validation (the file to take them from)")
        _check_validation_fields(self)
        return self


class ClassificationDataConfig(StrictModel):
    """Sentence (or sentence-pair) classification from TSV/CSV/JSONL files or the hub."""

    task: Literal["classification"] = "classification"
    train: DataSource | None = Field(default=None, description="Training data.")
    eval: DataSource = Field(description="Evaluation data.")
    text_column: str = Field(default="sentence", description="Column holding the text.")
    text_pair_column: str | None = Field(default=None, description="Second text column for pair tasks (e.g. MNLI).")
    label_column: str = Field(default="label", description="Column holding the label.")
    labels: list[str] | None = Field(
        default=None,
        min_length=2,
        description="The label set, in id order. None: the sorted distinct labels of the training data.",
    )
    max_seq_length: int = Field(default=128, ge=8, le=8192, description="Tokens per sentence after truncation.")
    max_train_samples: int | None = Field(default=None, ge=1, description="Cap on training rows.")
    max_eval_samples: int | None = Field(default=None, ge=1, description="Cap on evaluation rows.")
    sample_seed: int | None = Field(
        default=None,
        description="Shuffle training rows with random.Random(seed) before capping, for a fixed random subset. "
        "None keeps file order.",
    )
    validation: DataSource | None = Field(
        default=None,
        description="Validation data of its own (hub split default 'validation'), where choices are made (sweeps, "
        "min_teacher_metric), so eval stays the test set. Must not be the eval data.",
    )
    validation_fraction: ValidationFraction = None
    validation_seed: ValidationSeed = 0
    max_validation_samples: MaxValidationSamples = None

    @model_validator(mode="after")
    def _validation_fields(self) -> ClassificationDataConfig:
        _check_validation_fields(self)
        return self


DataConfig = Annotated[QADataConfig | ClassificationDataConfig, Field(discriminator="task")]

# --------------------------------------------------------------------------- models and training


class ModelConfig(StrictModel):
    """A model by hub id, local folder, or short name (`minilm`: the packaged all-MiniLM-L6-v2)."""

    model: str = Field(description="Hub id, local folder, or a short name such as 'minilm'.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(
        default=False, description="Run model code shipped with the checkpoint. Off: it executes arbitrary code."
    )
    allow_pickle_weights: bool = Field(
        default=False, description="Also load pickle (.bin) weights. Off: only safetensors, which cannot run code."
    )


class TrainingConfig(StrictModel):
    """Optimisation settings for one training stage (HF Trainer arguments, named the same way)."""

    epochs: float = Field(default=2.0, gt=0, description="Passes over the training features.")
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    learning_rate: float = Field(default=5e-5, gt=0, le=1.0, description="Peak AdamW learning rate.")
    batch_size: int = Field(default=16, ge=1, description="Training batch size per device.")
    eval_batch_size: int = Field(
        default=64,
        ge=1,
        description="Inference batch size inside this step (the teacher's logit pass of prediction-layer "
        "distillation); models are scored at evaluation.batch_size.",
    )
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Share of steps spent warming up linearly.")
    logging_steps: int = Field(default=10, ge=1, description="Log loss and learning rate every N steps.")
    save_steps: int = Field(default=100, ge=1, description="Checkpoint every N steps; retries resume from the newest.")
    save_total_limit: int = Field(default=2, ge=1, description="Checkpoints kept on disk.")


class TeacherConfig(ModelConfig):
    """The large model whose accuracy the students should keep."""

    finetuned: bool = Field(default=False, description="True: already fine-tuned on the task; skip fine-tuning.")
    training: TrainingConfig = Field(default_factory=TrainingConfig)


class FreshStudentConfig(StrictModel):
    """A randomly initialised student with the teacher's architecture family and vocabulary."""

    num_layers: int = Field(ge=1, description="Transformer layers.")
    hidden_size: int = Field(ge=8, description="Width; must be divisible by num_heads.")
    num_heads: int = Field(ge=1, description="Attention heads.")
    intermediate_size: int = Field(ge=8, description="Feed-forward width (BERT uses 4x hidden_size).")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> FreshStudentConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self


class StudentConfig(StrictModel):
    """How the student is made: a pretrained model, selected layers of a bigger one, or a fresh config."""

    model: str | None = Field(default=None, description="A pretrained student: hub id, folder or short name.")
    layers: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description="Keep these encoder layers (0-based, in order) of `source`, DistilBERT-style; "
        "e.g. [0, 1, 2] for the first three.",
    )
    source: str | None = Field(
        default=None, description="Model whose layers are kept. None: this stage's teacher (fine-tuned weights)."
    )
    fresh: FreshStudentConfig | None = Field(
        default=None, description="A new, randomly initialised student of this size with the teacher's vocabulary."
    )

    @model_validator(mode="after")
    def _one_recipe(self) -> StudentConfig:
        recipes = [name for name in ("model", "layers", "fresh") if getattr(self, name) is not None]
        if len(recipes) != 1:
            raise ValueError("set exactly one of student.model, student.layers or student.fresh")
        if self.layers is not None and len(set(self.layers)) != len(self.layers):
            raise ValueError(f"student.layers has duplicates: {self.layers}")
        if self.model is not None and self.source is not None:
            raise ValueError("student.source applies to student.layers only")
        return self


class IntermediateTrainingConfig(TrainingConfig):
    learning_rate: float = Field(default=5e-5, gt=0, le=1.0, description="Peak AdamW learning rate.")


class IntermediateLayerConfig(StrictModel):
    """TinyBERT's first step: the student matches the teacher's embeddings, hidden states and attentions."""

    layer_map: Literal["uniform", "last"] | list[tuple[int, int]] = Field(
        default="uniform",
        description="'uniform' (student layer i <- teacher layer round(i L_T / L_S)), 'last' (the teacher's last "
        "L_S layers) or explicit [student, teacher] pairs; 0 is the embedding output.",
    )
    embedding_weight: float = Field(default=1.0, ge=0, description="Weight of the embedding-output MSE.")
    hidden_weight: float = Field(default=1.0, ge=0, description="Weight of the hidden-state MSE (all mapped layers).")
    attention_weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the attention loss (mean over pairs of transformer layers). 1 as in TinyBERT: at the "
        "first log the attention term is 9-76x the hidden-state one with MiniLM-L6 (benchmarks/intermediate_terms.py).",
    )
    attention_loss: Literal["mse", "kl"] = Field(
        default="mse",
        description="'mse': MSE between attention scores QK^T/sqrt(d_head) before the softmax, per head (TinyBERT); "
        "'kl': KL(teacher || student) between the attention distributions before dropout (MiniLM). Both over real "
        "tokens only and never after dropout; head means when head counts differ.",
    )
    training: IntermediateTrainingConfig = Field(default_factory=IntermediateTrainingConfig)

    @model_validator(mode="after")
    def _some_weight(self) -> IntermediateLayerConfig:
        if self.embedding_weight == self.hidden_weight == self.attention_weight == 0:
            raise ValueError("at least one of embedding_weight, hidden_weight, attention_weight must be > 0")
        return self


class PredictionTrainingConfig(TrainingConfig):
    learning_rate: float = Field(default=3e-5, gt=0, le=1.0, description="Peak AdamW learning rate.")


class PredictionLayerConfig(StrictModel):
    """Hinton soft-target distillation: L = w T^2 KL(teacher || student) + (1 - w) CE(labels)."""

    temperature: float = Field(default=2.0, gt=0, description="Softmax temperature T for both models.")
    loss_weight: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="w: weight of the soft-target term; 1 needs no labels, 0 is plain training.",
    )
    teacher_cache: bool = Field(
        default=True,
        description="Run the teacher once over the training features and reuse its logits from disk. "
        "False runs it every step (for data that changes every epoch).",
    )
    training: PredictionTrainingConfig = Field(default_factory=PredictionTrainingConfig)


class DistillStageConfig(StrictModel):
    """One student: how it is built and how it learns from its teacher."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Stage name (lowercase, digits, dashes).")
    teacher: Literal["previous", "original"] = Field(
        default="previous",
        description="'previous': the distilled student of the stage before (the run's teacher for the first "
        "stage), a progressive chain; 'original': the run's teacher, to compare against direct distillation.",
    )
    student: StudentConfig
    intermediate_layer: IntermediateLayerConfig | None = Field(
        default=None, description="Run TinyBERT intermediate-layer distillation first (then prediction-layer)."
    )
    prediction_layer: PredictionLayerConfig = Field(default_factory=PredictionLayerConfig)
    baseline: bool = Field(
        default=False, description="Also train the same student without distillation, to report the lift."
    )
    sweep: SweepConfig | None = Field(
        default=None,
        description="Try several settings for this stage (each trial a cached stage run); the trial with the best "
        "validation metric is the stage's student. Needs validation data (data.validation or validation_fraction).",
    )
    min_teacher_metric: float | None = Field(
        default=None,
        description="Fail early when the teacher's metric (accuracy 0-1, or SQuAD F1 0-100) is below this: on the "
        "validation set when the run has one (data.validation or data.validation_fraction), else on eval.",
    )


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
    artifact_root: str = Field(default="./artifacts", description="Where stage outputs are written.")
    data: DataConfig
    teacher: TeacherConfig
    augmentation: AugmentConfig | None = Field(
        default=None,
        description="Multiply the training data once (TinyBERT); every distillation step of every stage trains on "
        "it. The teacher and the baselines train on the original data, so the lift includes augmentation.",
    )
    stages: list[DistillStageConfig] = Field(default_factory=list, description="Students, in order.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
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
