"""Export a saved model to ONNX (torch.onnx's exporter), optionally quantized to int8 (onnxruntime's quantizer).

The folder written is what onnxruntime and optimum's `ORTModelFor...` classes load: `model.onnx`
(dynamic batch and sequence axes; inputs named as the tokenizer names them, outputs as the
transformers head names them), `config.json` and the tokenizer's files, plus `export.json`, which
says what the graph is (task, format, opset, labels, parameters) for distill's own runtime.

int8 is onnxruntime's dynamic quantization: the weights of the linear layers are stored as int8 per
output channel, with 7-bit range (`reduce_range`: no saturation of `MatMulInteger` on CPUs without
VNNI), and activations are quantized on the fly. The word embedding table is stored as 8 bits too
(one scale for the table: onnxruntime quantizes `Gather` per tensor). Embeddings are most of a
small BERT's weights (MiniLM-L3: 11.7M of 17.4M parameters), so quantizing only the linear layers
would leave the file at ~70% of fp32's size; with the word table it is ~27%. The position and
token-type tables are small and stay float, as do products of two activations (attention scores,
`MatMulConstBOnly`): quantizing those costs accuracy for little size or speed. On the quickstart's
SST-2 students these choices agree with PyTorch on 99.0-99.2% of eval sentences; every other mix
measured agreed on 98.4-99.1% (`benchmarks/export.py`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import logging
import re
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from distill.config.export import ExportFormat
from distill.errors import DistillError, ModelError, first_line
from distill.export.runtime import EXPORT_INFO, ONNX_FILE, OnnxModel, is_exported
from distill.io import atomic_write_json
from distill.models.inference import MODEL_INPUTS, OUTPUT_NAMES
from distill.models.loading import load_model, load_tokenizer, model_task, save_tokenizer

log = logging.getLogger("distill")

# One protobuf file holds at most 2 GB; larger graphs keep their weights in `model.onnx.data` beside it.
_SINGLE_FILE_BYTES = 1_800_000_000


class ExportError(ModelError):
    """A model that cannot be exported (its architecture, the opset) or whose export failed its check."""


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _accepted_inputs(model: Any, tokenizer: Any) -> list[str]:
    """The inputs both the model's forward and the tokenizer have (DistilBERT takes no token types)."""
    forward = inspect.signature(model.forward).parameters
    produced = set(getattr(tokenizer, "model_input_names", MODEL_INPUTS))
    return [name for name in MODEL_INPUTS if name in forward and name in produced]


class _NamedOutputs:
    """Builds a module whose forward takes the inputs positionally and returns the head's outputs as a tuple,
    so the graph's inputs and outputs are exactly the ones named, in that order."""

    @staticmethod
    def wrap(model: Any, inputs: list[str], outputs: tuple[str, ...]) -> Any:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
                result = self.model(**dict(zip(inputs, tensors, strict=True)), return_dict=True)
                return tuple(result[name] for name in outputs)

        return Wrapped().eval()


