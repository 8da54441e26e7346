"""Official SQuAD v2.0 scoring on hand-computed cases."""

from __future__ import annotations

import pytest

from distill.data.squad import parse_squad
from distill.evaluation.metrics.classification import classification_metrics
from distill.evaluation.metrics.squad import exact_match, f1_score, normalize_answer, score_squad

CONTEXT = "The Eiffel Tower is in Paris, France, and the big red barn is in Ohio."


def dataset():  # noqa: ANN201
    def answer(text: str) -> dict:
        return {"text": text, "answer_start": CONTEXT.index(text)}

    qas = [
        {"id": "a", "question": "where?", "answers": [answer("Paris, France"), answer("Paris")]},
        {"id": "b", "question": "what?", "answers": [answer("the big red barn")]},
        {"id": "c", "question": "who?", "answers": [], "is_impossible": True},
        {"id": "d", "question": "when?", "answers": [], "is_impossible": True},
    ]
    return parse_squad({"data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}, source="mem")


def test_normalisation_matches_official_rules() -> None:
    assert normalize_answer("The  Big, RED barn!") == "big red barn"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("café—“x”") == "café—“x”"  # only ASCII punctuation is stripped


def test_token_f1_and_exact_by_hand() -> None:
    # gold [big, red, barn] vs prediction [red, barn, door]: 2 common, P = 2/3, R = 2/3
    assert f1_score("the big red barn", "red barn door") == pytest.approx(2 / 3)
    # gold [paris] vs [paris, france]: P = 1/2, R = 1 -> F1 = 2/3
    assert f1_score("Paris", "Paris, France") == pytest.approx(2 / 3)
    assert f1_score("", "") == 1 and f1_score("", "x") == 0 and f1_score("x", "") == 0
    assert exact_match("The Paris", "paris.") == 1


def test_dataset_scores_by_hand() -> None:
    predictions = {"a": "Paris", "b": "red barn door", "c": "", "d": "Ohio"}
    result = score_squad(dataset(), predictions)
    # EM: a=1 (matches gold 'Paris'), b=0, c=1 (abstained), d=0 -> 2/4
    # F1: a=1, b=2/3, c=1, d=0 -> (2 + 2/3) / 4
    assert result["exact"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(100 * (8 / 3) / 4)
    assert result["HasAns_exact"] == pytest.approx(50.0) and result["HasAns_f1"] == pytest.approx(100 * (5 / 3) / 2)
    assert result["NoAns_exact"] == pytest.approx(50.0) and result["NoAns_total"] == 2
    assert list(result) == [
        "exact",
        "f1",
        "total",
        "HasAns_exact",
        "HasAns_f1",
        "HasAns_total",
        "NoAns_exact",
        "NoAns_f1",
        "NoAns_total",
    ]


def test_na_prob_threshold_and_best_threshold_by_hand() -> None:
    predictions = {"a": "Paris", "b": "red barn door", "c": "", "d": "Ohio"}
    na_probs = {"a": 0.1, "b": 0.7, "c": 0.4, "d": 0.9}
    # Threshold 0.5: b and d abstain -> b scores 0 (has answer), d scores 1 (no answer).
    result = score_squad(dataset(), predictions, na_probs, na_prob_thresh=0.5)
    assert result["exact"] == pytest.approx(100 * 3 / 4)  # a=1, b=0, c=1, d=1
    # Best-threshold sweep (EM): start 2 (abstain everywhere: c, d right); +1 at a (0.1) -> 3;
    # c (0.4) has '' so +0; b (0.7) EM 0 -> 3; d (0.9) answered wrongly -> 2. Best 3 at threshold 0.1.
    assert result["best_exact"] == pytest.approx(75.0) and result["best_exact_thresh"] == pytest.approx(0.1)
    # F1 sweep: 2 -> 3 (a) -> 3 (c) -> 3 + 2/3 (b, 0.7) -> 2 + 2/3 (d). Best 11/3 at 0.7.
    assert result["best_f1"] == pytest.approx(100 * (11 / 3) / 4) and result["best_f1_thresh"] == pytest.approx(0.7)


def test_missing_predictions_score_zero() -> None:
    result = score_squad(dataset(), {"a": "Paris"})
    assert result["total"] == 4 and result["exact"] == pytest.approx(25.0)
    assert result["NoAns_exact"] == 0.0  # a missing prediction is not an abstention


def test_gold_answers_that_normalise_to_nothing_count_as_no_answer() -> None:
    qas = [{"id": "x", "question": "?", "answers": [{"text": "the", "answer_start": 0}]}]
    data = parse_squad({"data": [{"paragraphs": [{"context": "the", "qas": qas}]}]}, source="m")
    result = score_squad(data, {"x": ""})
    assert result["exact"] == 100.0 and result["HasAns_total"] == 1  # official: has_ans from the raw list


def test_classification_metrics_by_hand() -> None:
    # gold 0,0,1,1 predicted 0,1,1,1: accuracy 3/4; F1 class0 = 2*1/(1+2) = 2/3, class1 = 2*2/(3+2) = 4/5
    metrics = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], 2)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_macro_f1_averages_the_classes_the_data_or_the_model_uses() -> None:
    """A 3-label head scored on a file holding 2 of its labels, all right: macro-F1 1, not 2/3."""
    assert classification_metrics([0, 2, 2], [0, 2, 2], 3)["macro_f1"] == 1.0
    # A class only predicted counts (F1 0 for it): [0, 1] gold, [0, 2] predicted -> (1 + 0 + 0) / 3.
    assert classification_metrics([0, 1], [0, 2], 3)["macro_f1"] == pytest.approx(1 / 3)
