"""TinyBERT intermediate-layer distillation: the trainer's terms against a plain implementation of the papers'
equations, dropout kept out of the attention loss, the counting rule, projections that learn, fresh students."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import BertConfig, BertModel, TrainingArguments, set_seed

from distill.config import FreshStudentConfig, IntermediateTrainingConfig, QADataConfig, StudentConfig
from distill.data.squad import parse_squad
from distill.data.synthetic import synthetic_squad
from distill.models.attention import RECORDING_ATTENTION, recorded_attention_scores
from distill.models.loading import load_model, load_tokenizer
from distill.models.student import build_student, num_layers
from distill.training.features import QACollator, qa_train_dataset
from distill.training.intermediate import (
    PROJECTIONS,
    HiddenProjections,
    IntermediateDistillationTrainer,
    attach_projections,
    detach_projections,
)
from distill.training.layer_map import uniform_map
from distill.training.losses import masked_mse
from distill.training.trainer import train


def test_masked_mse_by_hand() -> None:
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])  # (B=1, T=3, D=2); token 2 is padding
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 4.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # squared errors on real tokens: (0, 4) and (9, 0) -> 13 over 2 tokens x 2 dims
    assert masked_mse(student, teacher, mask).item() == pytest.approx(13 / 4)


def test_projection_maps_widths_and_identity_when_equal() -> None:
    pairs = uniform_map(2, 4)
    narrow = HiddenProjections(pairs, 16, 32)
    assert narrow(torch.zeros(1, 3, 16), (1, 2)).shape == (1, 3, 32)
    same = HiddenProjections(pairs, 32, 32)
    x = torch.randn(1, 3, 32)
    assert torch.equal(same(x, (0, 0)), x) and sum(p.numel() for p in same.parameters()) == 0


def test_fresh_student_is_narrower_and_uses_the_teacher_vocabulary(tiny_qa_model: Path) -> None:
    spec = StudentConfig(fresh=FreshStudentConfig(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32))
    student, tokenizer, name = build_student(spec, str(tiny_qa_model), "qa", attn_implementation=RECORDING_ATTENTION)
    teacher, _ = load_model(str(tiny_qa_model), "qa")
    assert num_layers(student) == 1 and student.config.hidden_size == 16 < teacher.config.hidden_size
    assert student.config.vocab_size == teacher.config.vocab_size
    assert tokenizer.get_vocab() == load_tokenizer(str(tiny_qa_model)).get_vocab()
    batch = tokenizer(["where?"], ["the fox lives in the cave ."], return_tensors="pt")
    with recorded_attention_scores() as scores:
        student.base_model(**batch)
    assert len(scores) == 1 and scores[0].shape[1] == 2  # the student's own 2 heads


def test_projections_learn_and_are_checkpointed(tiny_qa_model: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_qa_model))
    teacher, _ = load_model(str(tiny_qa_model), "qa", attn_implementation=RECORDING_ATTENTION)
    set_seed(0)
    spec = StudentConfig(fresh=FreshStudentConfig(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32))
    student, _, _ = build_student(spec, str(tiny_qa_model), "qa", attn_implementation=RECORDING_ATTENTION)
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
        data_collator=QACollator(tokenizer),
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


# --------------------------------------------------------------------------- the trainer against the papers


def tiny_bert(layers: int, width: int, heads: int, *, seed: int, hidden_dropout: float = 0.1) -> BertModel:
    config = BertConfig(
        vocab_size=40,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * width,
        hidden_dropout_prob=hidden_dropout,
        attention_probs_dropout_prob=0.5,  # large, so a loss on post-dropout maps would be far off
        initializer_range=0.2,  # scores of order 1 (BERT's 0.02 makes every score ~0 and every map uniform)
    )
    torch.manual_seed(seed)
    return BertModel._from_config(config, attn_implementation=RECORDING_ATTENTION)


def padded_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    input_ids = torch.randint(5, 40, (3, 9), generator=generator)
    attention_mask = torch.ones(3, 9, dtype=torch.long)
    attention_mask[1, 6:] = 0
    attention_mask[2, 3:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def intermediate_trainer(
    student: BertModel, teacher: BertModel, pairs: list, attention_loss: str, tmp_path: Path, **weights: float
) -> IntermediateDistillationTrainer:
    attach_projections(student, HiddenProjections(pairs, student.config.hidden_size, teacher.config.hidden_size))
    return IntermediateDistillationTrainer(
        model=student,
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        teacher_model=teacher,
        pairs=pairs,
        embedding_weight=weights.get("embedding_weight", 1.0),
        hidden_weight=weights.get("hidden_weight", 1.0),
        attention_weight=weights.get("attention_weight", 1.0),
        attention_loss=attention_loss,
    )


def reference_scores(layer: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """TinyBERT's A = Q K^T / sqrt(d_head) per head, from the hidden states `(T, D)` entering `layer`: `(H, T, T)`."""
    attention = layer.attention.self
    heads, d_head = attention.num_attention_heads, attention.attention_head_size
    x = hidden.double()
    query = x @ attention.query.weight.double().T + attention.query.bias.double()  # (T, H * d)
    key = x @ attention.key.weight.double().T + attention.key.bias.double()
    query = query.view(-1, heads, d_head).transpose(0, 1)  # (H, T, d)
    key = key.view(-1, heads, d_head).transpose(0, 1)
    return query @ key.transpose(1, 2) / d_head**0.5


