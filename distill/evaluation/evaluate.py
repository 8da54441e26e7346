"""Run a model over a dataset and score it: SQuAD EM/F1 for QA, accuracy/macro-F1 for classification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.config import QADataConfig
from distill.data.classification import ClassificationDataset, encode_labels
from distill.data.squad import SquadDataset
from distill.evaluation.metrics.classification import classification_metrics
from distill.models.inference import Progress, forward_in_batches
from distill.precision import ResolvedPrecision
from distill.qa.features import columns, prepare_eval_features
from distill.qa.postprocess import QAPredictions, postprocess_qa_predictions
from distill.qa.scoring import score_predictions, tuned_metrics

# Scoring runs models through distill.models.inference, as the teacher's logit pass does.


def validation_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """A validation set's metrics as they stand beside the eval ones: `validation_<name>`."""
    return {f"validation_{name}": value for name, value in metrics.items()}


def qa_version_2(settings: QADataConfig, evaluation: SquadDataset) -> bool:
    """Whether the run's QA is scored with abstention: as configured, else when eval has unanswerable questions."""
    if settings.version_2_with_negative is not None:
        return settings.version_2_with_negative
    return evaluation.has_unanswerable


@dataclass(frozen=True)
class QAEvaluation:
    """`metrics` are the official script's on `predictions` (see distill.qa.scoring); `validation` is the
    validation set's own evaluation, when there was one (its metrics are in `metrics` as `validation_*`)."""

    metrics: dict[str, float | int]
    predictions: QAPredictions
    num_features: int
    version_2_with_negative: bool
    validation: QAEvaluation | None = None


def evaluate_qa(
    model: Any,
    tokenizer: Any,
    dataset: SquadDataset,
    settings: QADataConfig,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
    precision: ResolvedPrecision = "fp32",
    validation: SquadDataset | None = None,
) -> QAEvaluation:
    """Predict every question of `dataset` and score as the official SQuAD v2.0 script scores the written files.

    v2: figures at `settings.null_score_diff_threshold`. With `validation`, that set is
    predicted and scored the same way (as `validation_*`), once; on v2 its official
    `best_f1_thresh` is also the tuned threshold, and the eval figures at it are added as `tuned_*`.
    """
    examples = dataset.examples()
    features = prepare_eval_features(
        columns(examples), tokenizer, max_seq_length=settings.max_seq_length, doc_stride=settings.doc_stride
    )
    logits = forward_in_batches(
        model, features, ("start_logits", "end_logits"), batch_size=batch_size, progress=progress, precision=precision
    )
    with_negative = qa_version_2(settings, dataset)
    predictions = postprocess_qa_predictions(
        examples,
        features,
        logits["start_logits"],
        logits["end_logits"],
        n_best_size=settings.n_best_size,
        max_answer_length=settings.max_answer_length,
    )
    metrics = score_predictions(
        dataset,
        predictions,
        version_2_with_negative=with_negative,
        null_threshold=settings.null_score_diff_threshold,
    )
    validated = None
    if validation is not None:
        # Scored as eval is, whatever share of the validation set is unanswerable: tuning the abstention is a v2
        # question, and its figures must compare with eval's.
        as_eval = settings.model_copy(update={"version_2_with_negative": with_negative})
        validated = evaluate_qa(
            model, tokenizer, validation, as_eval, batch_size=batch_size, progress=progress, precision=precision
        )
        metrics.update(validation_metrics(validated.metrics))
        if with_negative:
            metrics.update(tuned_metrics(dataset, predictions, validated.metrics, validated.predictions))
    return QAEvaluation(
        metrics=metrics,
        predictions=predictions,
        num_features=len(features["input_ids"]),
        version_2_with_negative=with_negative,
        validation=validated,
    )


def tokenize_classification(
    dataset: ClassificationDataset, tokenizer: Any, *, max_seq_length: int, padding: str | bool = False
) -> dict[str, list[Any]]:
    """Tokenize texts (and text pairs) with truncation; padding is left to the collator unless asked for."""
    encoded = tokenizer(
        dataset.texts,
        dataset.text_pairs,
        truncation=True,
        max_length=max_seq_length,
        padding=padding,
    )
    return dict(encoded)


@dataclass(frozen=True)
class ClassificationEvaluation:
    metrics: dict[str, float]
    predictions: list[str]  # predicted label strings, one per row


def evaluate_classification(
    model: Any,
    tokenizer: Any,
    dataset: ClassificationDataset,
    label_list: list[str],
    *,
    max_seq_length: int,
    batch_size: int = 64,
    progress: Progress | None = None,
    precision: ResolvedPrecision = "fp32",
) -> ClassificationEvaluation:
    """Accuracy and macro-F1 of `model` on `dataset`, labels mapped through `label_list`."""
    gold = encode_labels(dataset, label_list)
    predicted: list[int] = []
    # Sort by length so each batch pads only to its own longest sentence (2-3x faster on CPU).
    order = sorted(range(len(dataset)), key=lambda i: len(dataset.texts[i]))
    for begin in range(0, len(order), batch_size):
        chunk = dataset.take(order[begin : begin + batch_size], "")
        features = tokenize_classification(chunk, tokenizer, max_seq_length=max_seq_length, padding=True)
        logits = forward_in_batches(model, features, ("logits",), batch_size=batch_size, precision=precision)["logits"]
        predicted.extend(int(i) for i in logits.argmax(axis=-1))
        if progress is not None:
            progress(len(chunk))
    by_row = [0] * len(dataset)
    for position, row in enumerate(order):
        by_row[row] = predicted[position]
    metrics = classification_metrics(gold, by_row, len(label_list))
    return ClassificationEvaluation(metrics=metrics, predictions=[label_list[i] for i in by_row])
