"""An attention implementation that computes what eager attention does and records its scores.

TinyBERT's attention loss compares attention *scores* (QK^T / sqrt(d), before the softmax)
and MiniLM's compares the attention *distributions*; neither may see attention dropout.
Eager attention returns its weights after dropout, and SDPA or flash kernels never form
them, so `output_attentions` cannot give either. This module registers one more
implementation with transformers' attention registry (`AttentionInterface`, and
`AttentionMaskInterface` for the same additive mask eager gets), under the name
`RECORDING_ATTENTION`. Load a model with `attn_implementation=RECORDING_ATTENTION` and:

- its outputs are eager attention's, op for op (same softmax, the same dropout on the
  attention weights that multiply the values, so the same random numbers are drawn);
- inside `recorded_attention_scores()`, each attention call appends its scores
  `(B, H, T_q, T_k)` to the list the context yields, in call order (layer order for an
  encoder). Scores are recorded **without** the additive padding mask: the masked entries
  would be about -3.4e38, which no loss should see; the losses take the token mask
  instead. The distribution a layer attends with is softmax(scores + mask) before dropout,
  which the KL loss recomputes from the scores in float32.

The eager function it mirrors is the one BERT, RoBERTa, XLM-R, ELECTRA, ALBERT and DistilBERT
share in transformers 5; a model whose attention bypasses the registry (DeBERTa-v2, MPNet)
records nothing, which the intermediate trainer reports as an error.

Recorded tensors are part of the autograd graph (a student's scores carry gradients) and
stay in the dtype the matmul ran in (bf16 under autocast): losses cast them to float32.
Outside the context nothing is kept, so evaluation and later stages pay nothing extra.
Registration happens at import, so the name is valid wherever it can be imported.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Collection, Iterator
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import eager_mask

RECORDING_ATTENTION = "distill_recording_eager"

# The list the innermost `recorded_attention_scores()` context collects into, and the call indices it keeps;
# None outside any context.
_RECORDING: contextvars.ContextVar[tuple[list[torch.Tensor | None], Collection[int] | None] | None] = (
    contextvars.ContextVar("distill_attention_scores", default=None)
)


@contextlib.contextmanager
def recorded_attention_scores(keep: Collection[int] | None = None) -> Iterator[list[torch.Tensor | None]]:
    """Collect the pre-softmax scores of every attention call of the forward passes run inside.

    Run one model's forward per context: a fresh list per context keeps the student's and
    the teacher's scores apart and drops the previous step's.

    Args:
        keep: 0-based indices of the calls (layers) whose scores are kept; the others are
            recorded as None, so a 12-layer teacher mapped at 3 layers holds 3 score tensors,
            not 12. None keeps every call.

    Yields:
        A list that fills with one `(B, H, T_q, T_k)` tensor (or None) per attention call.
    """
    scores: list[torch.Tensor | None] = []
    token = _RECORDING.set((scores, keep))
    try:
        yield scores
    finally:
        _RECORDING.reset(token)


def recording_eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' `eager_attention_forward` (BERT's), plus recording the scores when asked.

    Args:
        module: the attention module; `module.training` switches dropout on.
        query, key, value: `(B, H, T, d_head)`.
        attention_mask: additive `(B, 1, T_q, T_k)` mask (0 or the dtype's minimum), or None.
        scaling: factor on QK^T, 1 / sqrt(d_head) by default.
        dropout: probability applied to the attention weights before they multiply the values.

    Returns:
        The attention output `(B, T, H, d_head)` and the (post-dropout) weights, as eager returns them.
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, T_q, T_k)
    recording = _RECORDING.get()
    if recording is not None:
        recorded, keep = recording
        recorded.append(scores if keep is None or len(recorded) in keep else None)
    weights = scores + attention_mask if attention_mask is not None else scores
    weights = nn.functional.softmax(weights, dim=-1)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


AttentionInterface.register(RECORDING_ATTENTION, recording_eager_attention)
# Without a mask function of its own, transformers would hand this implementation no padding mask at all.
AttentionMaskInterface.register(RECORDING_ATTENTION, eager_mask)
