"""The recording attention: eager's outputs exactly, plus pre-softmax, pre-dropout scores with gradients."""

from __future__ import annotations

import math

import torch
from transformers import BertConfig, BertForSequenceClassification

from distill.config import IntermediateLayerConfig
from distill.models.attention import RECORDING_ATTENTION, recorded_attention_scores
from distill.stages.intermediate import attention_implementation
from distill.training.losses import attention_kl, attention_mse

CONFIG = BertConfig(
    vocab_size=40,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    attention_probs_dropout_prob=0.5,  # large, so any map that went through it would show
)


def pair_of_models() -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same random weights with eager attention and with the recording one."""
    torch.manual_seed(0)
    eager = BertForSequenceClassification._from_config(CONFIG, attn_implementation="eager")
    recording = BertForSequenceClassification._from_config(CONFIG, attn_implementation=RECORDING_ATTENTION)
    recording.load_state_dict(eager.state_dict())
    return eager, recording


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, CONFIG.vocab_size, (2, 7), generator=generator)
    attention_mask = torch.ones(2, 7, dtype=torch.long)
    attention_mask[1, 4:] = 0  # the second sequence is padded
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def test_outputs_equal_eager_in_eval_and_with_the_same_dropout_in_train_mode() -> None:
    eager, recording = pair_of_models()
    inputs = batch()
    eager.eval(), recording.eval()
    with recorded_attention_scores():
        recorded_logits = recording(**inputs).logits
    assert torch.equal(recorded_logits, eager(**inputs).logits)
    eager.train(), recording.train()
    torch.manual_seed(5)
    eager_logits = eager(**inputs).logits
    torch.manual_seed(5)
    assert torch.equal(recording(**inputs).logits, eager_logits), "dropout on the output path must stay eager's"


def test_records_pre_softmax_scores_of_each_layer_with_gradients() -> None:
    eager, recording = pair_of_models()
    inputs = batch()
    recording.train()  # attention dropout 0.5 is on: the scores must not see it
    with recorded_attention_scores() as scores:
        outputs = recording.bert(**inputs, output_hidden_states=True)
    assert len(scores) == CONFIG.num_hidden_layers and scores[0].shape == (2, 4, 7, 7)
    for index, layer in enumerate(recording.bert.encoder.layer):
        attention = layer.attention.self
        hidden = outputs.hidden_states[index]  # what enters the layer
        query = attention.query(hidden).view(2, 7, 4, 8).transpose(1, 2)
        key = attention.key(hidden).view(2, 7, 4, 8).transpose(1, 2)
        torch.testing.assert_close(scores[index], query @ key.transpose(-1, -2) / math.sqrt(8))
    assert all(s.requires_grad for s in scores)
    scores[1].sum().backward()
    assert recording.bert.encoder.layer[1].attention.self.query.weight.grad.abs().sum() > 0


def test_softmax_of_scores_is_the_pre_dropout_attention() -> None:
    eager, recording = pair_of_models()
    inputs = batch()
    eager.eval(), recording.eval()  # in eval mode eager's returned maps are its pre-dropout ones
    maps = eager.bert(**inputs, output_attentions=True).attentions
    with recorded_attention_scores() as scores:
        recording.bert(**inputs)
    padding = (1 - inputs["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    for recorded, attention_map in zip(scores, maps, strict=True):
        torch.testing.assert_close(torch.softmax(recorded + padding, dim=-1), attention_map)


def test_nothing_is_recorded_outside_the_context_and_contexts_do_not_mix() -> None:
    _, recording = pair_of_models()
    inputs = batch()
    with recorded_attention_scores() as outer:
        with recorded_attention_scores() as inner:
            recording.bert(**inputs)
        recording.bert(**inputs)
    recording.bert(**inputs)
    assert len(inner) == len(outer) == CONFIG.num_hidden_layers


def test_only_the_attention_loss_uses_the_recording_attention() -> None:
    assert attention_implementation(IntermediateLayerConfig()) == RECORDING_ATTENTION
    assert attention_implementation(IntermediateLayerConfig(attention_weight=0.0)) is None  # default SDPA


def test_under_bf16_autocast_outputs_stay_eager_and_the_losses_get_float32() -> None:
    eager, recording = pair_of_models()
    inputs = batch()
    eager.eval(), recording.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with recorded_attention_scores() as scores:
            recorded_logits = recording(**inputs).logits
        eager_logits = eager(**inputs).logits
    assert torch.equal(recorded_logits, eager_logits)
    assert scores[0].dtype == torch.bfloat16  # what the matmul ran in
    mask = inputs["attention_mask"]
    assert attention_mse(scores[0], scores[1], mask).dtype == torch.float32
    assert attention_kl(scores[0], scores[1], mask).dtype == torch.float32


def test_only_the_kept_layers_hold_scores() -> None:
    _, recording = pair_of_models()
    recording.eval()  # no dropout: both forwards compute the same scores
    inputs = batch()
    with recorded_attention_scores() as every:
        recording.bert(**inputs)
    with recorded_attention_scores(keep={1}) as kept:
        recording.bert(**inputs)
    # One entry per layer either way (the trainer checks the count), but only layer 1's scores are held.
    assert len(kept) == len(every) == CONFIG.num_hidden_layers
    assert [score is not None for score in kept] == [index == 1 for index in range(CONFIG.num_hidden_layers)]
    assert torch.equal(kept[1], every[1])
