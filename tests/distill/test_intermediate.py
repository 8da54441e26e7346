"""TinyBERT intermediate-layer distillation: loss terms by hand, projections that learn, fresh students."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import default_data_collator, set_seed

from distill.config import FreshStudentConfig, IntermediateTrainingConfig, QADataConfig, StudentConfig
from distill.data.squad import parse_squad
from distill.layer_map import uniform_map
from distill.losses import attention_kl, attention_mse, masked_mse
from distill.models.loading import load_model, load_tokenizer
from distill.models.student import build_student, num_layers
from distill.synthetic import synthetic_squad
from distill.training.features import qa_train_dataset
from distill.training.intermediate import (
    PROJECTIONS,
    HiddenProjections,
    IntermediateDistillationTrainer,
    attach_projections,
    detach_projections,
)
from distill.training.trainer import train


def test_masked_mse_by_hand() -> None:
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])  # (B=1, T=3, D=2); token 2 is padding
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 4.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # squared errors on real tokens: (0, 4) and (9, 0) -> 13 over 2 tokens x 2 dims
    assert masked_mse(student, teacher, mask).item() == pytest.approx(13 / 4)


def test_attention_mse_masks_padding_and_averages_heads() -> None:
    mask = torch.tensor([[1, 1, 0]])
    student = torch.zeros(1, 2, 3, 3)
    student[0, 0, 0, 1] = 1.0  # head 0: query 0 -> key 1
    student[0, :, 2, :] = 7.0  # padded query: ignored
    teacher = torch.zeros(1, 2, 3, 3)
    # Same head count: one differing real pair (q0,k1) of value 1 over 4 real pairs x 2 heads.
    assert attention_mse(student, teacher, mask).item() == pytest.approx(1 / 8)
    # Teacher with 4 heads: compare head averages; the student's average at (q0,k1) is 0.5.
    teacher4 = torch.zeros(1, 4, 3, 3)
    assert attention_mse(student, teacher4, mask).item() == pytest.approx(0.25 / 4)


def test_attention_kl_by_hand() -> None:
    mask = torch.tensor([[1, 1]])
    teacher = torch.tensor([[[[0.75, 0.25], [0.5, 0.5]]]])  # (B=1, H=1, T=2, T=2)
    student = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]])
    import math

    row0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert attention_kl(student, teacher, mask).item() == pytest.approx(row0 / 2, rel=1e-5)


def test_projection_maps_widths_and_identity_when_equal() -> None:
    pairs = uniform_map(2, 4)
    narrow = HiddenProjections(pairs, 16, 32)
    assert narrow(torch.zeros(1, 3, 16), (1, 2)).shape == (1, 3, 32)
    same = HiddenProjections(pairs, 32, 32)
    x = torch.randn(1, 3, 32)
    assert torch.equal(same(x, (0, 0)), x) and sum(p.numel() for p in same.parameters()) == 0


def test_fresh_student_is_narrower_and_uses_the_teacher_vocabulary(tiny_qa_model: Path) -> None:
    spec = StudentConfig(fresh=FreshStudentConfig(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32))
    student, tokenizer, name = build_student(spec, str(tiny_qa_model), "qa", attn_implementation="eager")
    teacher, _ = load_model(str(tiny_qa_model), "qa")
    assert num_layers(student) == 1 and student.config.hidden_size == 16 < teacher.config.hidden_size
    assert student.config.vocab_size == teacher.config.vocab_size
    assert tokenizer.get_vocab() == load_tokenizer(str(tiny_qa_model)).get_vocab()
    batch = tokenizer(["where?"], ["the fox lives in the cave ."], return_tensors="pt")
    assert student.base_model(**batch, output_attentions=True).attentions[0].shape[1] == 2  # eager gives maps


def test_projections_learn_and_are_checkpointed(tiny_qa_model: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_qa_model))
    teacher, _ = load_model(str(tiny_qa_model), "qa", attn_implementation="eager")
    set_seed(0)
    spec = StudentConfig(fresh=FreshStudentConfig(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32))
    student, _, _ = build_student(spec, str(tiny_qa_model), "qa", attn_implementation="eager")
    pairs = uniform_map(1, 2)
    projections = HiddenProjections(pairs, 16, teacher.config.hidden_size)
    attach_projections(student, projections)
    before = {k: v.clone() for k, v in projections.state_dict().items()}
    squad = parse_squad(synthetic_squad(articles=2, paragraphs=2, facts=3, seed=4), source="mem")
    features = qa_train_dataset(squad, tokenizer, QADataConfig(eval="x.json", max_seq_length=64, doc_stride=16))
    training = IntermediateTrainingConfig(
        epochs=1, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0, save_steps=2, logging_steps=1
    )
    logged: list[dict] = []

    class Capture(__import__("transformers").TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
            logged.append(dict(logs or {}))

    summary = train(
        student,
        features,
        training,
        checkpoint_dir=tmp_path,
        seed=0,
        data_collator=default_data_collator,
        trainer_class=IntermediateDistillationTrainer,
        callbacks=[Capture()],
        trainer_kwargs={
            "teacher_model": teacher,
            "pairs": pairs,
            "embedding_weight": 1.0,
            "hidden_weight": 1.0,
            "attention_weight": 1.0,
            "attention_loss": "mse",
        },
    )
    assert summary.global_step >= 2
    after = projections.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before), "projection weights did not train"
    assert all(p.grad is None or True for p in projections.parameters())
    assert {"embedding_loss", "hidden_loss", "attention_loss"} <= set(next(log for log in logged if "loss" in log))
    assert all(not p.requires_grad for p in teacher.parameters())
    checkpoint = sorted(tmp_path.glob("checkpoint-*"))[-1]
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as weights:
        assert any(key.startswith(PROJECTIONS) for key in weights.keys()), "a resumed run would lose the projections"
    assert detach_projections(student) is projections and not hasattr(student, PROJECTIONS)
