"""Load the train/eval data a run config describes, and fingerprint it for cache keys.

Three kinds of source: a local file, a hub dataset id, or `synthetic:qa` /
`synthetic:sentiment` (generated, for tests and the tiny config). A source with
`local_copy` reads that file under $DISTILL_DATA_DIR when the variable is set, and the
hub dataset otherwise, so one config serves offline and connected machines.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Hashable
from dataclasses import dataclass, replace
from pathlib import Path

from distill.config import ClassificationDataConfig, DataConfig, DataSource, QADataConfig
from distill.data.classification import (
    ClassificationDataset,
    encode_labels,
    infer_label_list,
    read_classification,
    sample_rows,
)
from distill.data.sources import is_local
from distill.data.squad import (
    SquadDataset,
    cap_questions,
    check_disjoint,
    parse_squad,
    read_squad,
    select_articles,
    split_by_article,
)
from distill.data.synthetic import synthetic_sentiment, synthetic_squad
from distill.errors import DataError
from distill.store.fingerprint import file_fingerprint, hash_object

SYNTHETIC_PREFIX = "synthetic:"


def effective_source(source: DataSource) -> DataSource:
    """Apply `local_copy`: the file under $DISTILL_DATA_DIR when that is set, else the source as written."""
    data_dir = os.environ.get("DISTILL_DATA_DIR")
    if source.local_copy and data_dir:
        return DataSource(path=str(Path(data_dir) / source.local_copy))
    return source


def source_fingerprint(source: DataSource) -> str:
    """Content hash for local files; id, config, split and revision for hub and synthetic sources."""
    source = effective_source(source)
    if not source.path.startswith(SYNTHETIC_PREFIX) and is_local(source.path):
        path = Path(source.path).expanduser()
        if not path.is_file():
            raise DataError(f"{source.path}: file not found")
        # The suffix too: it decides how the bytes are parsed (the same bytes as .csv and .tsv are other data).
        return f"file:{''.join(path.suffixes).lower()}:{file_fingerprint(path)}"
    return hash_object(source.model_dump(exclude={"local_copy"}))


_SOURCE_FIELDS = ("train", "eval", "validation")


def data_fingerprint(config: DataConfig) -> str:
    """Everything about the data that changes what a stage sees: the sources' bytes and the data settings."""
    sources = {
        name: source_fingerprint(source)
        for name in _SOURCE_FIELDS
        if (source := getattr(config, name, None)) is not None
    }
    settings = config.model_dump(mode="json", exclude=set(_SOURCE_FIELDS))
    return hash_object({"sources": sources, "settings": settings})


def has_validation(config: DataConfig) -> bool:
    """Whether the run has a validation set: a source of its own or a share held out of the training data."""
    return config.validation is not None or config.validation_fraction is not None


def _held_out(keys: list[Hashable], config: DataConfig, what: str, source: str) -> set[Hashable]:
    """The distinct `keys` `validation_fraction` holds out: a `random.Random(validation_seed)` sample of them.

    Whole groups go, so whatever shares a key (an article's paragraphs, copies of a sentence)
    lands on one side; at least one group each side, else a one-line error naming the field.
    """
    assert config.validation_fraction is not None
    distinct = list(dict.fromkeys(keys))  # file order: the same sample for the same file and seed
    count = math.floor(len(distinct) * config.validation_fraction + 0.5)
    if not 0 < count < len(distinct):
        raise DataError(
            f"{source}: data.validation_fraction {config.validation_fraction} of {len(distinct)} {what} holds out "
            f"{count}; it must leave at least one on each side"
        )
    return set(random.Random(config.validation_seed).sample(distinct, count))


def _synthetic_split_seed(source: DataSource) -> int:
    # Train and evaluation splits come from disjoint seeds, so evaluation is on unseen paragraphs.
    return {"train": 0, "validation": 1, "test": 2}.get(source.split or "train", 0)


# --------------------------------------------------------------------------- QA


@dataclass(frozen=True)
class QAData:
    train: SquadDataset | None
    eval: SquadDataset
    validation: SquadDataset | None = None  # where choices are made (and, on v2, the no-answer threshold tuned)


