"""TinyBERT intermediate-layer distillation: the student matches the teacher's internals.

Per mapped layer pair (s, t): MSE between hidden states (the student's projected to the
teacher's width by a learned linear map when widths differ), and, where both s and t are
transformer layers, an attention loss: MSE between attention scores (TinyBERT) or
KL(teacher || student) between attention distributions (MiniLM), both before any dropout
(see `distill.models.attention`). Three terms, each the mean over the pairs that feed it:

    embedding_loss = mean over pairs with s = 0 of MSE(W h_0, h_t)
    hidden_loss    = mean over pairs with s > 0 of MSE(W h_s, h_t)
    attention_loss = mean over pairs with s > 0 and t > 0 of attention_{mse|kl}(A_s, A_t)

so a pair that maps onto the embedding output adds a hidden term but no attention term.
Every term has its own weight and is logged unweighted. No labels are used.

The projections train with the student: they hang off it as a submodule, so the
optimizer updates them and every checkpoint saves them (a resumed run keeps them). They
are detached and saved on their own when training ends, leaving a plain HF student.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn

from distill.models.attention import RECORDING_ATTENTION, recorded_attention_scores
from distill.models.inference import MODEL_INPUTS
from distill.training import distributed
from distill.training.layer_map import LayerPair
from distill.training.losses import attention_kl, attention_mse, masked_mse
from distill.training.trainer import LengthGroupedTrainer

PROJECTIONS = "distill_projections"


class HiddenProjections(nn.Module):
    """One linear map per mapped layer pair from the student's width to the teacher's (identity if equal)."""

    def __init__(self, pairs: list[LayerPair], student_width: int, teacher_width: int) -> None:
        super().__init__()
        self.pairs = list(pairs)
        self.maps = nn.ModuleDict(
            {
                f"{s}_{t}": nn.Linear(student_width, teacher_width) if student_width != teacher_width else nn.Identity()
                for s, t in pairs
            }
        )

    def forward(self, hidden: torch.Tensor, pair: LayerPair) -> torch.Tensor:
        return self.maps[f"{pair[0]}_{pair[1]}"](hidden)


def attach_projections(student: nn.Module, projections: HiddenProjections) -> None:
    student.add_module(PROJECTIONS, projections)


def detach_projections(student: nn.Module) -> HiddenProjections | None:
    projections = getattr(student, PROJECTIONS, None)
    if projections is not None:
        delattr(student, PROJECTIONS)
    return projections


class IntermediateDistillationTrainer(LengthGroupedTrainer):
    """Trainer whose loss is the weighted sum of embedding, hidden-state and attention matching terms.

    With `attention_weight > 0`, student and teacher must be loaded with
    `attn_implementation=RECORDING_ATTENTION`; the student trains in train mode (dropout on)
    but its attention loss sees scores taken before the softmax and any dropout.
    """

    def __init__(
        self,
        *args: Any,
        teacher_model: nn.Module,
        pairs: list[LayerPair],
        embedding_weight: float,
        hidden_weight: float,
        attention_weight: float,
        attention_loss: Literal["mse", "kl"],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher_model.to(self.args.device).eval().requires_grad_(False)
        self.pairs = pairs
        self.weights = {
            "embedding_loss": embedding_weight,
            "hidden_loss": hidden_weight,
            "attention_loss": attention_weight,
        }
        self.attention_fn = {"mse": attention_mse, "kl": attention_kl}[attention_loss]
        if attention_weight > 0:
            for role, model in (("student", self.model), ("teacher", self.teacher)):
                implementation = getattr(model.config, "_attn_implementation", None)
                if implementation != RECORDING_ATTENTION:
                    raise ValueError(
                        f"the attention loss needs the {role} loaded with attn_implementation="
                        f"{RECORDING_ATTENTION!r} (distill.models.attention), not {implementation!r}"
                    )
        self._sums = dict.fromkeys(self.weights, 0.0)
        self._count = 0

    def loss_terms(self, model: nn.Module, inputs: dict[str, Any]) -> tuple[dict[str, torch.Tensor], Any]:
        """The three unweighted terms for one batch, and the student base model's outputs."""
        model_inputs = {k: v for k, v in inputs.items() if k in MODEL_INPUTS}
        need_attention = self.weights["attention_loss"] > 0
        # The student's base model only: the task head plays no part in this step.
        unwrapped = self.accelerator.unwrap_model(model)
        # Only the scores of mapped layers are kept (layer s's attention is call s - 1).
        attention_pairs = [pair for pair in self.pairs if pair[0] > 0 and pair[1] > 0]
        if need_attention:
            record_student = recorded_attention_scores({s - 1 for s, _ in attention_pairs})
            record_teacher = recorded_attention_scores({t - 1 for _, t in attention_pairs})
        else:
            record_student = record_teacher = contextlib.nullcontext()
        # Calling base_model bypasses the forward that accelerate wraps in autocast: enter it explicitly.
        with self.accelerator.autocast():
            with record_student as student_scores, embedding_output_before_dropout(unwrapped.base_model) as embedded:
                student = unwrapped.base_model(**model_inputs, output_hidden_states=True)
            # no_grad rather than inference_mode: these tensors meet the student's in the loss's autograd graph.
            with torch.no_grad(), record_teacher as teacher_scores:
                teacher = self.teacher.base_model(**model_inputs, output_hidden_states=True)
        if need_attention:
            _check_recorded(student_scores, len(student.hidden_states) - 1, "student")
            _check_recorded(teacher_scores, len(teacher.hidden_states) - 1, "teacher")
        mask = model_inputs["attention_mask"]
        projections: HiddenProjections = getattr(unwrapped, PROJECTIONS)

        # The student's embedding output as it was before its dropout: what the teacher (in eval mode) outputs.
        # Used only where the dropout's output is the embedding output the model reports (BERT, RoBERTa, ...);
        # ELECTRA and ALBERT project it further (other width or values), so they keep hidden_states[0].
        clean_embedding = student.hidden_states[0]
        if embedded and torch.equal(embedded[0][1], clean_embedding):
            clean_embedding = embedded[0][0]
        student_hidden = (clean_embedding, *student.hidden_states[1:])

        def hidden_mse(pair: LayerPair) -> torch.Tensor:
            return masked_mse(projections(student_hidden[pair[0]], pair), teacher.hidden_states[pair[1]], mask)

        def attention(pair: LayerPair) -> torch.Tensor:
            return self.attention_fn(student_scores[pair[0] - 1], teacher_scores[pair[1] - 1], mask)

        # Each term averages over the pairs that feed it, so weights mean the same for any depth or map.
        groups = {
            "embedding_loss": ([pair for pair in self.pairs if pair[0] == 0], hidden_mse),
            "hidden_loss": ([pair for pair in self.pairs if pair[0] > 0], hidden_mse),
            "attention_loss": (attention_pairs, attention),
        }
        terms = {}
        for name, (group, term) in groups.items():
            if self.weights[name] > 0 and group:
                terms[name] = torch.stack([term(pair) for pair in group]).mean()
            else:
                terms[name] = torch.zeros((), device=mask.device)
        return terms, student

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        terms, student = self.loss_terms(model, inputs)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        if model.training:
            for name, value in terms.items():
                self._sums[name] += float(value.detach())
            self._count += 1
        return (loss, student) if return_outputs else loss

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        # loss_terms calls the student's base model, past the DDP wrapper, whose gradient averaging then never
        # runs: with several processes each rank would train on its own shard alone (tests/distill/test_ddp.py).
        distributed.average_gradients(model)
        return loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._count:
            names = list(self._sums)
            # Every rank's batches, as the logged loss is; the count is the same on every rank.
            for name, total in zip(names, distributed.mean_over_ranks([self._sums[n] for n in names]), strict=True):
                logs[name] = round(total / self._count, 6)
            self._sums, self._count = dict.fromkeys(self.weights, 0.0), 0
        super().log(logs, *args, **kwargs)


