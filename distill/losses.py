"""Distillation losses as pure functions of tensors.

Prediction layer (Hinton et al., 2015):

    L = w * T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T)) + (1 - w) * CE(hard labels)

The T^2 factor keeps the soft-target gradients on the same scale as the hard-label ones
when T changes. For extractive QA the distributions are over sequence positions, one for
the start and one for the end, averaged; positions outside the context (question tokens,
separators, padding) are masked in both distributions, except CLS, the no-answer slot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """T^2 * KL(p_teacher || p_student) at temperature T, averaged over the batch.

    Args:
        student_logits: `(B, K)`: K classes, or K sequence positions.
        teacher_logits: `(B, K)`, same layout; no gradient flows into it.
        temperature: T > 0; higher spreads the teacher's probability over more positions.
        mask: optional `(B, K)` bool, True where a position takes part; masked positions get
            probability 0 in both distributions.

    Returns:
        A scalar tensor.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    student = student_logits.float() / temperature
    teacher = teacher_logits.detach().float() / temperature
    if mask is not None:
        mask = mask.bool()
        student = student.masked_fill(~mask, float("-inf"))
        teacher = teacher.masked_fill(~mask, float("-inf"))
    teacher_log_probs = F.log_softmax(teacher, dim=-1)
    student_log_probs = F.log_softmax(student, dim=-1)
    # p_t * (log p_t - log p_s); where p_t = 0 (masked) the term is 0, not 0 * -inf = nan.
    pointwise = teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)
    if mask is not None:
        pointwise = torch.where(mask, pointwise, torch.zeros_like(pointwise))
    return pointwise.sum(dim=-1).mean() * temperature**2


def qa_soft_target_kl(
    student_start: torch.Tensor,
    student_end: torch.Tensor,
    teacher_start: torch.Tensor,
    teacher_end: torch.Tensor,
    temperature: float,
    mask: torch.Tensor,
) -> torch.Tensor:
    """The start and end position distillation terms, averaged.

    Args:
        student_start, student_end, teacher_start, teacher_end: `(B, L)` position logits.
        mask: `(B, L)`, True on context tokens and CLS.
    """
    start = soft_target_kl(student_start, teacher_start, temperature, mask)
    end = soft_target_kl(student_end, teacher_end, temperature, mask)
    return (start + end) / 2


def combine(kd_loss: torch.Tensor | None, hard_loss: torch.Tensor | None, loss_weight: float) -> torch.Tensor:
    """`w * kd + (1 - w) * hard`; a term whose weight is 0 is left out entirely (so w = 0 is plain fine-tuning)."""
    if not 0.0 <= loss_weight <= 1.0:
        raise ValueError(f"loss_weight must be in [0, 1], got {loss_weight}")
    if loss_weight == 0.0:
        if hard_loss is None:
            raise ValueError("loss_weight 0 needs hard labels")
        return hard_loss
    if loss_weight == 1.0:
        if kd_loss is None:
            raise ValueError("loss_weight 1 needs teacher logits")
        return kd_loss
    if kd_loss is None or hard_loss is None:
        raise ValueError("a loss_weight strictly between 0 and 1 needs both teacher logits and hard labels")
    return loss_weight * kd_loss + (1.0 - loss_weight) * hard_loss
