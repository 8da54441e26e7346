"""Run an exported folder with onnxruntime: no torch model, no training stack.

`OnnxModel` is called as a transformers model is (`model(input_ids=..., attention_mask=...)`), with
numpy arrays, and returns the head's outputs by name, so `distill.models.inference.forward_in_batches`
(and through it evaluation, `answer_questions` and `classify_texts`) runs it with the same batching,
windowing and post-processing as a PyTorch model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import ModelError

ONNX_FILE = "model.onnx"  # the name optimum's ORTModel classes look for
EXPORT_INFO = "export.json"


def is_exported(path: str | Path) -> bool:
    """Whether `path` is a folder `distill export` wrote (an ONNX graph and its `export.json`)."""
    folder = Path(path)
    return (folder / ONNX_FILE).is_file() and (folder / EXPORT_INFO).is_file()


def read_export_info(path: str | Path) -> dict[str, Any]:
    folder = Path(path)
    try:
        info = json.loads((folder / EXPORT_INFO).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model '{path}': cannot read {EXPORT_INFO}: {exc}") from None
    if not isinstance(info, dict) or "task" not in info or "outputs" not in info:
        raise ModelError(f"model '{path}': {EXPORT_INFO} does not describe an export (no task or outputs)")
    return info


class OnnxModel:
    """An exported folder loaded into an onnxruntime CPU session.

    `threads` sets the session's intra-op threads (None: onnxruntime's default, every core); the
    session runs its operators one at a time (`inter_op_num_threads=1`), as a served model does.
    """

    runs_arrays = True  # forward_in_batches: called with numpy arrays, returns numpy arrays; no torch

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime

        self.path = Path(path)
        if not is_exported(self.path):
            raise ModelError(f"model '{path}': not an exported model folder (no {ONNX_FILE} with {EXPORT_INFO})")
        self.info = read_export_info(self.path)
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only: the session's warnings about unused initialisers are noise
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for a bad graph
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"model '{path}': onnxruntime cannot load {ONNX_FILE}: {first}") from exc
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.output_names = [node.name for node in self.session.get_outputs()]
        self.task: str = self.info["task"]
        self.precision: str = self.info.get("precision", "fp32")
        self.labels: list[str] | None = self.info.get("labels")
        self.parameter_count: int | None = self.info.get("parameters")
        config_file = self.path / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        self.pad_token_id: int = config.get("pad_token_id") or 0

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ValueError(f"model '{self.path}' needs the inputs {missing}")
        feed = {name: np.asarray(inputs[name], dtype=np.int64) for name in self.input_names}
        return dict(zip(self.output_names, self.session.run(self.output_names, feed), strict=True))