def _read_squad_source(source: DataSource, default_split: str) -> SquadDataset:
    source = effective_source(source)
    if source.path == f"{SYNTHETIC_PREFIX}qa":
        obj = synthetic_squad(articles=8, paragraphs=4, facts=5, seed=_synthetic_split_seed(source))
        return parse_squad(obj, source=f"{source.path}[{source.split or 'train'}]")
    if source.path.startswith(SYNTHETIC_PREFIX):
        raise DataError(f"{source.path}: unknown synthetic dataset for qa (use 'synthetic:qa')")
    return read_squad(source, default_split=default_split)


def _same_file(first: DataSource | None, second: DataSource | None) -> bool:
    return first is not None and second is not None and effective_source(first) == effective_source(second)


class _SquadFiles:
    """Reads each file once: sources that compare equal are one file, split by article."""

    def __init__(self) -> None:
        self._read: dict[str, SquadDataset] = {}

    def __call__(self, source: DataSource, default_split: str) -> SquadDataset:
        key = effective_source(source).model_dump_json()
        if key not in self._read:
            self._read[key] = _read_squad_source(source, default_split)
        return self._read[key]


def load_qa_data(config: QADataConfig, *, need_train: bool = True) -> QAData:
    """Train, eval and validation SQuAD sets after the by-article splits and the question caps.

    The validation set is always loaded (preflight checks it, evaluation scores it), from
    `validation` or held out of the training selection by `validation_fraction`; so that the
    training selection is read even when `need_train` is false, and the split is the same.
    """
    read = _SquadFiles()
    whole_eval_file = read(config.eval, "validation")
    # Validation articles taken from the training file are placed after, and checked against, the training ones.
    held_out = config.validation_fraction is not None
    select_train = need_train or held_out or _same_file(config.validation, config.train)
    train = evaluation = None
    if select_train and config.train is not None:
        if _same_file(config.train, config.eval):
            if config.train_articles is None or config.eval_articles is None:
                raise DataError(
                    f"{whole_eval_file.source}: train and eval are the same file; set data.train_articles and "
                    "data.eval_articles to split it by article"
                )
            train, evaluation = split_by_article(whole_eval_file, config.train_articles, config.eval_articles)
        else:
            train = select_articles(read(config.train, "train"), config.train_articles, from_end=False)
    elif need_train:
        raise DataError("data.train: a training source is required for this run")
    if evaluation is None:
        evaluation = select_articles(whole_eval_file, config.eval_articles, from_end=True)
    if held_out and train is not None:
        train, validation = _hold_out_articles(config, train)
        check_disjoint(
            validation,
            evaluation,
            "data.validation_fraction and data.eval",
            "choices must be made on held-out questions",
        )
    else:
        validation = _select_validation(config, read, train, evaluation)
    return QAData(
        train=cap_questions(train, config.max_train_samples) if need_train and train is not None else None,
        eval=cap_questions(evaluation, config.max_eval_samples),
        validation=cap_questions(validation, config.max_validation_samples) if validation is not None else None,
    )


def _hold_out_articles(config: QADataConfig, train: SquadDataset) -> tuple[SquadDataset, SquadDataset]:
    """(train, validation): `validation_fraction` of the training articles, whole, in file order.

    Articles go by title (hub rows are grouped into articles by title); an untitled one is its own group.
    """
    keys = [title or f"untitled article {index}" for index, title in enumerate(train.titles)]
    held = _held_out(keys, config, "training articles", train.source)
    suffix = f"[validation_fraction {config.validation_fraction} seed {config.validation_seed}]"
    kept = [article for article, key in zip(train.articles, keys, strict=True) if key not in held]
    validation = [article for article, key in zip(train.articles, keys, strict=True) if key in held]
    return train.select(kept, f"[minus {suffix[1:]}"), train.select(validation, suffix)


