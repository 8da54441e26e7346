"""Stage task: export a trained student to ONNX (fp32 or int8), checked against PyTorch before it ships."""

from __future__ import annotations

from prefect import task

from distill.config import ExportFormat, RunConfig
from distill.stages.identity import StageId
from distill.stages.inputs import ExportInput
from distill.stages.plan import plan_export
from distill.store.artifacts import StageResult
from tasks.monitoring import publish_stage_summary, stage_slug
from tasks.stage import STAGE_TASK_OPTIONS, StageSpec, run_stage

EXPORT = StageSpec(plan_export, ExportInput)


@task(name=EXPORT.name, **STAGE_TASK_OPTIONS)
def export_model(config: RunConfig, model: StageResult, label: str, export_format: ExportFormat) -> StageResult:
    """Write `model` as `export_format` and check it on the eval data; `label` names the export (e.g.
    'minilm-l3-onnx-int8'). A failed check fails the stage with its numbers."""
    from distill.stages import export as export_stage  # here: a cached run never loads the exporter

    inputs = EXPORT.inputs(dict(config=config, model=model, label=label, export_format=export_format))
    result = run_stage(inputs, config.artifact_root, lambda directory: export_stage.export_model(inputs, directory))
    publish_stage_summary(stage_slug(StageId("export", label)), f"Export: {label}", result)
    return result
