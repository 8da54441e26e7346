"""A Trainer whose loss is Hinton prediction-layer distillation.

The hard-label term is the model's own loss computed exactly as plain fine-tuning
computes it, so `loss_weight = 0` is plain fine-tuning, bit for bit. The soft-target term
comes from cached teacher logits (looked up by each feature's `feature_index`) or, with
`teacher_cache: false`, from running the teacher at every step.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from distill.models.inference import LABEL_COLUMNS, MODEL_INPUTS, OUTPUT_NAMES
from distill.training import distributed
from distill.training.losses import combine, qa_soft_target_kl, soft_target_kl
from distill.training.trainer import LengthGroupedTrainer


def fit_width(position_logits: np.ndarray, width: int) -> np.ndarray:
    """Cached `(B, L)` position logits cut, or zero-padded, to the batch's width T: `(B, T)` float32.

    Batches are padded to their longest window, so T varies and L (the longest feature) is at least T.
    Past a window's own length the cache holds the teacher's padding logits or zeros; `kd_mask` is 0 there.
    """
    values = np.asarray(position_logits[:, :width], dtype=np.float32)
    if values.shape[1] < width:
        values = np.pad(values, ((0, 0), (0, width - values.shape[1])))
    return values


class PredictionDistillationTrainer(LengthGroupedTrainer):
    """Trainer with `L = w T^2 KL(teacher || student) + (1 - w) CE`; logs both terms unweighted."""

    def __init__(
        self,
        *args: Any,
        task: Literal["qa", "classification"],
        temperature: float,
        loss_weight: float,
        teacher_logits: dict[str, np.ndarray] | None = None,
        teacher_model: torch.nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if loss_weight > 0 and teacher_logits is None and teacher_model is None:
            raise ValueError("distillation needs teacher_logits or a teacher_model")
        self.task = task
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.teacher_logits = teacher_logits
        self.teacher_model = teacher_model
        if teacher_model is not None:
            teacher_model.to(self.args.device).eval().requires_grad_(False)
        self._term_sums = {"kd_loss": 0.0, "hard_loss": 0.0}
        self._term_counts = {"kd_loss": 0, "hard_loss": 0}

    def _teacher_outputs(self, index: torch.Tensor, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = inputs["input_ids"].device
        if self.teacher_logits is not None:
            rows = index.cpu().numpy()
            arrays = {name: values[rows] for name, values in self.teacher_logits.items()}
            if self.task == "qa":  # position logits, to this batch's width
                arrays = {name: fit_width(values, inputs["input_ids"].shape[1]) for name, values in arrays.items()}
            return {
                name: torch.from_numpy(np.asarray(values, dtype=np.float32)).to(device)
                for name, values in arrays.items()
            }
        model_inputs = {k: v for k, v in inputs.items() if k in MODEL_INPUTS}
        # not inference_mode: these tensors enter the student's autograd graph. Accelerate wraps only the
        # student's forward in autocast, so the teacher enters the run's precision explicitly.
        with torch.no_grad(), self.accelerator.autocast():
            result = self.teacher_model(**model_inputs)
        names = OUTPUT_NAMES[self.task]
        return {name: result[name].float() for name in names}

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        index = inputs.pop("feature_index", None)
        kd_mask = inputs.pop("kd_mask", None)
        has_labels = any(name in inputs for name in LABEL_COLUMNS)
        if self.loss_weight == 1.0:
            # Pure soft targets: labels are not needed (unlabelled or augmented text works).
            for name in LABEL_COLUMNS:
                inputs.pop(name, None)
            has_labels = False
        if has_labels:
            hard_loss, outputs = super().compute_loss(
                model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
        else:
            hard_loss, outputs = None, model(**inputs)
        kd_loss = None
        if self.loss_weight > 0:
            if index is None:
                raise ValueError("distillation batches need a feature_index column")
            teacher = self._teacher_outputs(index, inputs)
            if self.task == "qa":
                # Never a padded position, whatever the collator did: cached teacher logits there are not real.
                mask = kd_mask.bool() & inputs["attention_mask"].bool()
                kd_loss = qa_soft_target_kl(
                    outputs["start_logits"],
                    outputs["end_logits"],
                    teacher["start_logits"],
                    teacher["end_logits"],
                    self.temperature,
                    mask,
                )
            else:
                kd_loss = soft_target_kl(outputs["logits"], teacher["logits"], self.temperature)
        loss = combine(kd_loss, hard_loss, self.loss_weight)
        self._record("kd_loss", kd_loss)
        self._record("hard_loss", hard_loss)
        return (loss, outputs) if return_outputs else loss

    def _record(self, name: str, value: torch.Tensor | None) -> None:
        if value is not None and self.model.training:
            self._term_sums[name] += float(value.detach())
            self._term_counts[name] += 1

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        # The unweighted terms, averaged since the last log, next to the combined loss.
        if "loss" in logs:
            names = list(self._term_sums)
            # Every rank's batches, as the logged loss is; the counts are the same on every rank.
            sums = distributed.mean_over_ranks([self._term_sums[name] for name in names])
            for name, total in zip(names, sums, strict=True):
                if self._term_counts[name]:
                    logs[name] = round(total / self._term_counts[name], 6)
                self._term_sums[name], self._term_counts[name] = 0.0, 0
        super().log(logs, *args, **kwargs)
