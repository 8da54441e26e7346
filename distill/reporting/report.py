"""The run's leaderboard: one row per evaluated model, with its distance to the teacher and its lift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One evaluated model.

    `stage` is the chain stage that produced it (None for the teacher), `taught_by` the model it
    learned from, and `baseline_of` names the distilled model a baseline is the reference for. An
    exported model (`role` "exported") is its stage's student in another `format` ("onnx", "onnx-int8").
    """

    model: str
    role: str  # "teacher", "distilled", "baseline" or "exported"
    metrics: dict[str, Any]
    baseline_of: str | None = None
    stage: str | None = None
    taught_by: str | None = None
    format: str = "pytorch"


# Task metrics shown when the evaluation produced them (QA: EM/F1, and HasAns/NoAns on v2.0, at the configured
# no-answer threshold; with validation data, also at the threshold tuned on it). With validation data, its own
# figures stand beside eval's as validation_*: what choices are made on, while eval (the test set) is reported.
METRIC_COLUMNS = (
    "exact",
    "f1",
    "HasAns_exact",
    "HasAns_f1",
    "NoAns_exact",
    "NoAns_f1",
    "validation_exact",
    "validation_f1",
    "validation_HasAns_f1",
    "validation_NoAns_f1",
    "validation_best_f1",
    "tuned_null_threshold",
    "tuned_exact",
    "tuned_f1",
    "tuned_HasAns_f1",
    "tuned_NoAns_f1",
    "accuracy",
    "validation_accuracy",
)
COST_COLUMNS = (
    "precision",
    "parameters",
    "size_on_disk_mb",
    "latency_runtime",
    "latency_device",
    "latency_p50_ms",
    "throughput_per_s",
)


def leaderboard_rows(entries: list[Entry], metric: str) -> list[dict[str, Any]]:
    """Rows with the task metrics, cost columns, `delta_vs_teacher`, for distilled models `lift_vs_baseline`,
    and for exported ones `delta_vs_source` (against the PyTorch student they were exported from).

    `metric` (f1 or accuracy) is the one deltas are computed on; the teacher's delta is 0.
    """
    teacher = next((e for e in entries if e.role == "teacher"), None)
    teacher_score = teacher.metrics.get(metric) if teacher else None
    baselines = {e.baseline_of: e.metrics.get(metric) for e in entries if e.role == "baseline" and e.baseline_of}
    sources = {e.stage: e.metrics.get(metric) for e in entries if e.role == "distilled"}  # what exports came from
    shown = [m for m in METRIC_COLUMNS if any(m in e.metrics for e in entries)] or [metric]
    rows = []
    for entry in entries:
        score = entry.metrics.get(metric)
        row: dict[str, Any] = {"model": entry.model, "role": entry.role, "format": entry.format, "stage": entry.stage}
        row["taught_by"] = entry.taught_by
        row.update({column: entry.metrics.get(column) for column in shown})
        row.update({column: entry.metrics.get(column) for column in COST_COLUMNS})
        row["delta_vs_teacher"] = _difference(score, teacher_score)
        baseline = baselines.get(entry.model)
        row["lift_vs_baseline"] = _difference(score, baseline) if entry.role == "distilled" else None
        source = sources.get(entry.stage) if entry.role == "exported" else None
        row["delta_vs_source"] = _difference(score, source)
        rows.append(row)
    return rows


def _difference(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else round(value - reference, 6)