def _example(tokenizer: Any, inputs: list[str]) -> tuple[Any, ...]:
    """Two rows of different lengths, padded: batch and sequence sizes above 1, so neither is fixed in the graph."""
    import torch

    encoded = tokenizer(["a short one", "a somewhat longer sentence to pad the first"], padding=True)
    return tuple(torch.tensor(encoded[name], dtype=torch.long) for name in inputs)


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Errors only from these loggers, and no warnings, for the duration. The exporter reports each of its steps
    and every torchvision operator it skips, and onnxruntime's quantizer advises pre-processing (advice for
    static quantization of vision models) on the root logger at every call: none of it is the user's concern,
    and it would fill the stage's log. Errors still surface as exceptions."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in loggers:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def _to_onnx(model: Any, tokenizer: Any, task: str, path: Path, opset: int) -> tuple[list[str], tuple[str, ...]]:
    import torch

    inputs = _accepted_inputs(model, tokenizer)
    outputs = OUTPUT_NAMES[task]
    wrapped = _NamedOutputs.wrap(model, inputs, outputs)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        with _quiet("torch.onnx", "torch.export", "torch._dynamo", "onnx_ir", "onnxscript"):
            torch.onnx.export(
                wrapped,
                _example(tokenizer, inputs),
                str(path),
                input_names=inputs,
                output_names=list(outputs),
                opset_version=opset,
                dynamo=True,
                dynamic_shapes={"tensors": tuple({0: batch, 1: sequence} for _ in inputs)},
                external_data=weight_bytes > _SINGLE_FILE_BYTES,
                verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; all mean "cannot export this"
        architecture = type(model).__name__
        raise ExportError(f"{architecture} cannot be exported to ONNX opset {opset}: {_reason(exc)}") from exc
    _check_opset(path, opset, type(model).__name__)
    return inputs, outputs


def _reason(exc: BaseException) -> str:
    """The first line of the innermost cause, without the exporter's terminal colours: what went wrong, not
    which of the exporter's steps noticed it."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return re.sub(r"\x1b\[[0-9;]*m", "", first_line(exc))


def _small_tables(graph: Path, vocabulary_size: int) -> list[str]:
    """The `Gather` nodes that read an embedding table other than the word embeddings (positions, token types)."""
    import onnx

    model = onnx.load(graph, load_external_data=False)
    tables = {tensor.name: tensor.dims for tensor in model.graph.initializer}
    # onnxruntime excludes nodes by name; the exporter names every node (an unnamed one is left to be quantized).
    return [
        node.name
        for node in model.graph.node
        if node.name
        and node.op_type == "Gather"
        and node.input[0] in tables
        and tables[node.input[0]][0] != vocabulary_size
    ]


def _quantize(source: Path, target: Path, vocabulary_size: int) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    external = any(path != source for path in source.parent.iterdir())  # the fp32 graph keeps its weights beside it
    with _quiet(""):  # the root logger
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=["MatMul", "Gemm", "Gather"],
            nodes_to_exclude=_small_tables(source, vocabulary_size),
            use_external_data_format=external,
            extra_options={"MatMulConstBOnly": True},
        )


def _check_opset(graph: Path, opset: int, architecture: str) -> None:
    """The exporter builds opset 18 and converts down on request; a conversion it cannot do leaves 18 in place
    (with a warning only), so the graph is read back rather than trusted."""
    import onnx

    model = onnx.load(graph, load_external_data=False)
    built = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    if built != opset:
        raise ExportError(f"{architecture} cannot be exported to ONNX opset {opset}: the exporter built opset {built}")


# Checks the export before it is moved into place: called with the PyTorch model, its tokenizer and the exported
# folder loaded in onnxruntime; raises to stop the export, returns figures to report.
Check = Callable[[Any, Any, OnnxModel], dict[str, Any]]


def _check_target(output_dir: Path) -> None:
    """The target is new, empty, or an earlier export: never replace a folder that holds anything else."""
    if output_dir.exists() and not output_dir.is_dir():
        raise DistillError(f"{output_dir}: exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not is_exported(output_dir):
        raise DistillError(f"{output_dir}: folder is not empty and holds no earlier export; choose a new folder")


def _replace(target: Path, staging: Path) -> None:
    """Move `staging` to `target`; an earlier export there is moved aside first and deleted only after, so a
    crash leaves the old export or the new one, never half of either."""
    _check_target(target)  # again: the export took minutes, and something else may have been written there
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if old.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export_model(
    model_path: str,
    output_dir: str | Path,
    fmt: ExportFormat,
    *,
    task: str | None = None,
    opset: int = 18,
    trust_remote_code: bool = False,
    check: Check | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write `model_path` as an ONNX folder at `output_dir`; returns its `export.json` and `check`'s figures.

    The folder is built aside and moved into place only once written and checked, replacing an
    earlier export there (any other non-empty folder is refused). `task` ("qa" or
    "classification") defaults to the head the saved model was trained with.
    """
    output_dir = Path(output_dir)
    _check_target(output_dir)
    task = task or model_task(model_path)
    if task not in OUTPUT_NAMES:
        raise ModelError(f"model '{model_path}': say which head to export with --task qa or --task classification")
    started = time.perf_counter()
    model, fresh = load_model(model_path, task, trust_remote_code=trust_remote_code)
    if fresh:
        log.warning("model '%s' has no trained %s head: the export holds a random one", model_path, task)
    tokenizer = load_tokenizer(model_path, trust_remote_code=trust_remote_code)
    model.eval()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # Hidden names: a stage directory's manifest skips them, so a killed export's leftovers never count as output.
    staging = output_dir.with_name(f".{output_dir.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        with tempfile.TemporaryDirectory(dir=staging, prefix=".scratch-") as scratch:
            graph = Path(scratch) / ONNX_FILE
            inputs, outputs = _to_onnx(model, tokenizer, task, graph, opset)
            if fmt == "onnx-int8":
                _quantize(graph, staging / ONNX_FILE, model.get_input_embeddings().num_embeddings)
            else:
                for produced in Path(scratch).iterdir():  # the graph, and its weights file when there is one
                    shutil.move(produced, staging / produced.name)
        model.config.save_pretrained(staging)
        save_tokenizer(tokenizer, staging)
        info = {
            "format": fmt,
            "task": task,
            "opset": opset,
            "inputs": inputs,
            "outputs": list(outputs),
            "precision": "int8" if fmt == "onnx-int8" else "fp32",
            "labels": [model.config.id2label[i] for i in range(model.config.num_labels)]
            if task == "classification"
            else None,
            "parameters": sum(p.numel() for p in model.parameters()),
            "architecture": type(model).__name__,
            "versions": {name: _package_version(name) for name in ("torch", "transformers", "onnx", "onnxruntime")},
        }
        atomic_write_json(staging / EXPORT_INFO, info)  # the same bytes for the same model: no times, no paths
        exported = OnnxModel(staging)  # onnxruntime loads it, or this fails naming the model
        figures = check(model, tokenizer, exported) if check is not None else {}
        _replace(output_dir, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %s as %s in %.1f s", model_path, fmt, time.perf_counter() - started)
    return info, figures
