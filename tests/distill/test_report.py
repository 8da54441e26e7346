"""Leaderboard rows: distance to the teacher and lift over the no-distillation baseline."""

from __future__ import annotations

import pytest

from distill.reporting.report import Entry, leaderboard_rows


def test_deltas_and_lift() -> None:
    rows = leaderboard_rows(
        [
            Entry("teacher", "teacher", {"accuracy": 0.833, "parameters": 22_000_000}),
            Entry("l3", "distilled", {"accuracy": 0.812, "parameters": 11_000_000}),
            Entry("l3-baseline", "baseline", {"accuracy": 0.803}, baseline_of="l3"),
        ],
        "accuracy",
    )
    by_model = {row["model"]: row for row in rows}
    assert by_model["teacher"]["delta_vs_teacher"] == 0.0
    assert by_model["l3"]["delta_vs_teacher"] == pytest.approx(-0.021)
    assert by_model["l3"]["lift_vs_baseline"] == pytest.approx(0.009)
    assert by_model["l3-baseline"]["lift_vs_baseline"] is None
    assert by_model["l3"]["parameters"] == 11_000_000 and by_model["l3-baseline"]["latency_p50_ms"] is None


def test_validation_columns_stand_beside_eval_when_present() -> None:
    qa = {"exact": 60.0, "f1": 70.0, "validation_exact": 58.0, "validation_f1": 69.0, "validation_best_f1": 71.0}
    rows = leaderboard_rows([Entry("teacher", "teacher", qa), Entry("l3", "distilled", {"f1": 65.0})], "f1")
    columns = list(rows[0])
    assert columns.index("f1") < columns.index("validation_exact") < columns.index("validation_f1")
    assert rows[0]["validation_f1"] == 69.0 and rows[0]["validation_best_f1"] == 71.0
    assert rows[1]["validation_f1"] is None  # shown for every row once any model has it
    assert rows[1]["delta_vs_teacher"] == -5.0  # deltas stay on the eval metric, the test set the table reports
    classification = leaderboard_rows(
        [Entry("t", "teacher", {"accuracy": 0.8, "validation_accuracy": 0.75})], "accuracy"
    )
    assert classification[0]["validation_accuracy"] == 0.75
    without = leaderboard_rows([Entry("t", "teacher", {"accuracy": 0.8})], "accuracy")
    assert not any(column.startswith("validation_") for column in without[0])
