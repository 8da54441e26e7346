"""Distillation training: w = 0 is plain fine-tuning exactly, teacher logits cached once, vocab preflight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import DataCollatorWithPadding, set_seed

from distill.config import ClassificationDataConfig, PredictionTrainingConfig, QADataConfig, StudentConfig
from distill.data.classification import ClassificationDataset
from distill.data.squad import parse_squad
from distill.data.synthetic import synthetic_sentiment, synthetic_squad
from distill.errors import DistillError, ModelError
from distill.models.loading import load_model, load_tokenizer
from distill.models.student import build_student, check_same_vocabulary, select_layers
from distill.models.tiny import build_tiny_bert
from distill.stages.prediction import check_teacher_quality
from distill.training import teacher_logits
from distill.training.distillation import PredictionDistillationTrainer
from distill.training.features import QACollator, classification_train_dataset, qa_train_dataset
from distill.training.trainer import train

TRAINING = PredictionTrainingConfig(epochs=1, batch_size=8, learning_rate=1e-3, warmup_ratio=0.0, save_steps=1000)


def sentiment_features(tokenizer):  # noqa: ANN001, ANN201
    rows = synthetic_sentiment(rows=48, seed=5)
    data = ClassificationDataset([r["sentence"] for r in rows], [r["label"] for r in rows], "mem")
    settings = ClassificationDataConfig(eval="x.tsv")
    return classification_train_dataset(data, tokenizer, settings, ["0", "1"], for_distillation=True)


def qa_features(tokenizer):  # noqa: ANN001, ANN201
    squad = parse_squad(synthetic_squad(articles=2, paragraphs=2, facts=4, seed=3), source="mem")
    return qa_train_dataset(
        squad, tokenizer, QADataConfig(eval="x.json", max_seq_length=48, doc_stride=16), for_distillation=True
    )


def trained_weights(model_dir: Path, head: str, features, collator, tmp: Path, **distill):  # noqa: ANN001, ANN003, ANN201
    set_seed(0)
    model, _ = load_model(str(model_dir), head)
    if distill:
        train(
            model,
            features,
            TRAINING,
            checkpoint_dir=tmp,
            seed=0,
            data_collator=collator,
            trainer_class=PredictionDistillationTrainer,
            trainer_kwargs=distill,
            keep_extra_columns=True,
        )
    else:
        plain = features.remove_columns([c for c in ("feature_index", "kd_mask") if c in features.column_names])
        train(model, plain, TRAINING, checkpoint_dir=tmp, seed=0, data_collator=collator)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("task", ["classification", "qa"])
def test_weight_zero_is_plain_fine_tuning_exactly(
    task: str, tiny_classifier: Path, tiny_qa_model: Path, tmp_path: Path
) -> None:
    model_dir = tiny_classifier if task == "classification" else tiny_qa_model
    tokenizer = load_tokenizer(str(model_dir))
    if task == "classification":
        features, collator = sentiment_features(tokenizer), DataCollatorWithPadding(tokenizer)
        fake = {"logits": np.random.default_rng(0).normal(size=(len(features), 2)).astype(np.float16)}
    else:
        features, collator = qa_features(tokenizer), QACollator(tokenizer)
        shape = (len(features), max(len(ids) for ids in features["input_ids"]))
        fake = {"start_logits": np.ones(shape, np.float16), "end_logits": np.ones(shape, np.float16)}
    plain = trained_weights(model_dir, task, features, collator, tmp_path / "a")
    distilled = trained_weights(
        model_dir,
        task,
        features,
        collator,
        tmp_path / "b",
        task=task,
        temperature=2.0,
        loss_weight=0.0,
        teacher_logits=fake,
    )
    assert plain.keys() == distilled.keys()
    assert all(torch.equal(plain[name], distilled[name]) for name in plain)
    # And distillation with w > 0 really changes the result.
    soft = trained_weights(
        model_dir,
        task,
        features,
        collator,
        tmp_path / "c",
        task=task,
        temperature=2.0,
        loss_weight=0.75,
        teacher_logits=fake,
    )
    assert not all(torch.equal(plain[name], soft[name]) for name in plain)


def test_teacher_logits_computed_once_then_memory_mapped(tiny_classifier: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_classifier))
    features = sentiment_features(tokenizer)
    teacher, _ = load_model(str(tiny_classifier), "classification")
    calls = []

    def compute():  # noqa: ANN202
        calls.append(1)
        return teacher_logits.teacher_pass(teacher, features, ("logits",), batch_size=16)

    first, folder, seconds = teacher_logits.load_or_compute(tmp_path, "manifest-sha", features, compute)
    again, folder_again, seconds_again = teacher_logits.load_or_compute(tmp_path, "manifest-sha", features, compute)
    assert calls == [1] and folder == folder_again and seconds > 0 and seconds_again == 0
    assert isinstance(again["logits"], np.memmap) and again["logits"].dtype == np.float16
    assert again["logits"].shape == (len(features), 2)
    with torch.inference_mode():
        batch = DataCollatorWithPadding(tokenizer)(
            [{k: features[3][k] for k in ("input_ids", "attention_mask", "token_type_ids")}]
        )
        direct = teacher.eval()(**batch).logits.numpy()[0]
    assert np.allclose(again["logits"][3], direct, atol=1e-2)
    # Another teacher (different manifest) gets its own logits; hub ids with '/' and shared prefixes too.
    teacher_logits.load_or_compute(tmp_path, "other-teacher", features, compute)
    _, hub_a, _ = teacher_logits.load_or_compute(tmp_path, "hub:bert-large-uncased", features, compute)
    _, hub_b, _ = teacher_logits.load_or_compute(tmp_path, "hub:bert-large-uncased-whole-word", features, compute)
    assert calls == [1, 1, 1, 1] and hub_a != hub_b and hub_a.parent == tmp_path
    # The same teacher run in bf16 gives other logits: a folder of its own, never the fp32 one.
    _, bf16, _ = teacher_logits.load_or_compute(tmp_path, "manifest-sha", features, compute, precision="bf16")
    assert calls == [1, 1, 1, 1, 1] and bf16 != folder


def test_per_step_teacher_trains(tiny_classifier: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_classifier))
    teacher, _ = load_model(str(tiny_classifier), "classification")
    student, _ = load_model(str(tiny_classifier), "classification")
    select_layers(student, [0])
    summary = train(
        student,
        sentiment_features(tokenizer),
        TRAINING,
        checkpoint_dir=tmp_path,
        seed=0,
        data_collator=DataCollatorWithPadding(tokenizer),
        trainer_class=PredictionDistillationTrainer,
        trainer_kwargs={"task": "classification", "temperature": 2.0, "loss_weight": 1.0, "teacher_model": teacher},
        keep_extra_columns=True,
    )
    assert summary.global_step == 6 and np.isfinite(summary.train_loss)
    assert all(not p.requires_grad for p in teacher.parameters())


def test_all_layers_kept_reproduces_the_teacher(tiny_qa_model: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_qa_model))
    teacher, _ = load_model(str(tiny_qa_model), "qa")
    student, student_tokenizer, name = build_student(StudentConfig(layers=[0, 1]), str(tiny_qa_model), "qa")
    batch = tokenizer(["where does the fox live?"], ["the red fox lives in the cave."], return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(teacher.eval()(**batch).start_logits, student.eval()(**batch).start_logits)
    smaller, _, _ = build_student(StudentConfig(layers=[1]), str(tiny_qa_model), "qa")
    assert smaller.config.num_hidden_layers == 1
    assert sum(p.numel() for p in smaller.parameters()) < sum(p.numel() for p in teacher.parameters())
    with pytest.raises(ModelError, match=r"has 2 layers \(0..1\), so \[5\] cannot be kept"):
        build_student(StudentConfig(layers=[0, 5]), str(tiny_qa_model), "qa")


def test_vocabulary_mismatch_fails_before_training(tiny_qa_model: Path, tmp_path: Path) -> None:
    other = build_tiny_bert(tmp_path / "other", task="qa", words=["completely", "different", "words"])
    with pytest.raises(ModelError, match=r"teacher '.*' and student '.*other' have different vocabularies"):
        check_same_vocabulary(
            str(tiny_qa_model), load_tokenizer(str(tiny_qa_model)), str(other), load_tokenizer(str(other))
        )


def test_weak_teacher_is_refused() -> None:
    check_teacher_quality("dev accuracy", 0.9, 0.6, "t")
    check_teacher_quality("dev accuracy", None, None, "t")
    with pytest.raises(DistillError, match="teacher 't' has dev accuracy 0.51, below min_teacher_metric 0.6"):
        check_teacher_quality("dev accuracy", 0.51, 0.6, "t")
