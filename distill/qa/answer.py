"""Answer questions with an extractive QA model: what `pipeline("question-answering")` did before
transformers 5 removed it, with the same windowing and post-processing as evaluation.

The model is a loaded one, or a folder: a trained model's, or an exported one's (`distill export`),
which runs in onnxruntime without PyTorch's training stack:

    answer_questions("runs/quickstart/final_student-onnx-int8", None, [(question, context)])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.models.inference import forward_in_batches, load_for_inference
from distill.qa.features import columns, prepare_eval_features
from distill.qa.postprocess import postprocess_qa_predictions


def answer_questions(
    model: Any,
    tokenizer: Any | None,
    pairs: list[tuple[str, str]],
    *,
    allow_no_answer: bool = True,
    null_score_diff_threshold: float = 0.0,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_answer_length: int = 30,
    batch_size: int = 32,
) -> list[dict[str, Any]]:
    """For each (question, context): {'answer': text ('' = no answer), 'null_odds': no-answer minus best span}.

    With `allow_no_answer`, a question is answered "" when its null_odds exceed
    `null_score_diff_threshold`: pass the run's `null_threshold`, or the `tuned_null_threshold`
    its evaluation found on validation data, to answer as that figure was scored. `model` may be a
    folder, a hub id or an exported folder (its tokenizer is loaded from there when `tokenizer` is None).
    """
    if isinstance(model, (str, Path)):
        model, loaded = load_for_inference(str(model), "qa")
        tokenizer = tokenizer or loaded
    examples = [
        {"id": str(i), "title": "", "question": q, "context": c, "answers": {"text": [], "answer_start": []}}
        for i, (q, c) in enumerate(pairs)
    ]
    features = prepare_eval_features(columns(examples), tokenizer, max_seq_length=max_seq_length, doc_stride=doc_stride)
    logits = forward_in_batches(model, features, ("start_logits", "end_logits"), batch_size=batch_size)
    predictions = postprocess_qa_predictions(
        examples,
        features,
        logits["start_logits"],
        logits["end_logits"],
        max_answer_length=max_answer_length,
    )
    answers = predictions.final_answers(null_score_diff_threshold) if allow_no_answer else predictions.best_spans
    return [{"answer": answers[str(i)], "null_odds": predictions.null_odds[str(i)]} for i in range(len(pairs))]
