"""Span post-processing on hand-built logits: n-best search, length limit, no-answer odds, multiple windows."""

from __future__ import annotations

import numpy as np
import pytest

from distill.qa.postprocess import NO_SPAN_NULL_ODDS, postprocess_qa_predictions

CONTEXT = "alpha beta gamma delta epsilon"
# CLS, two question tokens, SEP, five context tokens, SEP
OFFSETS = [None, None, None, None, (0, 5), (6, 10), (11, 16), (17, 22), (23, 30), None]
EXAMPLE = {"id": "q1", "context": CONTEXT}


def logits(**peaks: float) -> np.ndarray:
    row = np.zeros(len(OFFSETS), dtype=np.float32)
    for index, value in peaks.items():
        row[int(index[1:])] = value
    return row


def run(starts, ends, offsets=None, examples=(EXAMPLE,), example_ids=("q1",), **options):  # noqa: ANN001, ANN201
    offsets = offsets or [OFFSETS] * len(example_ids)
    features = {"example_id": list(example_ids), "offset_mapping": offsets, "cls_index": [0] * len(example_ids)}
    return postprocess_qa_predictions(list(examples), features, np.stack(starts), np.stack(ends), **options)


def test_best_span_maps_back_to_characters() -> None:
    result = run([logits(t5=5.0)], [logits(t6=4.0)])
    assert result.best_spans == {"q1": "beta gamma"}
    assert result.null_odds["q1"] == pytest.approx(0.0 - 9.0)


def test_question_tokens_are_never_answers() -> None:
    # Highest logits sit on question tokens (offsets None); the answer must come from the context.
    result = run([logits(t1=50.0, t7=2.0)], [logits(t2=50.0, t7=2.0)])
    assert result.best_spans["q1"] == "delta"


def test_reversed_and_overlong_spans_are_skipped() -> None:
    # Best start after best end: the search must fall back to the best ordered pair.
    result = run([logits(t7=9.0, t4=1.0)], [logits(t5=9.0, t8=2.0)])
    assert result.best_spans["q1"] == "delta epsilon"  # start 7 + end 8 = 11 beats start 4 + end 5 = 10
    limited = run([logits(t4=9.0, t8=1.0)], [logits(t8=9.0)], max_answer_length=2)
    assert limited.best_spans["q1"] == "epsilon"  # alpha..epsilon is 5 tokens; 8..8 is allowed


def test_best_span_is_kept_and_abstention_left_to_the_threshold() -> None:
    starts, ends = [logits(t0=6.0, t5=2.0)], [logits(t0=6.0, t5=2.0)]
    result = run(starts, ends)
    # The official script's inputs: the best non-null span, whatever the odds (null 12 - span 4 = 8) ...
    assert result.best_spans["q1"] == "beta" and result.null_odds["q1"] == pytest.approx(8.0)
    # ... and the abstention applied by the threshold, as `--na-prob-thresh` applies it.
    assert result.final_answers(0.0)["q1"] == ""
    assert result.final_answers(8.5)["q1"] == "beta"
    assert result.final_answers(8.0)["q1"] == "beta"  # abstain only when the odds exceed it, as officially


def test_best_span_across_windows_and_min_null_over_windows() -> None:
    # The same question in two windows: window 2 covers 'delta epsilon' with offsets into the same context.
    second = [None, None, None, None, (17, 22), (23, 30), None, None, None, None]
    starts = [logits(t0=3.0, t4=2.0), logits(t0=1.0, t4=4.0)]
    ends = [logits(t0=3.0, t4=2.0), logits(t0=1.0, t5=4.0)]
    result = run(starts, ends, offsets=[OFFSETS, second], example_ids=("q1", "q1"))
    assert result.best_spans["q1"] == "delta epsilon"  # 8 in window 2 beats 4 in window 1
    assert result.null_odds["q1"] == pytest.approx(2.0 - 8.0)  # min CLS score is window 2's (1 + 1)


def test_answer_cut_by_window_boundary_is_not_proposed_there() -> None:
    # Window 1 ends after 'gamma'; a start at 'gamma' with an end beyond the window is impossible in it.
    first = OFFSETS[:7] + [None, None, None]
    result = run([logits(t6=5.0)], [logits(t8=5.0, t6=1.0)], offsets=[first])
    assert result.best_spans["q1"] == "gamma"


def test_no_valid_span_abstains() -> None:
    only_question = [None] * len(OFFSETS)
    result = run([logits()], [logits()], offsets=[only_question])
    assert result.best_spans["q1"] == "" and result.null_odds["q1"] == NO_SPAN_NULL_ODDS
    assert result.final_answers(1e9)["q1"] == ""


def test_logit_rows_must_match_features() -> None:
    with pytest.raises(ValueError, match="2 logit rows for 1 features"):
        postprocess_qa_predictions(
            [EXAMPLE],
            {"example_id": ["q1"], "offset_mapping": [OFFSETS], "cls_index": [0]},
            np.zeros((2, 10)),
            np.zeros((2, 10)),
        )
