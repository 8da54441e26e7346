"""The `export:` section: which models leave the run as ONNX, in which formats, and the checks they must pass."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from distill.config.base import StrictModel, repeated

# `onnx`: the fp32 graph, for any ONNX runtime. `onnx-int8`: the same graph with weights (linear layers and
# embeddings) stored as int8 and activations quantized on the fly (onnxruntime dynamic quantization).
ExportFormat = Literal["onnx", "onnx-int8"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("onnx", "onnx-int8")


class ExportConfig(StrictModel):
    """Export to ONNX after training: each listed format becomes a stage, checked against the PyTorch model,
    evaluated like every other model and shown in the leaderboard."""

    formats: list[ExportFormat] = Field(
        default_factory=lambda: list(EXPORT_FORMATS),
        description="Formats to export: 'onnx' (fp32) and 'onnx-int8' (dynamic int8). [] exports nothing.",
    )
    models: Literal["final", "students"] = Field(
        default="final",
        description="'final': the chain's last student; 'students': every distilled student of the chain.",
    )
    opset: int = Field(
        default=18,
        ge=18,
        le=23,
        description="ONNX opset of the graph. 18 is the oldest torch.onnx's exporter builds (older ones it converts "
        "down to, for BERT, fail or give graphs onnxruntime rejects).",
    )
    max_abs_diff: float = Field(
        default=1e-3,
        gt=0,
        description="fp32 check: the largest difference allowed between any ONNX and PyTorch logit on eval data.",
    )
    min_agreement: float = Field(
        default=0.99,
        gt=0,
        le=1,
        description="int8 check: the share of eval predictions (labels; QA answers) that must equal PyTorch's.",
    )

    @field_validator("formats")
    @classmethod
    def _no_repeats(cls, formats: list[str]) -> list[str]:
        if repeated(formats):
            raise ValueError(f"formats repeat: {repeated(formats)}")
        return formats
