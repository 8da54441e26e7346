"""Config sections for the data: sources, the QA and classification data settings, validation splits."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from distill.config.base import StrictModel, repeated

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

    @field_validator("labels")
    @classmethod
    def _no_repeats(cls, labels: list[str] | None) -> list[str] | None:
        # Each label is one class id: a repeat would otherwise surface later as a data row "not in the label set".
        if labels is not None and repeated(labels):
            raise ValueError(f"labels repeat: {repeated(labels)}; list each label once, in id order")
        return labels

    @model_validator(mode="after")
    def _validation_fields(self) -> ClassificationDataConfig:
        _check_validation_fields(self)
        return self


DataConfig = Annotated[QADataConfig | ClassificationDataConfig, Field(discriminator="task")]
