"""Stage body: export a trained model to ONNX (fp32 or int8) and check it against PyTorch on the eval data.

The export lands in the stage's `model/` folder. A check that fails fails the stage with its
numbers, so the folder is never completed: nothing ships that does not answer as its source does.
"""

from __future__ import annotations

import time
from typing import Any

from distill.config import ExportConfig
from distill.data.task_data import QAData, load_task_data
from distill.evaluation.profiling import size_on_disk_mb
from distill.export.check import compare_on_eval, require
from distill.export.onnx import export_model as export_onnx
from distill.stages.inputs import ExportInput
from distill.store.artifacts import StageDirectory


def export_model(inputs: ExportInput, stage: StageDirectory) -> dict[str, Any]:
    """Export `inputs.model` as `inputs.export_format` into `stage.model_dir`; raise if its check fails."""
    settings = inputs.data.config
    data = load_task_data(settings, need_train=False)
    limits = ExportConfig(max_abs_diff=inputs.max_abs_diff, min_agreement=inputs.min_agreement)

    def check(reference: Any, tokenizer: Any, exported: Any) -> dict[str, Any]:
        agreement = compare_on_eval(reference, exported, tokenizer, data, settings, batch_size=inputs.batch_size)
        require(agreement, inputs.export_format, limits, inputs.label)
        return agreement.metrics()

    started = time.perf_counter()
    info, figures = export_onnx(
        inputs.model.model(),
        stage.model_dir,
        inputs.export_format,
        task="qa" if isinstance(data, QAData) else "classification",
        opset=inputs.opset,
        trust_remote_code=inputs.trust_remote_code,
        check=check,
    )
    return {
        "format": inputs.export_format,
        "precision": info["precision"],
        "opset": inputs.opset,
        "export_seconds": round(time.perf_counter() - started, 2),
        "size_on_disk_mb": size_on_disk_mb(stage.model_dir),
        **figures,
    }
