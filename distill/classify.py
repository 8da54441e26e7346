"""Classify texts with a trained classifier: what `pipeline("text-classification")` does, through the same
tokenization and batching as evaluation.

The model is a loaded one, or a folder: a trained model's, or an exported one's (`distill export`),
which runs in onnxruntime without PyTorch's training stack:

    classify_texts("runs/quickstart/final_student-onnx-int8", None, ["a gripping, funny film"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distill.models.inference import forward_in_batches, load_for_inference


def _labels(model: Any, count: int) -> list[str]:
    names = getattr(model, "labels", None)  # an exported model's, recorded at export
    if names is None:
        id2label = model.config.id2label
        names = [id2label[i] for i in range(count)]
    return list(names)


def classify_texts(
    model: Any,
    tokenizer: Any | None,
    texts: list[str],
    *,
    text_pairs: list[str] | None = None,
    max_seq_length: int = 128,
    batch_size: int = 32,
) -> list[dict[str, Any]]:
    """For each text (and its pair): {'label': the most likely label, 'score': its probability, 'scores': every
    label's}. `model` may be a folder, a hub id or an exported folder (its tokenizer is loaded from there when
    `tokenizer` is None)."""
    if isinstance(model, (str, Path)):
        model, loaded = load_for_inference(str(model), "classification")
        tokenizer = tokenizer or loaded
    features = dict(tokenizer(texts, text_pairs, truncation=True, max_length=max_seq_length))
    logits = forward_in_batches(model, features, ("logits",), batch_size=batch_size)["logits"]
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    labels = _labels(model, probabilities.shape[-1])
    return [
        {
            "label": labels[int(row.argmax())],
            "score": float(row.max()),
            "scores": {label: float(p) for label, p in zip(labels, row, strict=True)},
        }
        for row in probabilities
    ]
