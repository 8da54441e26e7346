"""Classification metrics: accuracy and macro-averaged F1."""

from __future__ import annotations

from collections.abc import Sequence


def classification_metrics(labels: Sequence[int], predictions: Sequence[int], num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1; the average is over the classes in the gold labels or the predictions, as
    scikit-learn's `f1_score(average="macro")` takes it: a class of the head's `num_labels` that the data
    never holds and the model never predicts is not scored (a file may hold only some of a head's labels)."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    if not labels:
        raise ValueError("no examples to score")
    correct = sum(int(gold == guess) for gold, guess in zip(labels, predictions, strict=True))
    if not all(0 <= label < num_labels for label in (*labels, *predictions)):
        raise ValueError(f"a label or prediction outside 0..{num_labels - 1}")
    per_class_f1 = []
    classes = sorted(set(labels) | set(predictions))
    for label in classes:
        true_positive = sum(1 for g, p in zip(labels, predictions, strict=True) if g == label and p == label)
        predicted = sum(1 for p in predictions if p == label)
        actual = sum(1 for g in labels if g == label)
        denominator = predicted + actual
        per_class_f1.append(2.0 * true_positive / denominator if denominator else 0.0)
    return {
        "accuracy": correct / len(labels),
        "macro_f1": sum(per_class_f1) / len(classes),
        "total": len(labels),
    }