def _select_validation(
    config: QADataConfig, read: _SquadFiles, train: SquadDataset | None, evaluation: SquadDataset
) -> SquadDataset | None:
    """The validation articles, sharing no question with the train and eval selections."""
    if config.validation is None:
        return None
    whole = read(config.validation, "validation")
    if (
        train is not None
        and isinstance(config.validation_articles, int)
        and _same_file(config.validation, config.train)
    ):
        # A count continues after the training articles: train | validation | ... | eval in file order.
        trained = {qa["id"] for qa in train.questions()}
        rest = [a for a in whole.articles if not any(qa["id"] in trained for p in a["paragraphs"] for qa in p["qas"])]
        whole = whole.select(rest, "[after the training articles]")
    validation = select_articles(whole, config.validation_articles, from_end=False)
    for name, other in (("train", train), ("eval", evaluation)):
        if other is not None:
            one_file = _same_file(config.validation, getattr(config, name))
            names = (
                f"data.validation_articles and data.{name}_articles" if one_file else f"data.validation and data.{name}"
            )
            check_disjoint(validation, other, names, "choices must be made on held-out questions")
    return validation


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class ClassificationData:
    train: ClassificationDataset | None
    eval: ClassificationDataset
    label_list: list[str]
    validation: ClassificationDataset | None = None  # where choices are made; eval stays the test set

    def train_label_ids(self) -> list[int]:
        assert self.train is not None
        return encode_labels(self.train, self.label_list)


def _read_classification_source(
    source: DataSource, config: ClassificationDataConfig, default_split: str
) -> ClassificationDataset:
    source = effective_source(source)
    if source.path == f"{SYNTHETIC_PREFIX}sentiment":
        rows = synthetic_sentiment(rows=240, seed=_synthetic_split_seed(source))
        return ClassificationDataset(
            texts=[r["sentence"] for r in rows],
            labels=[r["label"] for r in rows],
            source=f"{source.path}[{source.split or 'train'}]",
        )
    if source.path.startswith(SYNTHETIC_PREFIX):
        raise DataError(f"{source.path}: unknown synthetic dataset for classification (use 'synthetic:sentiment')")
    return read_classification(
        source,
        text_column=config.text_column,
        label_column=config.label_column,
        text_pair_column=config.text_pair_column,
        default_split=default_split,
    )


def load_classification_data(config: ClassificationDataConfig, *, need_train: bool = True) -> ClassificationData:
    """Train (seeded sample, capped), eval and validation sets with one validated label list.

    A validation set held out by `validation_fraction` comes from the whole training source,
    before `sample_seed` and `max_train_samples`; the training source is read for it even
    when `need_train` is false, so the split is the same.
    """
    evaluation = sample_rows(
        _read_classification_source(config.eval, config, "validation"), config.max_eval_samples, None
    )
    train = validation = None
    if need_train or config.validation_fraction is not None:
        if config.train is None:
            raise DataError("data.train: a training source is required for this run")
        train = _read_classification_source(config.train, config, "train")
    if config.validation_fraction is not None and train is not None:
        train, validation = _hold_out_texts(config, train, exclude=set(evaluation.texts))
    elif config.validation is not None:
        if _same_data(config.validation, config.eval, "validation"):
            raise DataError(
                f"{effective_source(config.eval).path}: data.validation and data.eval are the same data; "
                "eval is the test set, which nothing is selected on"
            )
        validation = _read_classification_source(config.validation, config, "validation")
    if validation is not None:
        # Nothing chosen on validation may have been seen in training or be scored as the test set.
        field = "data.validation_fraction" if config.validation_fraction is not None else "data.validation"
        _check_disjoint_texts(
            validation, evaluation, field, "data.eval", "eval is the test set, which nothing is chosen on"
        )
        if train is not None and config.validation_fraction is None:
            _check_disjoint_texts(validation, train, field, "data.train", "choices must be made on held-out texts")
    if validation is not None and config.max_validation_samples is not None:
        validation = sample_rows(validation, config.max_validation_samples, config.validation_seed)
    if train is not None:
        train = sample_rows(train, config.max_train_samples, config.sample_seed) if need_train else None
    label_list = config.labels or infer_label_list(train if train is not None else evaluation)
    for dataset in (train, evaluation, validation):
        if dataset is not None:
            encode_labels(dataset, label_list)  # fail now, naming the row, rather than mid-training
    return ClassificationData(train=train, eval=evaluation, label_list=label_list, validation=validation)


