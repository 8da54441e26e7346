"""Batched inference: the one way a model is run over tokenized features (scoring, and the teacher's logit pass).

Features may differ in length (QA windows are not padded): rows go longest first in batches of
similar length, each padded on the right to its own longest row, so little padding is computed,
and the widest batch (and any out-of-memory) comes first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from distill.errors import ModelError
from distill.precision import ResolvedPrecision, autocast

Progress = Callable[[int], None]  # called with the number of rows just processed

# What a BERT-family model reads from a feature; the rest of a feature's columns are targets or bookkeeping.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The targets a Hugging Face task head takes, by task.
LABEL_COLUMNS = ("labels", "start_positions", "end_positions")
# The outputs distillation and scoring read, by task.
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {"qa": ("start_logits", "end_logits"), "classification": ("logits",)}
# Outputs with one value per token, `(B, T)`; every other output has the same shape in every batch.
POSITION_OUTPUTS = frozenset({"start_logits", "end_logits"})

_CHUNK = 4096


class _Rows:
    """Row access to features given as a dict of lists or as a `datasets.Dataset` (read in column slices)."""

    def __init__(self, features: Any) -> None:
        self.features = features
        self.is_table = not isinstance(features, Mapping)
        columns = features.column_names if self.is_table else list(features)
        self.inputs = [name for name in MODEL_INPUTS if name in columns]

    def lengths(self) -> np.ndarray:
        if not self.is_table:
            return np.array([len(ids) for ids in self.features["input_ids"]], dtype=np.int64)
        count = len(self.features)
        chunks = (self.features[begin : begin + _CHUNK]["input_ids"] for begin in range(0, count, _CHUNK))
        return np.array([len(ids) for chunk in chunks for ids in chunk], dtype=np.int64)

    def take(self, rows: np.ndarray) -> dict[str, list[list[int]]]:
        if self.is_table:
            chunk = self.features[rows.tolist()]  # column slices: far faster than row-by-row access
            return {name: chunk[name] for name in self.inputs}
        return {name: [self.features[name][i] for i in rows] for name in self.inputs}


def _pad_rows(rows: list[list[int]], width: int, value: int) -> np.ndarray:
    """`(B, width)` int64 array of `rows`, each padded on the right with `value`."""
    padded = np.full((len(rows), width), value, dtype=np.int64)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
    return padded


def _torch_call(model: Any, precision: ResolvedPrecision) -> Callable[..., dict[str, np.ndarray]]:
    """`model` as a function of numpy inputs to numpy float32 outputs, on its device, under `precision`."""
    model.eval()
    device = next(model.parameters()).device

    def call(**arrays: np.ndarray) -> dict[str, np.ndarray]:
        with autocast(precision, device):
            result = model(**{name: torch.from_numpy(array).to(device) for name, array in arrays.items()})
        return {name: value.float().cpu().numpy() for name, value in result.items() if torch.is_tensor(value)}

    return call


@torch.inference_mode()
def forward_in_batches(
    model: Any,
    features: Any,
    output_names: tuple[str, ...],
    *,
    batch_size: int,
    progress: Progress | None = None,
    precision: ResolvedPrecision = "fp32",
    dtype: type = np.float32,
    beyond_length: float = -np.inf,
) -> dict[str, np.ndarray]:
    """Forward tokenized `features` (a dict of lists, or a `datasets.Dataset`) through `model` in batches.

    Returns the named outputs as `dtype` arrays in feature order. Position outputs
    (`POSITION_OUTPUTS`) are `(N, L)`, L the longest feature, and `beyond_length` past each row's
    own length: -inf by default, no token there, so never an answer. `precision` bf16 runs the
    forwards under bf16 autocast (3-4x faster on CPUs with AMX-BF16). `model` is a torch model, or an
    exported one (`distill.export.runtime.OnnxModel`: `runs_arrays`), which takes and returns numpy arrays.
    """
    runs_arrays = getattr(model, "runs_arrays", False)
    if runs_arrays:
        call, pad_id = model, model.pad_token_id
    else:
        call, pad_id = _torch_call(model, precision), getattr(getattr(model, "config", None), "pad_token_id", None)
    table = _Rows(features)
    # Masks and token types pad with 0. What pads the ids does not reach real tokens (the mask hides it), but
    # the model's own pad id keeps models that derive positions from ids (RoBERTa) as they were trained.
    pad_values = {"input_ids": pad_id or 0}
    lengths = table.lengths()
    order = np.argsort(-lengths, kind="stable")
    outputs: dict[str, np.ndarray] = {}
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        width = int(lengths[rows].max())
        taken = table.take(rows)
        result = call(**{name: _pad_rows(taken[name], width, pad_values.get(name, 0)) for name in taken})
        for name in output_names:
            values = np.asarray(result[name], dtype=np.float32)
            if name in POSITION_OUTPUTS:  # (B, T): what lies past a row's own length is padding
                values[np.arange(width)[None, :] >= lengths[rows][:, None]] = beyond_length
            if name not in outputs:  # longest first: the first batch's shape fits every row
                outputs[name] = np.full((len(order), *values.shape[1:]), beyond_length, dtype=dtype)
            outputs[name][rows, : values.shape[1]] = values
        if progress is not None:
            progress(len(rows))
    return {name: outputs.get(name, np.zeros((0,), dtype=dtype)) for name in output_names}


def load_for_inference(
    model: str, task: str, *, threads: int | None = None, trust_remote_code: bool = False
) -> tuple[Any, Any]:
    """(model, tokenizer) to run `forward_in_batches` with: an exported folder in onnxruntime (`threads` intra-op
    threads; None: every core), anything else (a folder, a hub id, a short name) as a PyTorch model for `task`."""
    from distill.export.runtime import OnnxModel, is_exported
    from distill.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
    if is_exported(model):
        exported = OnnxModel(model, threads=threads)
        if exported.task != task:
            raise ModelError(f"model '{model}': exported for {exported.task}, not {task}")
        return exported, tokenizer
    loaded, fresh = load_model(model, task, trust_remote_code=trust_remote_code)  # type: ignore[arg-type]
    if fresh:
        raise ModelError(f"model '{model}': has no trained {task} head (newly initialised: {', '.join(fresh[:3])})")
    return loaded, tokenizer
