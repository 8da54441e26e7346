"""From start/end logits of every window back to one answer string per question (numpy only).

For each question, every window proposes its `n_best_size` best starts and ends; a span
is valid when both ends lie in the context, end >= start and it is at most
`max_answer_length` tokens. The best-scoring span over all windows wins. For SQuAD v2 the
no-answer score is the lowest CLS score over the question's windows, and the question is
answered with "" when that beats the best span by more than `null_score_diff_threshold`.
This function computes; it does not write files or log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# null_odds reported when no window offers any valid span: the model can only abstain.
NO_SPAN_NULL_ODDS = 1e6


@dataclass(frozen=True)
class QAPredictions:
    """Answers by question id, and each question's no-answer odds.

    `null_odds` = no-answer score minus best span score: higher means more likely
    unanswerable. It is what the official script's `--na-prob-file` expects.
    """

    answers: dict[str, str]
    null_odds: dict[str, float]


def best_span_in_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: Sequence[tuple[int, int] | None],
    *,
    n_best_size: int,
    max_answer_length: int,
) -> tuple[float, int, int] | None:
    """Best (score, start_char, end_char) in one window, or None when no span is valid."""
    length = min(len(offsets), len(start_logits))
    start_logits, end_logits = start_logits[:length], end_logits[:length]
    in_context = np.array([offset is not None for offset in offsets[:length]])
    if not in_context.any():
        return None
    top_starts = np.argsort(start_logits)[::-1][:n_best_size]
    top_ends = np.argsort(end_logits)[::-1][:n_best_size]
    # (n_best, n_best) grid of candidate spans
    span_tokens = top_ends[None, :] - top_starts[:, None] + 1
    valid = (
        in_context[top_starts][:, None]
        & in_context[top_ends][None, :]
        & (span_tokens >= 1)
        & (span_tokens <= max_answer_length)
    )
    if not valid.any():
        return None
    scores = np.where(valid, start_logits[top_starts][:, None] + end_logits[top_ends][None, :], -np.inf)
    row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
    start_token, end_token = int(top_starts[row]), int(top_ends[col])
    return float(scores[row, col]), offsets[start_token][0], offsets[end_token][1]


def postprocess_qa_predictions(
    examples: Sequence[dict[str, Any]],
    features: dict[str, list[Any]],
    start_logits: np.ndarray | Sequence[np.ndarray],
    end_logits: np.ndarray | Sequence[np.ndarray],
    *,
    version_2_with_negative: bool,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> QAPredictions:
    """Answer every example from its windows' logits.

    Args:
        examples: rows with `id` and `context`.
        features: eval features with `example_id`, `offset_mapping`, `cls_index`.
        start_logits, end_logits: one row per feature, `(num_features, seq_len)`.
    """
    if len(start_logits) != len(features["example_id"]):
        raise ValueError(f"{len(start_logits)} logit rows for {len(features['example_id'])} features")
    windows_by_example: dict[str, list[int]] = defaultdict(list)
    for index, example_id in enumerate(features["example_id"]):
        windows_by_example[example_id].append(index)

    answers: dict[str, str] = {}
    null_odds: dict[str, float] = {}
    for example in examples:
        best: tuple[float, int, int] | None = None
        min_null_score = np.inf
        for index in windows_by_example.get(example["id"], []):
            starts, ends = np.asarray(start_logits[index]), np.asarray(end_logits[index])
            cls_index = features["cls_index"][index]
            min_null_score = min(min_null_score, float(starts[cls_index] + ends[cls_index]))
            span = best_span_in_window(
                starts,
                ends,
                features["offset_mapping"][index],
                n_best_size=n_best_size,
                max_answer_length=max_answer_length,
            )
            if span is not None and (best is None or span[0] > best[0]):
                best = span
        if best is None:
            answers[example["id"]] = ""
            null_odds[example["id"]] = NO_SPAN_NULL_ODDS
            continue
        score, start_char, end_char = best
        odds = min_null_score - score
        null_odds[example["id"]] = float(odds)
        abstain = version_2_with_negative and odds > null_score_diff_threshold
        answers[example["id"]] = "" if abstain else example["context"][start_char:end_char]
    return QAPredictions(answers=answers, null_odds=null_odds)