def _check_disjoint_texts(
    validation: ClassificationDataset, other: ClassificationDataset, field: str, name: str, consequence: str
) -> None:
    """One-line DataError when a validation text (the first text of a pair) is also in `other`."""
    shared = set(validation.texts) & set(other.texts)
    if shared:
        example = min(shared)
        raise DataError(
            f"{validation.source}: {field} and {name} share {len(shared)} texts (e.g. {example[:60]!r}); {consequence}"
        )


def _hold_out_texts(
    config: ClassificationDataConfig, train: ClassificationDataset, *, exclude: set[str]
) -> tuple[ClassificationDataset, ClassificationDataset]:
    """(train, validation): `validation_fraction` of the distinct texts, every row with it (for pair tasks, the
    first text: a premise with several hypotheses goes to one side with all of them). Texts in `exclude` (eval's)
    are never held out: a training file that repeats test sentences keeps them on the training side."""
    keys = list(train.texts)
    candidates = [key for key in keys if key not in exclude]
    held = _held_out(candidates, config, "distinct training texts not in eval", train.source)
    suffix = f"[validation_fraction {config.validation_fraction} seed {config.validation_seed}]"
    kept = [row for row, key in enumerate(keys) if key not in held]
    validation = [row for row, key in enumerate(keys) if key in held]
    return train.take(kept, f"[minus {suffix[1:]}"), train.take(validation, suffix)


def _same_data(first: DataSource, second: DataSource, default_split: str) -> bool:
    """Whether two sources read the same rows: one file, or one hub dataset, config and split."""
    first, second = effective_source(first), effective_source(second)
    if is_local(first.path) or is_local(second.path):
        return first.path == second.path
    return first.model_copy(update={"split": first.split or default_split}) == second.model_copy(
        update={"split": second.split or default_split}
    )


def describe(data: QAData | ClassificationData) -> dict[str, object]:
    """Sizes for logs and manifests."""
    if isinstance(data, QAData):
        return {
            "train_questions": data.train.num_questions if data.train else 0,
            "eval_questions": data.eval.num_questions,
            "validation_questions": data.validation.num_questions if data.validation else 0,
            "train_articles": len(data.train.articles) if data.train else 0,
            "eval_articles": len(data.eval.articles),
            "validation_articles": len(data.validation.articles) if data.validation else 0,
        }
    return {
        "train_rows": len(data.train) if data.train else 0,
        "eval_rows": len(data.eval),
        "validation_rows": len(data.validation) if data.validation else 0,
        "labels": data.label_list,
    }


# --------------------------------------------------------------------------- the run's data


# The augment stage's output file: SQuAD JSON for QA, JSONL with the config's columns for classification.
AUGMENTED_QA_FILE = "train.json"
AUGMENTED_CLASSIFICATION_FILE = "train.jsonl"


def augmented_file_name(settings: DataConfig) -> str:
    return AUGMENTED_QA_FILE if isinstance(settings, QADataConfig) else AUGMENTED_CLASSIFICATION_FILE


def load_task_data(
    settings: DataConfig, *, need_train: bool = True, train_file: str | None = None
) -> QAData | ClassificationData:
    """The run's data; `train_file` (the augment stage's output) replaces the training split when given."""
    if isinstance(settings, QADataConfig):
        data = load_qa_data(settings, need_train=need_train and train_file is None)
        return data if train_file is None else replace(data, train=read_squad(train_file))
    data = load_classification_data(settings, need_train=need_train and train_file is None)
    if train_file is None:
        return data
    train = read_classification(
        train_file,
        text_column=settings.text_column,
        label_column=settings.label_column,
        text_pair_column=settings.text_pair_column,
    )
    encode_labels(train, data.label_list)
    return replace(data, train=train)
