"""Distillation losses as pure functions of tensors.

Prediction layer (Hinton et al., 2015):

    L = w * T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T)) + (1 - w) * CE(hard labels)

The T^2 factor keeps the soft-target gradients on the same scale as the hard-label ones
when T changes. For extractive QA the distributions are over sequence positions, one for
the start and one for the end, averaged; positions outside the context (question tokens,
separators, padding) are masked in both distributions, except CLS, the no-answer slot.
"""

from __future__ import annotations

import math

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


def _pair_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """`(B, 1, T, T)` bool: True where query and key are both real tokens."""
    real = token_mask.bool()
    return real[:, None, :, None] & real[:, None, None, :]


def attention_mse(student_scores: torch.Tensor, teacher_scores: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """TinyBERT's attention loss: MSE between attention scores (pre-softmax QK^T / sqrt(d_head)).

    Averaged over heads and over the (query, key) pairs where both are real tokens; pairs
    touching padding are left out of the sum and of the count (TinyBERT's code zeroes the
    masked entries but still counts them). With different head counts the per-position
    mean over heads is compared.

    Args:
        student_scores: `(B, H_s, T, T)` scores without the padding mask; any float dtype.
        teacher_scores: `(B, H_t, T, T)`, same layout; no gradient flows into it.
        token_mask: `(B, T)`, 1 for real tokens.

    Returns:
        A float32 scalar tensor.
    """
    student, teacher = student_scores.float(), teacher_scores.detach().float()
    if student.shape[1] != teacher.shape[1]:  # different head counts: compare what each layer scores on average
        student, teacher = student.mean(dim=1, keepdim=True), teacher.mean(dim=1, keepdim=True)
    pairs = _pair_mask(token_mask)
    squared = torch.where(pairs, (student - teacher) ** 2, 0.0)
    return squared.sum() / (pairs.sum() * student.shape[1]).clamp_min(1)


def _head_mixture_log_probs(scores: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """log of the mean over heads of softmax(scores) over real keys: `(B, H, T, T)` -> `(B, 1, T, T)`."""
    # A finite floor, not -inf: logsumexp over all -inf entries has a nan gradient, even where it is multiplied by 0.
    log_probs = torch.log_softmax(scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min), dim=-1)
    return torch.logsumexp(log_probs, dim=1, keepdim=True) - math.log(scores.shape[1])


def attention_kl(student_scores: torch.Tensor, teacher_scores: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """MiniLM's attention loss: KL(teacher || student) between attention distributions.

    Each real query's distribution is softmax(scores) over the real keys: the attention
    probabilities before dropout, computed here in float32 from the scores. The KL is summed
    over keys and averaged over real queries and heads. With different head counts the
    distributions are averaged over heads first.

    Args:
        student_scores: `(B, H_s, T, T)` pre-softmax scores without the padding mask; any float dtype.
        teacher_scores: `(B, H_t, T, T)`, same layout; no gradient flows into it.
        token_mask: `(B, T)`, 1 for real tokens.

    Returns:
        A float32 scalar tensor.
    """
    student, teacher = student_scores.float(), teacher_scores.detach().float()
    real = token_mask.bool()
    key_mask = real[:, None, None, :]  # (B, 1, 1, T)
    if student.shape[1] != teacher.shape[1]:
        student, teacher = _head_mixture_log_probs(student, key_mask), _head_mixture_log_probs(teacher, key_mask)
    batch, heads, length, _ = student.shape
    rows = real[:, None, :].expand(batch, heads, length)  # real queries of every head
    if not rows.any():
        return student.sum() * 0.0
    keys = key_mask.expand(batch, heads, length, length)[rows]  # (N, T)
    return soft_target_kl(student[rows], teacher[rows], temperature=1.0, mask=keys)
