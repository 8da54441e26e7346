"""Prediction-layer loss against hand-computed values, masking included."""

from __future__ import annotations

import math

import pytest
import torch

from distill.losses import combine, qa_soft_target_kl, soft_target_kl


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
