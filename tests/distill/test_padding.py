"""QA windows padded per batch: the collator, grouped batches, teacher logits at the batch's width, and losses
and evaluation that come out the same as with every window padded to max_seq_length."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import set_seed

from distill.config import PredictionTrainingConfig, QADataConfig
from distill.data.squad import SquadDataset, parse_squad
from distill.data.synthetic import synthetic_squad
from distill.models.attention import RECORDING_ATTENTION
from distill.models.inference import forward_in_batches
from distill.models.loading import load_model, load_tokenizer
from distill.qa.features import columns, prepare_eval_features
from distill.qa.postprocess import postprocess_qa_predictions
from distill.training import teacher_logits
from distill.training.distillation import PredictionDistillationTrainer, fit_width
from distill.training.features import QACollator, qa_train_dataset
from distill.training.intermediate import HiddenProjections, IntermediateDistillationTrainer, attach_projections
from distill.training.layer_map import uniform_map
from distill.training.trainer import LengthGroupedTrainer, train, training_arguments

MAX_SEQ_LENGTH = 64
SETTINGS = QADataConfig(eval="x.json", max_seq_length=MAX_SEQ_LENGTH, doc_stride=16)
TRAINING = PredictionTrainingConfig(epochs=1, batch_size=4, warmup_ratio=0.0)


def varied_squad() -> SquadDataset:
    """Paragraphs of 1 to 5 facts: windows from ~20 tokens to full, as real SQuAD contexts vary."""
    articles = [
        a for facts in (1, 2, 3, 5) for a in synthetic_squad(articles=1, paragraphs=2, facts=facts, seed=facts)["data"]
    ]
    return parse_squad({"version": "v2.0", "data": articles}, source="mem")


def pad_to(batch: dict[str, torch.Tensor], width: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """The same batch as the old max_length features gave it: every (B, T) column padded on the right to `width`."""
    padded = {}
    for name, values in batch.items():
        if values.dim() == 2:
            value = pad_token_id if name == "input_ids" else 0
            values = torch.nn.functional.pad(values, (0, width - values.shape[1]), value=value)
        padded[name] = values
    return padded


@pytest.fixture(scope="module")
def tokenizer(tiny_qa_model: Path):  # noqa: ANN201
    return load_tokenizer(str(tiny_qa_model))


@pytest.fixture(scope="module")
def features(tokenizer):  # noqa: ANN001, ANN201
    return qa_train_dataset(varied_squad(), tokenizer, SETTINGS, for_distillation=True)


def short_and_long_rows(features) -> list[dict]:  # noqa: ANN001
    """The shortest, a middle and the longest window: three lengths, so the batch pads two rows by different amounts."""
    lengths = [len(ids) for ids in features["input_ids"]]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    picks = [order[0], order[len(order) // 2], order[-1]]
    assert len({lengths[i] for i in picks}) == 3 and lengths[order[-1]] <= MAX_SEQ_LENGTH
    return [features[i] for i in picks]


def test_windows_are_unpadded_with_kd_mask_inside_each_window(features) -> None:  # noqa: ANN001
    lengths = [len(ids) for ids in features["input_ids"]]
    assert min(lengths) < MAX_SEQ_LENGTH // 2 and max(lengths) == MAX_SEQ_LENGTH
    for row in features:
        assert len(row["kd_mask"]) == len(row["input_ids"]) == sum(row["attention_mask"])


def test_collator_pads_kd_mask_with_zero_and_passes_positions_through(tiny_qa_model: Path, features) -> None:  # noqa: ANN001
    # A tokenizer that pads on the left: positions, kd_mask and cached logits index the unpadded window, so the
    # collator must pad on the right anyway.
    left = load_tokenizer(str(tiny_qa_model))
    left.padding_side = "left"
    rows = short_and_long_rows(features)
    batch = QACollator(left)(rows)
    width = max(len(row["input_ids"]) for row in rows)
    assert batch["input_ids"].shape == batch["kd_mask"].shape == (3, width)
    for i, row in enumerate(rows):
        length = len(row["input_ids"])
        assert batch["input_ids"][i, :length].tolist() == row["input_ids"]
        assert (batch["input_ids"][i, length:] == left.pad_token_id).all()
        assert batch["attention_mask"][i].tolist() == [1] * length + [0] * (width - length)
        assert batch["kd_mask"][i].tolist() == row["kd_mask"] + [0] * (width - length)
        assert batch["token_type_ids"][i, :length].tolist() == row["token_type_ids"]
    for name in ("start_positions", "end_positions", "feature_index"):
        assert batch[name].tolist() == [row[name] for row in rows]
    assert all("kd_mask" in row for row in rows)  # the dataset's rows are not changed


def test_training_groups_windows_of_similar_length(tmp_path: Path, tiny_qa_model: Path, tokenizer, features) -> None:  # noqa: ANN001
    args = training_arguments(TRAINING, tmp_path, seed=0, show_progress=False, group_by_length=True)
    assert args.train_sampling_strategy == "group_by_length"
    # Classification keeps random batches: length-sorted batches cost the quickstart's students accuracy.
    assert training_arguments(TRAINING, tmp_path, seed=0, show_progress=False).train_sampling_strategy == "random"
    model, _ = load_model(str(tiny_qa_model), "qa")
    trainer = LengthGroupedTrainer(model=model, args=args, train_dataset=features, data_collator=QACollator(tokenizer))
    trainer.args.remove_unused_columns = False
    grouped = [batch["attention_mask"] for batch in trainer.get_train_dataloader()]
    assert sum(len(mask) for mask in grouped) == len(features)  # every window, once

    def padding_share(masks: list[torch.Tensor]) -> float:
        return 1 - sum(int(mask.sum()) for mask in masks) / sum(mask.numel() for mask in masks)

    shuffled = torch.randperm(len(features), generator=torch.Generator().manual_seed(0)).tolist()
    collator = QACollator(tokenizer)
    random_batches = [
        collator([features[i] for i in shuffled[b : b + 4]])["attention_mask"] for b in range(0, len(shuffled), 4)
    ]
    assert padding_share(grouped) < 0.5 * padding_share(random_batches)


def test_run_resumed_in_a_later_epoch_trains_on_the_same_batches(
    tmp_path: Path, tiny_qa_model: Path, tokenizer, features
) -> None:  # noqa: ANN001
    # The library's LengthGroupedSampler shuffles from the global RNG, which a resumed run reaches in another
    # state after the first epoch: the resumed weights then differ. Shuffled by (seed, epoch), they do not.
    training = PredictionTrainingConfig(
        epochs=2, batch_size=8, learning_rate=1e-3, warmup_ratio=0.0, save_steps=3, save_total_limit=10
    )
    plain = features.remove_columns(["feature_index", "kd_mask"])

    def trained(checkpoints: Path) -> dict[str, torch.Tensor]:
        set_seed(0)
        model, _ = load_model(str(tiny_qa_model), "qa")
        train(
            model,
            plain,
            training,
            checkpoint_dir=checkpoints,
            seed=0,
            data_collator=QACollator(tokenizer),
            group_by_length=True,
        )
        return model.state_dict()

    uninterrupted = trained(tmp_path / "a")
    steps_per_epoch = -(-len(plain) // 8)
    resume_at = next(step for step in range(3, 2 * steps_per_epoch, 3) if step > steps_per_epoch)  # in epoch 2
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / f"checkpoint-{resume_at}", tmp_path / "b" / f"checkpoint-{resume_at}")
    resumed = trained(tmp_path / "b")
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)


def test_cached_teacher_logits_line_up_with_the_batch_width(
    tmp_path: Path, tiny_qa_model: Path, tokenizer, features
) -> None:  # noqa: ANN001
    teacher, _ = load_model(str(tiny_qa_model), "qa")
    collator = QACollator(tokenizer)
    names = ("start_logits", "end_logits")
    cached = teacher_logits.teacher_pass(teacher, features, names, batch_size=5)
    lengths = [len(ids) for ids in features["input_ids"]]
    assert cached["start_logits"].shape == (len(features), max(lengths))  # computed longest first, stored in order
    rows = short_and_long_rows(features)
    batch = collator(rows)
    with torch.inference_mode():
        direct = teacher.eval()(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    trainer = PredictionDistillationTrainer(
        model=teacher,
        args=training_arguments(TRAINING, tmp_path, seed=0, show_progress=False, group_by_length=True),
        task="qa",
        temperature=2.0,
        loss_weight=1.0,
        teacher_logits=cached,
    )
    sliced = trainer._teacher_outputs(batch["feature_index"], batch)
    for name in names:
        assert sliced[name].shape == batch["input_ids"].shape
        for i, row in enumerate(rows):
            length = len(row["input_ids"])
            assert np.allclose(sliced[name][i, :length], direct[name][i, :length], atol=1e-2)  # float16 cache
    # A cache narrower than the batch (logits stored before a wider feature set) is padded, never misaligned.
    narrow = fit_width(np.ones((2, 3), np.float16), 5)
    assert narrow.dtype == np.float32 and narrow.tolist() == [[1, 1, 1, 0, 0]] * 2


@pytest.mark.parametrize("teacher_cache", [True, False])
def test_prediction_distillation_loss_is_the_same_at_any_padding(
    teacher_cache: bool, tmp_path: Path, tiny_qa_model: Path, tokenizer, features
) -> None:  # noqa: ANN001
    student, _ = load_model(str(tiny_qa_model), "qa")
    teacher, _ = load_model(str(tiny_qa_model), "qa")
    torch.manual_seed(0)
    with torch.no_grad():  # a teacher that differs from the student, so the KL term is not zero
        for parameter in teacher.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    collator = QACollator(tokenizer)
    source = {"teacher_model": teacher}
    if teacher_cache:
        cached = teacher_logits.teacher_pass(teacher, features, ("start_logits", "end_logits"), batch_size=8)
        source = {"teacher_logits": cached}
    trainer = PredictionDistillationTrainer(
        model=student,
        args=training_arguments(TRAINING, tmp_path, seed=0, show_progress=False, group_by_length=True),
        task="qa",
        temperature=2.0,
        loss_weight=1.0,
        **source,
    )
    student.eval()  # no dropout: the same forward every time
    rows = short_and_long_rows(features)
    per_batch = collator(rows)
    max_length = pad_to(per_batch, MAX_SEQ_LENGTH + 7, tokenizer.pad_token_id)  # wider than any cached row
    with torch.no_grad():
        loss_per_batch = trainer.compute_loss(student, dict(per_batch)).item()
        loss_max_length = trainer.compute_loss(student, dict(max_length)).item()
        # The reference no padding can touch: each window alone, unpadded (the loss is a mean over windows).
        alone = np.mean([trainer.compute_loss(student, collator([row])).item() for row in rows])
    assert alone > 1e-4
    assert loss_per_batch == pytest.approx(alone, abs=1e-6)
    assert loss_max_length == pytest.approx(alone, abs=1e-6)


@pytest.mark.parametrize("attention_loss", ["mse", "kl"])
def test_intermediate_loss_is_the_same_at_any_padding(
    attention_loss: str, tmp_path: Path, tiny_qa_model: Path, tokenizer, features
) -> None:  # noqa: ANN001
    teacher, _ = load_model(str(tiny_qa_model), "qa", attn_implementation=RECORDING_ATTENTION)
    student, _ = load_model(str(tiny_qa_model), "qa", attn_implementation=RECORDING_ATTENTION)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    pairs = uniform_map(teacher.config.num_hidden_layers, teacher.config.num_hidden_layers)
    width = teacher.config.hidden_size
    attach_projections(student, HiddenProjections(pairs, width, width))
    trainer = IntermediateDistillationTrainer(
        model=student,
        args=training_arguments(TRAINING, tmp_path, seed=0, show_progress=False, group_by_length=True),
        teacher_model=teacher,
        pairs=pairs,
        embedding_weight=1.0,
        hidden_weight=1.0,
        attention_weight=1.0,
        attention_loss=attention_loss,
    )
    student.eval()
    per_batch = QACollator(tokenizer)(short_and_long_rows(features))
    max_length = pad_to(per_batch, MAX_SEQ_LENGTH, tokenizer.pad_token_id)
    with torch.no_grad():
        loss_per_batch = trainer.compute_loss(student, dict(per_batch))
        loss_max_length = trainer.compute_loss(student, dict(max_length))
    assert loss_per_batch.item() > 1e-4
    assert loss_per_batch.item() == pytest.approx(loss_max_length.item(), abs=1e-6)


def test_evaluation_padded_per_batch_answers_as_max_length_padding(tiny_qa_model: Path, tokenizer) -> None:
    model, _ = load_model(str(tiny_qa_model), "qa")
    examples = varied_squad().examples()
    # Windows of 96 tokens are ~half padding here: what per-batch padding skips, and where a slip would show.
    options = {"max_seq_length": 96, "doc_stride": 16}
    padded = prepare_eval_features(columns(examples), tokenizer, pad_to_max_length=True, **options)
    unpadded = prepare_eval_features(columns(examples), tokenizer, **options)
    lengths = np.array([len(ids) for ids in unpadded["input_ids"]])
    assert lengths.min() < 48 and lengths.max() < 96 and len(set(lengths.tolist())) > 3
    names = ("start_logits", "end_logits")
    before = forward_in_batches(model, padded, names, batch_size=8)
    after = forward_in_batches(model, unpadded, names, batch_size=8)  # sorted by length, then put back in order
    real = np.arange(lengths.max())[None, :] < lengths[:, None]
    for name in names:
        assert after[name].shape == (len(lengths), lengths.max())
        assert np.allclose(after[name][real], before[name][:, : lengths.max()][real], atol=1e-5)
        assert np.isneginf(after[name][~real]).all()  # past a window's end: no token, never an answer
    old, new = (
        postprocess_qa_predictions(examples, features, logits["start_logits"], logits["end_logits"])
        for features, logits in ((padded, before), (unpadded, after))
    )
    assert new.best_spans == old.best_spans and any(old.best_spans.values())
    assert new.null_odds.keys() == old.null_odds.keys()
    for question, odds in old.null_odds.items():
        assert new.null_odds[question] == pytest.approx(odds, abs=1e-5)
