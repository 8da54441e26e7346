"""min_teacher_metric reads the teacher's validation figure when the run has validation data, eval's otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from distill.config import RunConfig, parse_config
from distill.errors import DistillError
from distill.store.artifacts import StageResult
from tasks.distill import _check_teacher


def config(**data: Any) -> RunConfig:
    return parse_config(
        {
            "name": "gate",
            "data": {"task": "qa", "train": "train.json", "eval": "eval.json", **data},
            "teacher": {"model": "minilm"},
            "stages": [{"name": "small", "student": {"layers": [0]}, "min_teacher_metric": 50.0}],
        }
    )


def result(**metrics: float) -> StageResult:
    return StageResult(
        name="evaluate", key="k", uri="teacher", manifest_sha256="0", content_sha256="0", metrics=metrics
    )


def test_gate_uses_validation_when_the_run_has_it() -> None:
    run = config(validation_fraction=0.2)
    teacher = result()
    # Strong on eval, weak on validation: the gate must not look at eval, the test set.
    with pytest.raises(DistillError, match="teacher 'teacher' has validation f1 40, below min_teacher_metric 50"):
        _check_teacher(run, "small", teacher, result(f1=90.0, validation_f1=40.0))
    _check_teacher(run, "small", teacher, result(f1=10.0, validation_f1=60.0))
    with pytest.raises(DistillError, match="has no validation f1 to check"):
        _check_teacher(run, "small", teacher, result(f1=90.0))


def test_gate_uses_eval_without_validation_data() -> None:
    run = config()
    with pytest.raises(DistillError, match="teacher 'teacher' has eval f1 40, below min_teacher_metric 50"):
        _check_teacher(run, "small", result(), result(f1=40.0, validation_f1=90.0))
    _check_teacher(run, "small", result(), result(f1=60.0))
