"""Leaderboard rows: distance to the teacher and lift over the no-distillation baseline."""

from __future__ import annotations

import pytest

from distill.report import Entry, leaderboard_rows


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
