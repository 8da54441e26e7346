"""Prediction-layer and attention losses against hand-computed values, masking included."""

from __future__ import annotations

import math

import pytest
import torch

from distill.training.losses import attention_kl, attention_mse, combine, qa_soft_target_kl, soft_target_kl


def kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_kl_by_hand_at_t1_and_t2() -> None:
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    student = torch.zeros(1, 2)
    # T = 1: p_t = (3/4, 1/4), p_s = (1/2, 1/2)
    assert soft_target_kl(student, teacher, 1.0).item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    # T = 2: p_t = softmax(ln3 / 2, 0) = (sqrt3, 1) / (sqrt3 + 1); times T^2 = 4
    root3 = math.sqrt(3.0)
    expected = 4 * kl([root3 / (root3 + 1), 1 / (root3 + 1)], [0.5, 0.5])
    assert soft_target_kl(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_batch_mean_and_zero_for_identical_logits() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    assert soft_target_kl(logits, logits, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    per_row = [kl(softmax(t), softmax(s)) for t, s in zip(logits.tolist(), student.tolist(), strict=True)]
    assert soft_target_kl(student, logits, 1.0).item() == pytest.approx(sum(per_row) / 2, rel=1e-6)


def test_masked_positions_do_not_count() -> None:
    # Position 1 is a question token: huge, disagreeing logits there must change nothing.
    mask = torch.tensor([[True, False, True, True]])
    teacher = torch.tensor([[0.0, 50.0, 1.0, 2.0]])
    student = torch.tensor([[1.0, -50.0, 0.0, 0.0]])
    expected = kl(softmax([0.0, 1.0, 2.0]), softmax([1.0, 0.0, 0.0]))
    assert soft_target_kl(student, teacher, 1.0, mask).item() == pytest.approx(expected, rel=1e-6)
    student_b = student.clone()
    student_b[0, 1] = 123.0
    assert soft_target_kl(student_b, teacher, 1.0, mask).item() == pytest.approx(expected, rel=1e-6)
    assert not torch.isnan(soft_target_kl(student, teacher, 1.0, mask))


def test_qa_averages_start_and_end() -> None:
    mask = torch.tensor([[True, True, False]])  # CLS and one context token; padding masked
    teacher_start, teacher_end = torch.tensor([[0.0, 2.0, 9.0]]), torch.tensor([[1.0, 0.0, 9.0]])
    student = torch.zeros(1, 3)
    start = kl(softmax([0.0, 2.0]), [0.5, 0.5])
    end = kl(softmax([1.0, 0.0]), [0.5, 0.5])
    value = qa_soft_target_kl(student, student, teacher_start, teacher_end, 1.0, mask)
    assert value.item() == pytest.approx((start + end) / 2, rel=1e-6)


def test_gradient_reaches_student_only() -> None:
    student = torch.zeros(2, 3, requires_grad=True)
    teacher = torch.randn(2, 3, requires_grad=True)
    soft_target_kl(student, teacher, 2.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0 and teacher.grad is None


def test_combine_weights() -> None:
    kd, hard = torch.tensor(2.0), torch.tensor(4.0)
    assert combine(kd, hard, 0.75).item() == pytest.approx(0.75 * 2 + 0.25 * 4)
    assert combine(None, hard, 0.0) is hard and combine(kd, None, 1.0) is kd
    with pytest.raises(ValueError, match="needs both"):
        combine(kd, None, 0.5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        soft_target_kl(torch.zeros(1, 2), torch.zeros(1, 2), 0.0)


# --------------------------------------------------------------------------- attention (TinyBERT, MiniLM)


def test_attention_mse_on_scores_leaves_padding_out_of_sum_and_count() -> None:
    mask = torch.tensor([[1, 1, 0]])
    student = torch.zeros(1, 2, 3, 3)
    student[0, 0, 0, 1] = 2.0  # head 0: query 0 -> key 1
    student[0, :, 2, :] = 7.0  # padded query
    student[0, :, :, 2] = -1e4  # padded key (a masked score would be huge; it must not count)
    teacher = torch.zeros(1, 2, 3, 3)
    # One differing real pair of squared error 4, over 2 x 2 real pairs x 2 heads.
    assert attention_mse(student, teacher, mask).item() == pytest.approx(4 / 8)
    # Teacher with 4 heads: compare head means; the student's mean at (q0, k1) is 1.
    teacher4 = torch.zeros(1, 4, 3, 3)
    assert attention_mse(student, teacher4, mask).item() == pytest.approx(1 / 4)


def test_attention_kl_is_over_real_keys_and_averaged_over_real_queries() -> None:
    mask = torch.tensor([[1, 1, 0]])
    teacher = torch.zeros(1, 1, 3, 3)
    teacher[0, 0, 0, 0] = math.log(3.0)  # query 0: p_t = (3/4, 1/4) over the two real keys
    teacher[0, 0, :, 2] = 50.0  # padded key: would take all the mass if it counted
    student = torch.zeros(1, 1, 3, 3)
    student[0, 0, 2, 0] = 9.0  # padded query: ignored
    # Query 0: KL((3/4, 1/4) || (1/2, 1/2)); query 1: 0. Mean over the 2 real queries.
    expected = kl([0.75, 0.25], [0.5, 0.5]) / 2
    assert attention_kl(student, teacher, mask).item() == pytest.approx(expected, rel=1e-6)


def test_attention_kl_with_different_head_counts_compares_head_mixtures() -> None:
    mask = torch.tensor([[1, 1, 0]])
    teacher = torch.zeros(1, 2, 3, 3)
    teacher[0, 0, 0, 0] = math.log(3.0)  # head 0, query 0: (3/4, 1/4); head 1: (1/2, 1/2); mixture (5/8, 3/8)
    student = torch.zeros(1, 1, 3, 3, requires_grad=True)
    loss = attention_kl(student, teacher, mask)
    assert loss.item() == pytest.approx(kl([0.625, 0.375], [0.5, 0.5]) / 2, rel=1e-6)
    loss.backward()
    assert torch.isfinite(student.grad).all(), "padded keys must not turn the gradient into nan"


def test_attention_losses_return_float32_for_bf16_scores() -> None:
    mask = torch.tensor([[1, 1]])
    student = torch.randn(1, 2, 2, 2).to(torch.bfloat16)
    teacher = torch.randn(1, 2, 2, 2).to(torch.bfloat16)
    assert attention_mse(student, teacher, mask).dtype == torch.float32
    assert attention_kl(student, teacher, mask).dtype == torch.float32
