"""`distill export`: a trained model as an ONNX folder (fp32 or int8), checked against PyTorch before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from distill.config import ExportConfig
from distill_cli.app import app, print_json, quiet_libraries

# Defaults and help come from the config model, so the command checks as a run's export stage does.
_EXPORT = ExportConfig.model_fields


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Trained model: a folder (e.g. a run's final_student), or a hub id.")],
    output: Annotated[Path, typer.Argument(help="Folder to write: new, empty, or an earlier export (replaced).")],
    format: Annotated[Literal["onnx"], typer.Option("--format", help="Export format.")] = "onnx",  # noqa: A002
    quantize: Annotated[
        Literal["none", "int8"], typer.Option(help="int8: onnxruntime dynamic quantization (weights and embeddings).")
    ] = "none",
    task: Annotated[
        Literal["auto", "qa", "classification"], typer.Option(help="The head to export. Default: the model's own.")
    ] = "auto",
    config: Annotated[
        Path | None,
        typer.Option(
            help="Run config whose eval data the check runs on (as the run's export stage does). Without it, the "
            "check runs on generated token sequences."
        ),
    ] = None,
    opset: Annotated[int, typer.Option(min=18, max=23, help=_EXPORT["opset"].description)] = _EXPORT["opset"].default,
    max_abs_diff: Annotated[float, typer.Option(help=_EXPORT["max_abs_diff"].description)] = _EXPORT[
        "max_abs_diff"
    ].default,
    min_agreement: Annotated[float, typer.Option(help=_EXPORT["min_agreement"].description)] = _EXPORT[
        "min_agreement"
    ].default,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size of the check's forwards.")] = 64,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow code shipped with the checkpoint to run.")] = False,
) -> None:
    """Export MODEL to OUTPUT as ONNX (optionally int8), check it against PyTorch, and print what was written.

    The folder holds model.onnx, config.json, the tokenizer and export.json: onnxruntime and
    optimum's ORTModel classes load it, as do `distill evaluate` and `answer_questions`.
    """
    quiet_libraries()
    from distill.config import load_config
    from distill.data.task_data import load_task_data
    from distill.export.check import compare_generated, compare_on_eval, require
    from distill.export.onnx import export_model

    fmt = "onnx-int8" if quantize == "int8" else format
    limits = ExportConfig(opset=opset, max_abs_diff=max_abs_diff, min_agreement=min_agreement)  # validates them
    run = load_config(config) if config is not None else None
    if run is not None and task not in ("auto", run.data.task):
        raise typer.BadParameter(f"--task {task} disagrees with {config}'s task {run.data.task}")

    def check(reference: Any, tokenizer: Any, exported: Any) -> dict[str, Any]:
        if run is None:
            agreement = compare_generated(reference, exported, tokenizer, exported.task, batch_size=batch_size)
        else:
            data = load_task_data(run.data, need_train=False)
            agreement = compare_on_eval(reference, exported, tokenizer, data, run.data, batch_size=batch_size)
        require(agreement, fmt, limits, model)
        return agreement.metrics()

    chosen = run.data.task if run is not None else (None if task == "auto" else task)
    info, figures = export_model(
        model, output, fmt, task=chosen, opset=opset, trust_remote_code=trust_remote_code, check=check
    )
    from distill.evaluation.profiling import size_on_disk_mb

    print_json({"output": str(output), **info, "size_on_disk_mb": size_on_disk_mb(output), **figures})
