"""Classification metrics: accuracy and macro-averaged F1."""

from __future__ import annotations

from collections.abc import Sequence


def classification_metrics(labels: Sequence[int], predictions: Sequence[int], num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 over `num_labels` classes (a class never predicted nor present scores 0)."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    if not labels:
        raise ValueError("no examples to score")
    correct = sum(int(gold == guess) for gold, guess in zip(labels, predictions, strict=True))
    per_class_f1 = []
    for label in range(num_labels):
        true_positive = sum(1 for g, p in zip(labels, predictions, strict=True) if g == label and p == label)
        predicted = sum(1 for p in predictions if p == label)
        actual = sum(1 for g in labels if g == label)
        denominator = predicted + actual
        per_class_f1.append(2.0 * true_positive / denominator if denominator else 0.0)
    return {
        "accuracy": correct / len(labels),
        "macro_f1": sum(per_class_f1) / num_labels,
        "total": len(labels),
    }