@contextlib.contextmanager
def embedding_output_before_dropout(base_model: nn.Module) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Collect (input, output) of the embeddings' dropout (BERT-family `embeddings.dropout`).

    The student trains with dropout on and `hidden_states[0]` is taken after it: ~10% of the entries
    zeroed and the rest scaled by 1/0.9 against the teacher's clean output, so the embedding MSE's
    optimum would shrink the student's embeddings. A forward hook on the dropout module reads its
    input instead; the forward itself is unchanged. The output is kept so the caller can check it is
    the embedding output the model reports. Models without that module yield an empty list.
    """
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    dropout = getattr(getattr(base_model, "embeddings", None), "dropout", None)
    if not isinstance(dropout, nn.Dropout):
        yield captured
        return
    handle = dropout.register_forward_hook(lambda _module, args, output: captured.append((args[0], output)))
    try:
        yield captured
    finally:
        handle.remove()


def _check_recorded(scores: list[torch.Tensor], layers: int, role: str) -> None:
    # An architecture whose attention bypasses transformers' AttentionInterface records nothing.
    if len(scores) != layers:
        raise RuntimeError(
            f"the {role} recorded attention scores for {len(scores)} of its {layers} layers: its attention does not "
            f"go through transformers' AttentionInterface ({RECORDING_ATTENTION!r})"
        )