@torch.no_grad()
def reference_terms(
    student: BertModel,
    student_hidden: tuple[torch.Tensor, ...],
    teacher: BertModel,
    inputs: dict[str, torch.Tensor],
    pairs: list,
    attention_loss: str,
) -> dict[str, float]:
    """The three terms, example by example on the real tokens only, in float64 (padding is at the end)."""
    teacher_hidden = teacher(**inputs, output_hidden_states=True).hidden_states
    projections = getattr(student, PROJECTIONS)
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    # TinyBERT's E^S: the student's embedding output, LayerNorm(word + position + segment), before any dropout.
    embeddings = student.embeddings
    ids = inputs["input_ids"]
    positions = torch.arange(ids.shape[1])[None, :]
    embedded = embeddings.LayerNorm(
        embeddings.word_embeddings(ids)
        + embeddings.position_embeddings(positions)
        + embeddings.token_type_embeddings(torch.zeros_like(ids))
    )
    # The loss sees that clean output; layer 1 still takes the (dropped-out) one it ran on.
    compared = (embedded, *student_hidden[1:])

    def hidden_mse(s: int, t: int) -> float:
        total, count = 0.0, 0
        for b, n in enumerate(lengths):
            projected = projections(compared[s][b, :n], (s, t)).double()
            total += float(((projected - teacher_hidden[t][b, :n].double()) ** 2).sum())
            count += n * projected.shape[-1]
        return total / count

    def attention(s: int, t: int) -> float:
        total, count = 0.0, 0
        for b, n in enumerate(lengths):
            a_s = reference_scores(student.encoder.layer[s - 1], student_hidden[s - 1][b, :n])  # (H_s, n, n)
            a_t = reference_scores(teacher.encoder.layer[t - 1], teacher_hidden[t - 1][b, :n])
            if attention_loss == "mse":
                if a_s.shape[0] != a_t.shape[0]:
                    a_s, a_t = a_s.mean(0, keepdim=True), a_t.mean(0, keepdim=True)
                total += float(((a_s - a_t) ** 2).sum())
                count += a_s.numel()
            else:  # KL(teacher || student) per real query, keys over the real tokens
                p_s, p_t = torch.softmax(a_s, dim=-1), torch.softmax(a_t, dim=-1)
                if p_s.shape[0] != p_t.shape[0]:
                    p_s, p_t = p_s.mean(0, keepdim=True), p_t.mean(0, keepdim=True)
                total += float((p_t * (p_t.log() - p_s.log())).sum())
                count += p_s.shape[0] * n
        return total / count

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    return {
        "embedding_loss": mean([hidden_mse(s, t) for s, t in pairs if s == 0]),
        "hidden_loss": mean([hidden_mse(s, t) for s, t in pairs if s > 0]),
        "attention_loss": mean([attention(s, t) for s, t in pairs if s > 0 and t > 0]),
    }


@pytest.mark.parametrize("attention_loss", ["mse", "kl"])
@pytest.mark.parametrize("teacher_heads", [4, 6], ids=["same-heads", "head-average"])
def test_terms_match_the_papers_equations_with_the_student_in_train_mode(
    attention_loss: str, teacher_heads: int, tmp_path: Path
) -> None:
    student = tiny_bert(2, 32, 4, seed=0).train()  # dropout on, attention dropout 0.5
    teacher = tiny_bert(4, 48, teacher_heads, seed=1)
    pairs = uniform_map(2, 4)
    trainer = intermediate_trainer(student, teacher, pairs, attention_loss, tmp_path)
    inputs = padded_batch()
    terms, outputs = trainer.loss_terms(student, inputs)
    # The reference reads the hidden states of the same forward pass: the ones that entered each layer.
    expected = reference_terms(student, outputs.hidden_states, teacher, inputs, pairs, attention_loss)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-6, abs=1e-6), name
    assert terms["attention_loss"].item() > 0.01  # a real comparison, not a vanishing one


