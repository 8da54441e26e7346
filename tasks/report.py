"""Task: the run's leaderboard as a Prefect table artifact."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from distill.config import RunConfig
from distill.report import Entry, leaderboard_rows
from distill.stages.evaluate import task_metric_name


@task(name="report")
def report(config: RunConfig, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Publish and return the leaderboard: teacher, distilled students and their baselines, side by side."""
    metric = task_metric_name(config)
    rows = leaderboard_rows([Entry(**entry) for entry in entries], metric)
    create_table_artifact(
        table=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
        key="leaderboard",
        description=f"{config.name}: every model's dev {metric}, cost, distance to the teacher and lift over "
        "its no-distillation baseline",
    )
    return rows
