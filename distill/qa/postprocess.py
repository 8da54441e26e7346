"""From start/end logits of every window back to one span and one no-answer odds per question (numpy only).

For each question, every window proposes its `n_best_size` best starts and ends; a span
is valid when both ends lie in the context, end >= start and it is at most
`max_answer_length` tokens. The best-scoring span over all windows wins. The no-answer
score is the lowest CLS score over the question's windows; the odds are that minus the
best span's score.

The result is what the official SQuAD v2.0 script takes: the best non-null span per
question (its predictions file) and the odds (its `--na-prob-file`). Abstaining is left to
the threshold, `--na-prob-thresh` when scoring, `QAPredictions.final_answers` when
answering, so the scorer's best-threshold sweep sees every span. This module computes; it
does not write files or log.
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
    """Each question's best non-null span and its no-answer odds, by question id.

    `best_spans`: the best valid span's text ("" only when no window offers a valid span).
    `null_odds`: no-answer score minus best span score, a logit difference (not a
    probability): higher means more likely unanswerable. The two are the official script's
    predictions file and `--na-prob-file`; the script's `--na-prob-thresh` is then
    `null_score_diff_threshold`.
    """

    best_spans: dict[str, str]
    null_odds: dict[str, float]

    def final_answers(self, null_score_diff_threshold: float = 0.0) -> dict[str, str]:
        """Answers after abstaining ("") where the odds exceed the threshold: what the scorer counts."""
        return {
            qid: "" if self.null_odds[qid] > null_score_diff_threshold else span
            for qid, span in self.best_spans.items()
        }


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
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> QAPredictions:
    """Every example's best span and no-answer odds from its windows' logits.

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

    best_spans: dict[str, str] = {}
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
            best_spans[example["id"]] = ""
            null_odds[example["id"]] = NO_SPAN_NULL_ODDS
            continue
        score, start_char, end_char = best
        best_spans[example["id"]] = example["context"][start_char:end_char]
        null_odds[example["id"]] = float(min_null_score - score)
    return QAPredictions(best_spans=best_spans, null_odds=null_odds)
