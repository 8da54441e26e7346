"""TinyBERT intermediate-layer distillation: the student matches the teacher's internals.

Per mapped layer pair: MSE between hidden states (the student's projected to the
teacher's width by a learned linear map when widths differ), and an attention loss
between attention maps (MSE, or KL as in MiniLM; head-averaged when head counts differ).
The embedding outputs form pair (0, 0). Every term has its own weight and is logged
unweighted. No labels are used.

The projections train with the student: they hang off it as a submodule, so the
optimizer updates them and every checkpoint saves them (a resumed run keeps them). They
are detached and saved on their own when training ends, leaving a plain HF student.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Trainer

from distill.layer_map import LayerPair
from distill.losses import attention_kl, attention_mse, masked_mse

PROJECTIONS = "distill_projections"
_LABEL_COLUMNS = ("labels", "start_positions", "end_positions", "feature_index", "kd_mask")


class HiddenProjections(nn.Module):
    """One linear map per mapped layer pair from the student's width to the teacher's (identity if equal)."""

    def __init__(self, pairs: list[LayerPair], student_width: int, teacher_width: int) -> None:
        super().__init__()
        self.pairs = list(pairs)
        self.maps = nn.ModuleDict(
            {
                f"{s}_{t}": nn.Linear(student_width, teacher_width) if student_width != teacher_width else nn.Identity()
                for s, t in pairs
            }
        )

    def forward(self, hidden: torch.Tensor, pair: LayerPair) -> torch.Tensor:
        return self.maps[f"{pair[0]}_{pair[1]}"](hidden)


def attach_projections(student: nn.Module, projections: HiddenProjections) -> None:
    student.add_module(PROJECTIONS, projections)


def detach_projections(student: nn.Module) -> HiddenProjections | None:
    projections = getattr(student, PROJECTIONS, None)
    if projections is not None:
        delattr(student, PROJECTIONS)
    return projections


class IntermediateDistillationTrainer(Trainer):
    """Trainer whose loss is the weighted sum of embedding, hidden-state and attention matching terms."""

    def __init__(
        self,
        *args: Any,
        teacher_model: nn.Module,
        pairs: list[LayerPair],
        embedding_weight: float,
        hidden_weight: float,
        attention_weight: float,
        attention_loss: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher_model.to(self.args.device).eval().requires_grad_(False)
        self.pairs = pairs
        self.weights = {
            "embedding_loss": embedding_weight,
            "hidden_loss": hidden_weight,
            "attention_loss": attention_weight,
        }
        self.attention_fn = attention_mse if attention_loss == "mse" else attention_kl
        self._sums = dict.fromkeys(self.weights, 0.0)
        self._count = 0

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        model_inputs = {k: v for k, v in inputs.items() if k not in _LABEL_COLUMNS}
        need_attention = self.weights["attention_loss"] > 0
        # The student's base model only: the task head plays no part in this step.
        unwrapped = self.accelerator.unwrap_model(model)
        # Calling base_model bypasses the forward that accelerate wraps in autocast: enter it explicitly.
        with self.accelerator.autocast():
            student = unwrapped.base_model(**model_inputs, output_hidden_states=True, output_attentions=need_attention)
            with torch.inference_mode():
                teacher = self.teacher.base_model(
                    **model_inputs, output_hidden_states=True, output_attentions=need_attention
                )
        # Leave inference mode before these enter the student's graph (inference tensors cannot be saved).
        teacher_hidden = [h.clone() for h in teacher.hidden_states]
        teacher_attention = [a.clone() for a in teacher.attentions] if need_attention else []
        mask = model_inputs["attention_mask"]
        projections: HiddenProjections = getattr(unwrapped, PROJECTIONS)
        terms = dict.fromkeys(self.weights, torch.zeros((), device=mask.device))
        hidden_pairs = [pair for pair in self.pairs if pair[0] > 0]
        for pair in self.pairs:
            s, t = pair
            projected = projections(student.hidden_states[s], pair)
            key = "embedding_loss" if s == 0 else "hidden_loss"
            if self.weights[key] > 0:
                terms[key] = terms[key] + masked_mse(projected, teacher_hidden[t], mask)
            if s > 0 and need_attention and t > 0:
                terms["attention_loss"] = terms["attention_loss"] + self.attention_fn(
                    student.attentions[s - 1], teacher_attention[t - 1], mask
                )
        if hidden_pairs:  # per-layer averages, so weights mean the same for any depth
            terms["hidden_loss"] = terms["hidden_loss"] / len(hidden_pairs)
            terms["attention_loss"] = terms["attention_loss"] / len(hidden_pairs)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        if model.training:
            for name, value in terms.items():
                self._sums[name] += float(value.detach())
            self._count += 1
        return (loss, student) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._count:
            for name in self._sums:
                logs[name] = round(self._sums[name] / self._count, 6)
            self._sums, self._count = dict.fromkeys(self.weights, 0.0), 0
        super().log(logs, *args, **kwargs)
