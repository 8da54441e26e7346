"""The scorer: a model loaded to be scored, shared by the evaluate stage and `distill evaluate`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.config import QADataConfig
from distill.data.classification import ClassificationDataset
from distill.data.squad import SquadDataset
from distill.errors import ModelError
from distill.evaluation.evaluate import ClassificationEvaluation, QAEvaluation, evaluate_classification, evaluate_qa
from distill.models.inference import Progress
from distill.models.loading import load_model, load_tokenizer


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
    """Load `model_path` to score QA (`labels` None) or classification into the data's `labels`.

    A classification head is sized for the data's labels (a trained head of another size is an
    error). A head that names its labels is read by name, and they must be the data's; a new head,
    or one whose labels are only `LABEL_<i>`, takes the data's labels in order.
    """
    tokenizer = load_tokenizer(model_path, trust_remote_code=trust_remote_code)
    options = dict(batch_size=batch_size, precision=precision, tokenizer=tokenizer, progress=progress)
    if labels is None:
        model, fresh = load_model(model_path, "qa", trust_remote_code=trust_remote_code)
        return Scorer(model=model, fresh=fresh, label_list=None, **options)
    model, fresh = load_model(model_path, "classification", num_labels=len(labels), trust_remote_code=trust_remote_code)
    named = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if fresh or (_generic(named) and not _generic(labels)):
        named = list(labels)
    elif sorted(named) != sorted(labels):
        raise ModelError(f"model '{model_path}': trained for labels {named}, data has {labels}")
    return Scorer(model=model, fresh=fresh, label_list=named, **options)
