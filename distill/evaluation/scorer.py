"""The scorer: a model loaded to be scored, shared by the evaluate stage and `distill evaluate`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from distill.config import QADataConfig
from distill.data.classification import ClassificationDataset
from distill.data.squad import SquadDataset
from distill.errors import ModelError
from distill.evaluation.evaluate import ClassificationEvaluation, QAEvaluation, evaluate_classification, evaluate_qa
from distill.export.runtime import OnnxModel, is_exported
from distill.models.inference import Progress
from distill.models.loading import load_model, load_tokenizer

log = logging.getLogger("distill")


@dataclass(frozen=True)
class Scorer:
    """A model loaded to be scored, as every scoring of it must be (the evaluate stage's and `distill evaluate`'s):
    one batch size and precision, and for classification one rule for its labels (see `load_scorer`)."""

    batch_size: int
    precision: str
    model: Any
    tokenizer: Any
    fresh: list[str]  # the newly initialised head tensors, if any: the scores are an untrained model's
    label_list: list[str] | None  # classification: the labels in the head's id order
    progress: Progress | None

    @property
    def options(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "progress": self.progress, "precision": self.precision}

    def qa(self, dataset: SquadDataset, settings: QADataConfig, validation: SquadDataset | None = None) -> QAEvaluation:
        return evaluate_qa(self.model, self.tokenizer, dataset, settings, validation=validation, **self.options)

    def classification(self, dataset: ClassificationDataset, max_seq_length: int) -> ClassificationEvaluation:
        assert self.label_list is not None
        return evaluate_classification(
            self.model, self.tokenizer, dataset, self.label_list, max_seq_length=max_seq_length, **self.options
        )


def _generic(labels: list[str]) -> bool:
    return all(label == f"LABEL_{index}" for index, label in enumerate(labels))


def load_scorer(
    model_path: str,
    labels: list[str] | None,
    *,
    batch_size: int,
    precision: str,
    trust_remote_code: bool = False,
    progress: Progress | None = None,
) -> Scorer:
    """Load `model_path` to score QA (`labels` None) or classification data whose labels are `labels`.

    A trained head that names its labels is read by name: the data's labels must be among them
    (a file may hold only some). A new head, or one that names its labels only `LABEL_<i>`, takes
    the data's labels in order, sized to them; for a trained `LABEL_<i>` head that mapping is a
    guess, and it is logged.
    """
    tokenizer = load_tokenizer(model_path, trust_remote_code=trust_remote_code)
    options = dict(batch_size=batch_size, precision=precision, tokenizer=tokenizer, progress=progress)
    if is_exported(model_path):
        return _exported_scorer(model_path, labels, options)
    if labels is None:
        model, fresh = load_model(model_path, "qa", trust_remote_code=trust_remote_code)
        return Scorer(model=model, fresh=fresh, label_list=None, **options)
    model, fresh = load_model(model_path, "classification", trust_remote_code=trust_remote_code)
    named = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if not fresh and not _generic(named):
        missing = sorted(set(labels) - set(named))
        if missing:
            raise ModelError(f"model '{model_path}': trained for labels {named}; the data also has {missing}")
        return Scorer(model=model, fresh=fresh, label_list=named, **options)
    if len(named) != len(labels):  # sized to the data (a trained head of another size is a ModelError)
        model, fresh = load_model(
            model_path, "classification", num_labels=len(labels), trust_remote_code=trust_remote_code
        )
    if not fresh and not _generic(labels):
        log.warning("model '%s' names its labels %s only: reading them as the data's %s, in that order",
                    model_path, named, list(labels))  # fmt: skip
    return Scorer(model=model, fresh=fresh, label_list=list(labels), **options)


def _exported_scorer(model_path: str, labels: list[str] | None, options: dict[str, Any]) -> Scorer:
    """An exported folder, run by onnxruntime at the precision it was exported at. Its head cannot be resized:
    labels it names are read by name, `LABEL_<i>` ones take the data's in order when the counts match."""
    model = OnnxModel(model_path)
    if model.task != ("qa" if labels is None else "classification"):
        raise ModelError(f"model '{model_path}': exported for {model.task}, not for this data's task")
    options = options | {"precision": model.precision}
    if labels is None:
        return Scorer(model=model, fresh=[], label_list=None, **options)
    named = list(model.labels or [])
    if not _generic(named):
        missing = sorted(set(labels) - set(named))
        if missing:
            raise ModelError(f"model '{model_path}': exported for labels {named}; the data also has {missing}")
        return Scorer(model=model, fresh=[], label_list=named, **options)
    if len(named) != len(labels):
        raise ModelError(f"model '{model_path}': exported with {len(named)} labels; the data has {len(labels)}")
    return Scorer(model=model, fresh=[], label_list=list(labels), **options)
