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


# --------------------------------------------------------------------------- intermediate layers (TinyBERT)


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real (non-padding) tokens.

    Args:
        student: `(B, T, D)` hidden states, already projected to the teacher's width D.
        teacher: `(B, T, D)`.
        token_mask: `(B, T)`, 1 for real tokens.
    """
    mask = token_mask.float().unsqueeze(-1)  # (B, T, 1); float32 so token counts stay exact under bf16
    squared = (student.float() - teacher.detach().float()) ** 2 * mask
    return squared.sum() / (mask.sum() * student.shape[-1]).clamp_min(1.0)


def _head_average_if_needed(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if student.shape[1] != teacher.shape[1]:
        # Different head counts: compare what each layer attends to on average.
        return student.mean(dim=1, keepdim=True), teacher.mean(dim=1, keepdim=True)
    return student, teacher


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """MSE between attention maps over real query and key positions (head-averaged if head counts differ).

    Args:
        student, teacher: `(B, H, T, T)` attention probabilities (H may differ between them).
        token_mask: `(B, T)`, 1 for real tokens.
    """
    student, teacher = _head_average_if_needed(student.float(), teacher.detach().float())
    pair_mask = (token_mask[:, None, :, None] * token_mask[:, None, None, :]).to(student.dtype)  # (B, 1, T, T)
    squared = (student - teacher) ** 2 * pair_mask
    return squared.sum() / (pair_mask.sum() * student.shape[1]).clamp_min(1.0)


def attention_kl(
    student: torch.Tensor, teacher: torch.Tensor, token_mask: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """KL(teacher row || student row) of each real query's attention over keys, averaged (MiniLM).

    Args:
        student, teacher: `(B, H, T, T)` attention probabilities (rows over keys sum to 1).
        token_mask: `(B, T)`, 1 for real tokens. Padded keys already carry ~0 probability
            (attention masks them); padded queries are excluded here.
    """
    student, teacher = _head_average_if_needed(student.float(), teacher.detach().float())
    pointwise = teacher * (torch.log(teacher + eps) - torch.log(student + eps))  # (B, H, T, T)
    key_mask = token_mask[:, None, None, :].to(student.dtype)
    per_query = (pointwise * key_mask).sum(dim=-1)  # (B, H, T)
    query_mask = token_mask[:, None, :].to(student.dtype)
    return (per_query * query_mask).sum() / (query_mask.sum() * student.shape[1]).clamp_min(1.0)
