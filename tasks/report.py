"""Task: the run's report: leaderboard table and markdown artifacts, and files under `runs/<run name>/`."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from distill.config import RunConfig
from distill.reporting.files import read_loss_curve, write_report
from distill.reporting.report import Entry, leaderboard_rows
from distill.stages.plan import task_metric_name
from distill.store.artifacts import remote_store, resolve_root


@task(name="report")
def report(
    config: RunConfig,
    entries: list[dict[str, Any]],
    stage_dirs: dict[str, str],
    final_student: str | None,
    run_name: str,
    sweeps: list[dict[str, Any]] | None = None,
    final_exports: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Publish the leaderboard (teacher, distilled students, baselines) and write the report files.

    `stage_dirs` maps training stages to their directories, for the loss curves; the final
    (last) student is copied as a plain Hugging Face folder next to the report, and its ONNX exports
    (`final_exports`, format to folder) beside it. `sweeps` are the
    sweep tables' rows, written as `sweep.csv` with a plot per swept stage.
    """
    metric = task_metric_name(config)
    rows = leaderboard_rows([Entry(**entry) for entry in entries], metric)
    create_table_artifact(
        table=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
        key="leaderboard",
        description=f"{config.name}: every model's eval {metric} (and validation, when the run has one), cost, "
        "distance to the teacher and lift over "
        "its no-distillation baseline",
    )
    run_dir = resolve_root(config.artifact_root) / "runs" / run_name
    curves = {name: read_loss_curve(uri) for name, uri in stage_dirs.items()}
    markdown = write_report(
        run_dir, f"{config.name}: {run_name}", rows, metric, curves, final_student, sweeps, final_exports
    )
    create_markdown_artifact(markdown=markdown, key="report", description=f"{config.name}: leaderboard and plots")
    get_run_logger().info("report written to %s", run_dir)
    store = remote_store(config.artifact_root)
    if store is not None:  # the folder above is this node's cache: the shared copy goes to the store
        get_run_logger().info("report uploaded to %s", store.put_folder(run_dir, f"runs/{run_name}"))
    return {"leaderboard": rows, "report_dir": str(run_dir), "sweeps": sweeps or []}
