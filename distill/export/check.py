"""The check every export passes before it ships: the exported model against the PyTorch one, on the same inputs.

fp32 must reproduce the logits (largest absolute difference at most `max_abs_diff`); int8 cannot, so
it must reproduce the predictions: the label of each sentence, or the answer of each question after
the same windowing and post-processing evaluation uses (agreement at least `min_agreement`). Both
figures are measured for both formats and kept with the export; only the one that applies decides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from distill.config import DataConfig, ExportConfig, ExportFormat, QADataConfig
from distill.data.task_data import ClassificationData, QAData
from distill.evaluation.evaluate import qa_version_2, tokenize_classification
from distill.export.onnx import ExportError
from distill.models.inference import OUTPUT_NAMES, forward_in_batches
from distill.qa.features import columns, prepare_eval_features
from distill.qa.postprocess import postprocess_qa_predictions


@dataclass(frozen=True)
class Agreement:
    """How far an exported model's outputs are from its source's on `rows` inputs."""

    rows: int  # predictions compared: sentences, questions, or generated inputs
    inputs: str  # what they were, for messages ("eval questions", "generated token sequences")
    agreement: float  # share of identical predictions
    max_abs_diff: float  # largest absolute difference of any logit (QA: over real tokens only)

    def metrics(self) -> dict[str, Any]:
        return {f"check_{name}": value for name, value in asdict(self).items()}


def _logits(model: Any, features: Any, task: str, batch_size: int) -> dict[str, np.ndarray]:
    return forward_in_batches(model, features, OUTPUT_NAMES[task], batch_size=batch_size)


def _max_abs_diff(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray]) -> float:
    """The largest |difference| of any logit. Positions past a window's length are -inf in both (forward_in_batches
    writes them) and are not compared; a NaN or an infinity anywhere else, in either model, gives inf, which no
    tolerance accepts: a model that outputs NaN must not pass its check."""
    largest = 0.0
    for name, values in reference.items():
        padding = np.isneginf(values) & np.isneginf(exported[name])
        difference = np.abs(values[~padding] - exported[name][~padding])
        if not np.isfinite(difference).all():
            return float("inf")
        if difference.size:
            largest = max(largest, float(difference.max()))
    return largest


def compare_classification(reference: Any, exported: Any, features: Any, *, batch_size: int, inputs: str) -> Agreement:
    """Labels (argmax) and logits of tokenized sentences."""
    expected = _logits(reference, features, "classification", batch_size)
    got = _logits(exported, features, "classification", batch_size)
    same = expected["logits"].argmax(axis=-1) == got["logits"].argmax(axis=-1)
    return Agreement(len(same), inputs, float(same.mean()) if len(same) else 1.0, _max_abs_diff(expected, got))


def compare_qa(
    reference: Any, exported: Any, examples: list[dict[str, Any]], tokenizer: Any, settings: QADataConfig, *,
    batch_size: int, version_2_with_negative: bool,
) -> Agreement:  # fmt: skip
    """Each question's answer, as evaluation gives it: best span, and on v2 abstention at the configured threshold."""
    features = prepare_eval_features(
        columns(examples), tokenizer, max_seq_length=settings.max_seq_length, doc_stride=settings.doc_stride
    )
    answers = []
    logits = []
    for model in (reference, exported):
        outputs = _logits(model, features, "qa", batch_size)
        logits.append(outputs)
        predictions = postprocess_qa_predictions(
            examples,
            features,
            outputs["start_logits"],
            outputs["end_logits"],
            n_best_size=settings.n_best_size,
            max_answer_length=settings.max_answer_length,
        )
        threshold = settings.null_score_diff_threshold
        answers.append(predictions.final_answers(threshold) if version_2_with_negative else predictions.best_spans)
    expected, got = answers
    same = [expected[qid] == got[qid] for qid in expected]
    agreement = float(np.mean(same)) if same else 1.0
    return Agreement(len(same), "eval questions", agreement, _max_abs_diff(*logits))


def compare_on_eval(
    reference: Any, exported: Any, tokenizer: Any, data: QAData | ClassificationData, settings: DataConfig, *,
    batch_size: int,
) -> Agreement:  # fmt: skip
    """The run's eval data, as its evaluate stage reads it: questions answered, or sentences labelled."""
    if isinstance(data, QAData):
        assert isinstance(settings, QADataConfig)
        return compare_qa(reference, exported, data.eval.examples(), tokenizer, settings, batch_size=batch_size,
                          version_2_with_negative=qa_version_2(settings, data.eval))  # fmt: skip
    features = tokenize_classification(data.eval, tokenizer, max_seq_length=settings.max_seq_length)
    return compare_classification(reference, exported, features, batch_size=batch_size, inputs="eval sentences")


def generated_features(tokenizer: Any, *, rows: int = 64, max_length: int = 128, seed: int = 0) -> dict[str, list]:
    """Random words of the tokenizer's vocabulary as text pairs of random lengths (fixed seed), tokenized as real
    text is: for checking an export when no data is at hand."""
    generator = np.random.default_rng(seed)
    special = set(tokenizer.all_special_ids)
    vocabulary = np.array([i for i in range(len(tokenizer)) if i not in special])
    firsts, seconds = [], []
    for _ in range(rows):
        length = int(generator.integers(4, max_length))
        words = generator.choice(vocabulary, size=length).tolist()
        split = max(1, length // 3)  # a question and its context, for QA heads
        firsts.append(tokenizer.decode(words[:split]))
        seconds.append(tokenizer.decode(words[split:]))
    return dict(tokenizer(firsts, seconds, truncation="only_second", max_length=max_length))


def compare_generated(reference: Any, exported: Any, tokenizer: Any, task: str, *, batch_size: int) -> Agreement:
    """Generated inputs: classification labels, or QA's most likely start and end token of each sequence."""
    features = generated_features(tokenizer)
    if task == "classification":
        return compare_classification(reference, exported, features, batch_size=batch_size,
                                      inputs="generated token sequences")  # fmt: skip
    expected = _logits(reference, features, task, batch_size)
    got = _logits(exported, features, task, batch_size)
    same = np.ones(len(features["input_ids"]), dtype=bool)
    for name in OUTPUT_NAMES[task]:
        same &= expected[name].argmax(axis=-1) == got[name].argmax(axis=-1)
    return Agreement(len(same), "generated token sequences", float(same.mean()), _max_abs_diff(expected, got))


def require(agreement: Agreement, fmt: ExportFormat, settings: ExportConfig, model: str) -> None:
    """Raise (one line, with the numbers) when the export is not close enough to ship."""
    where = f"export of '{model}' as {fmt}"
    if fmt == "onnx" and agreement.max_abs_diff > settings.max_abs_diff:
        raise ExportError(
            f"{where} failed its check: logits differ from PyTorch's by up to {agreement.max_abs_diff:.3g} on "
            f"{agreement.rows} {agreement.inputs} (allowed: {settings.max_abs_diff:g}; predictions agree on "
            f"{agreement.agreement:.2%})"
        )
    if fmt == "onnx-int8" and agreement.agreement < settings.min_agreement:
        raise ExportError(
            f"{where} failed its check: predictions agree with PyTorch's on {agreement.agreement:.2%} of "
            f"{agreement.rows} {agreement.inputs} (required: {settings.min_agreement:.2%}; largest logit "
            f"difference {agreement.max_abs_diff:.3g})"
        )