@pytest.mark.parametrize("attention_loss", ["mse", "kl"])
def test_a_copy_of_the_teacher_in_train_mode_has_zero_attention_loss(attention_loss: str, tmp_path: Path) -> None:
    # Attention dropout 0.5 but no hidden dropout: layer 1 sees exactly the teacher's input, so its scores and
    # distributions match exactly. Maps taken after dropout (half the entries zeroed, the rest doubled) would not.
    teacher = tiny_bert(1, 32, 4, seed=0, hidden_dropout=0.0)
    student = copy.deepcopy(teacher).train()
    trainer = intermediate_trainer(student, teacher, [(0, 0), (1, 1)], attention_loss, tmp_path)
    inputs = padded_batch()
    terms, _ = trainer.loss_terms(student, inputs)
    assert terms["embedding_loss"].item() == 0.0
    assert terms["attention_loss"].item() == 0.0
    # The same forward's post-dropout maps, what `output_attentions` returns, are far from the teacher's.
    torch.manual_seed(0)
    post_dropout = student(**inputs, output_attentions=True).attentions[0]
    with torch.no_grad():
        clean = teacher(**inputs, output_attentions=True).attentions[0]
    assert (post_dropout - clean).abs().max() > 0.1


def test_a_copy_of_the_teacher_in_train_mode_has_zero_embedding_loss(tmp_path: Path) -> None:
    # Hidden dropout 0.5: the embedding output after dropout is far from the teacher's; before it, equal.
    teacher = tiny_bert(1, 32, 4, seed=0, hidden_dropout=0.5)
    student = copy.deepcopy(teacher).train()
    trainer = intermediate_trainer(student, teacher, [(0, 0), (1, 1)], "mse", tmp_path)
    terms, outputs = trainer.loss_terms(student, padded_batch())
    assert terms["embedding_loss"].item() == 0.0
    assert terms["hidden_loss"].item() > 0.0  # the layer itself runs on dropped-out input, as in training


def test_pairs_onto_the_embedding_output_add_no_attention_term(tmp_path: Path) -> None:
    student = tiny_bert(2, 32, 4, seed=0).eval()
    teacher = tiny_bert(2, 32, 4, seed=1)
    pairs = [(0, 0), (1, 0), (2, 2)]  # student layer 1 learns the teacher's embedding output: no attention there
    trainer = intermediate_trainer(student, teacher, pairs, "mse", tmp_path)
    inputs = padded_batch()
    terms, outputs = trainer.loss_terms(student, inputs)
    expected = reference_terms(student, outputs.hidden_states, teacher, inputs, pairs, "mse")
    only_pair = reference_terms(student, outputs.hidden_states, teacher, inputs, [(2, 2)], "mse")
    assert expected["attention_loss"] == only_pair["attention_loss"]  # (2, 2) alone, not halved by (1, 0)
    assert terms["attention_loss"].item() == pytest.approx(only_pair["attention_loss"], rel=1e-6, abs=1e-6)
    hidden = [reference_terms(student, outputs.hidden_states, teacher, inputs, [p], "mse") for p in pairs[1:]]
    assert terms["hidden_loss"].item() == pytest.approx(
        (hidden[0]["hidden_loss"] + hidden[1]["hidden_loss"]) / 2, rel=1e-6, abs=1e-6
    )


def test_attention_loss_trains_the_student_only_and_needs_the_recording_attention(tmp_path: Path) -> None:
    student = tiny_bert(2, 32, 4, seed=0).train()
    teacher = tiny_bert(2, 32, 4, seed=1)
    trainer = intermediate_trainer(
        student, teacher, uniform_map(2, 2), "kl", tmp_path, embedding_weight=0.0, hidden_weight=0.0
    )
    trainer.compute_loss(student, padded_batch()).backward()
    assert student.encoder.layer[1].attention.self.key.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    eager_teacher = BertModel._from_config(teacher.config, attn_implementation="eager")
    with pytest.raises(ValueError, match="teacher loaded with attn_implementation"):
        intermediate_trainer(tiny_bert(2, 32, 4, seed=0), eager_teacher, uniform_map(2, 2), "mse", tmp_path)


def test_embeddings_projected_after_their_dropout_keep_the_reported_embedding_output(tmp_path: Path) -> None:
    # ELECTRA with embedding_size < hidden_size projects the embeddings after their dropout: what enters the
    # dropout is not the embedding output the model reports (another width), so the term falls back to it.
    from transformers import ElectraConfig, ElectraModel

    config = ElectraConfig(
        vocab_size=40, embedding_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=64,
    )  # fmt: skip
    torch.manual_seed(0)
    student = ElectraModel._from_config(config, attn_implementation=RECORDING_ATTENTION).train()
    teacher = ElectraModel._from_config(config, attn_implementation=RECORDING_ATTENTION)
    trainer = intermediate_trainer(student, teacher, [(0, 0), (1, 1)], "mse", tmp_path)
    inputs = padded_batch()
    terms, outputs = trainer.loss_terms(student, inputs)
    expected = masked_mse(
        getattr(student, PROJECTIONS)(outputs.hidden_states[0], (0, 0)),
        teacher(**inputs, output_hidden_states=True).hidden_states[0],
        inputs["attention_mask"],
    )
    assert terms["embedding_loss"].item() == pytest.approx(expected.item(), rel=1e-6)
