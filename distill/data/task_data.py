"""Load the train/eval data a run config describes, and fingerprint it for cache keys.

Three kinds of source: a local file, a hub dataset id, or `synthetic:qa` /
`synthetic:sentiment` (generated, for tests and the tiny config). A source with
`local_copy` reads that file under $DISTILL_DATA_DIR when the variable is set, and the
hub dataset otherwise, so one config serves offline and connected machines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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
from distill.errors import DataError
from distill.fingerprint import file_fingerprint, hash_object
from distill.synthetic import synthetic_sentiment, synthetic_squad

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
        return f"file:{file_fingerprint(path)}"
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


def _synthetic_split_seed(source: DataSource) -> int:
    # Train and evaluation splits come from disjoint seeds, so evaluation is on unseen paragraphs.
    return {"train": 0, "validation": 1, "test": 2}.get(source.split or "train", 0)


# --------------------------------------------------------------------------- QA


@dataclass(frozen=True)
class QAData:
    train: SquadDataset | None
    eval: SquadDataset
    validation: SquadDataset | None = None  # v2: held-out questions the no-answer threshold is tuned on


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
    """Train, eval and validation SQuAD sets after the by-article split and the question caps.

    A configured validation set is always loaded (preflight checks it, evaluation tunes on
    it) and never capped.
    """
    read = _SquadFiles()
    whole_eval_file = read(config.eval, "validation")
    # Validation articles taken from the training file are placed after, and checked against, the training ones.
    select_train = need_train or _same_file(config.validation, config.train)
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
    validation = _select_validation(config, read, train, evaluation)
    return QAData(
        train=cap_questions(train, config.max_train_samples) if need_train and train is not None else None,
        eval=cap_questions(evaluation, config.max_eval_samples),
        validation=validation,
    )


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
            check_disjoint(validation, other, names, "the no-answer threshold must be tuned on held-out questions")
    return validation


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class ClassificationData:
    train: ClassificationDataset | None
    eval: ClassificationDataset
    label_list: list[str]

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
    """Train (seeded sample, capped) and eval sets with one validated label list."""
    evaluation = sample_rows(
        _read_classification_source(config.eval, config, "validation"), config.max_eval_samples, None
    )
    train = None
    if need_train:
        if config.train is None:
            raise DataError("data.train: a training source is required for this run")
        train = sample_rows(
            _read_classification_source(config.train, config, "train"), config.max_train_samples, config.sample_seed
        )
    label_list = config.labels or infer_label_list(train if train is not None else evaluation)
    if train is not None:
        encode_labels(train, label_list)  # fail now, naming the row, rather than mid-training
    encode_labels(evaluation, label_list)
    return ClassificationData(train=train, eval=evaluation, label_list=label_list)


def describe(data: QAData | ClassificationData) -> dict[str, object]:
    """Sizes for logs and manifests."""
    if isinstance(data, QAData):
        return {
            "train_questions": data.train.num_questions if data.train else 0,
            "eval_questions": data.eval.num_questions,
            "train_articles": len(data.train.articles) if data.train else 0,
            "eval_articles": len(data.eval.articles),
        }
    return {"train_rows": len(data.train) if data.train else 0, "eval_rows": len(data.eval), "labels": data.label_list}
