"""SQuAD exact match and F1, exactly as the official v2.0 evaluation script defines them.

Same normalisation (lower-case, strip ASCII punctuation, drop a/an/the, collapse
whitespace), same max over gold answers, same rule that an unanswerable question scores
1 only for the empty prediction, same `na_prob` threshold and best-threshold search, and
the same summation order, so results agree with the official script to floating-point
precision. v1.1 data is scored the same way (every question has answers).

One deliberate difference: the official v2.0 script crashes when a question has no
prediction. Here a missing prediction scores 0 (the v1.1 script's rule) and is reported.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

from distill.data.squad import SquadDataset
from distill.errors import DataError

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact_match(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    gold_tokens = answer_tokens(gold)
    predicted_tokens = answer_tokens(prediction)
    if not gold_tokens or not predicted_tokens:
        # no-answer on either side: F1 is 1 when both abstain, else 0
        return int(gold_tokens == predicted_tokens)
    same = sum((Counter(gold_tokens) & Counter(predicted_tokens)).values())
    if same == 0:
        return 0
    precision = 1.0 * same / len(predicted_tokens)
    recall = 1.0 * same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


@dataclass(frozen=True)
class GoldQuestion:
    qid: str
    answers: list[str]  # gold texts that survive normalisation; [""] when unanswerable
    has_answer: bool  # the official rule: the raw answers list is non-empty


def gold_questions(dataset: SquadDataset) -> list[GoldQuestion]:
    questions = []
    for qa in dataset.questions():
        texts = [answer["text"] for answer in qa["answers"] if normalize_answer(answer["text"])]
        questions.append(GoldQuestion(qa["id"], texts or [""], bool(qa["answers"])))
    return questions


def validate_predictions(predictions: object, source: str) -> dict[str, str]:
    """Predictions must map question id -> answer string."""
    if not isinstance(predictions, dict):
        raise DataError(f"{source}: expected a JSON object mapping question id to answer text")
    for qid, answer in predictions.items():
        if not isinstance(answer, str):
            raise DataError(f"{source}: prediction for {qid!r} must be a string, got {type(answer).__name__}")
    return predictions


def validate_na_probs(na_probs: object, source: str, needed: list[str]) -> dict[str, float]:
    """No-answer probabilities must map question id -> number, for every predicted question."""
    if not isinstance(na_probs, dict):
        raise DataError(f"{source}: expected a JSON object mapping question id to a number")
    for qid, value in na_probs.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DataError(f"{source}: value for {qid!r} must be a number, got {value!r}")
    missing = [qid for qid in needed if qid not in na_probs]
    if missing:
        raise DataError(f"{source}: no value for question {missing[0]!r} ({len(missing)} questions missing)")
    return na_probs


def missing_predictions(dataset: SquadDataset, predictions: dict[str, str]) -> list[str]:
    return [qa["id"] for qa in dataset.questions() if qa["id"] not in predictions]


def _summary(exact: dict[str, float], f1: dict[str, float], qids: list[str]) -> dict[str, float | int]:
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact[k] for k in qids) / total,
        "f1": 100.0 * sum(f1[k] for k in qids) / total,
        "total": total,
    }


def _best_threshold(
    questions: list[GoldQuestion],
    predictions: dict[str, str],
    raw: dict[str, float],
    na_probs: dict[str, float],
) -> tuple[float, float]:
    """The official sweep: abstain on every question whose na_prob exceeds the threshold."""
    has_answer = {q.qid: q.has_answer for q in questions}
    # Start as if abstaining everywhere: every unanswerable question with a prediction is right.
    score = sum(1 for q in questions if not q.has_answer and q.qid in predictions)
    best_score, best_threshold = score, 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):  # stable: ties keep file order, as officially
        if qid not in raw or qid not in predictions:
            continue
        if has_answer[qid]:
            score += raw[qid]
        elif predictions[qid]:
            score -= 1
        if score > best_score:
            best_score, best_threshold = score, na_probs[qid]
    return 100.0 * best_score / len(questions), best_threshold


def score_squad(
    dataset: SquadDataset,
    predictions: dict[str, str],
    na_probs: dict[str, float] | None = None,
    *,
    na_prob_thresh: float = 1.0,
) -> dict[str, float | int]:
    """Official SQuAD v2.0 metrics; with `na_probs`, also the best-threshold figures.

    Returns the official keys: exact, f1, total, HasAns_*, NoAns_* (when such questions
    exist) and best_exact, best_exact_thresh, best_f1, best_f1_thresh (with `na_probs`).
    """
    questions = gold_questions(dataset)
    thresholds = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    for question in questions:
        prediction = predictions.get(question.qid)
        if prediction is None:
            exact[question.qid] = f1[question.qid] = 0
            continue
        exact_raw[question.qid] = max(exact_match(gold, prediction) for gold in question.answers)
        f1_raw[question.qid] = max(f1_score(gold, prediction) for gold in question.answers)
        if thresholds.get(question.qid, 0.0) > na_prob_thresh:
            exact[question.qid] = f1[question.qid] = float(not question.has_answer)
        else:
            exact[question.qid], f1[question.qid] = exact_raw[question.qid], f1_raw[question.qid]

    all_ids = [q.qid for q in questions]
    result: dict[str, float | int] = _summary(exact, f1, all_ids)
    for prefix, ids in (
        ("HasAns", [q.qid for q in questions if q.has_answer]),
        ("NoAns", [q.qid for q in questions if not q.has_answer]),
    ):
        if ids:
            result.update({f"{prefix}_{key}": value for key, value in _summary(exact, f1, ids).items()})
    if na_probs is not None:
        result["best_exact"], result["best_exact_thresh"] = _best_threshold(questions, predictions, exact_raw, na_probs)
        result["best_f1"], result["best_f1_thresh"] = _best_threshold(questions, predictions, f1_raw, na_probs)
    return result
