"""Turn SQuAD examples into model windows (features), the Hugging Face `run_qa` way.

A long context is cut into windows of `max_seq_length` tokens overlapping by
`doc_stride`; each window repeats the question. Training windows carry start/end token
positions, pointing at CLS when the window does not contain the answer or the question
is unanswerable. Evaluation windows keep the offset mapping (None outside the context)
so post-processing can map token spans back to characters.

Windows are not padded: a collator (training) or `forward_in_batches` (evaluation) pads
each batch to its own longest window, which skips the ~30% of padding a SQuAD window
carries at 256 tokens. `pad_to_max_length` gives the old fixed-width windows (a latency
probe wants one full window; benchmarks compare the two).

Functions take and return column batches (`dict[str, list]`) so they work directly and
with `datasets.Dataset.map(batched=True)`.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase


def _tokenize_windows(
    examples: dict[str, list[Any]],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    doc_stride: int,
    pad_to_max_length: bool,
) -> Any:
    """Tokenize question + context into overlapping windows; the one tokenizer call both paths share."""
    pad_on_right = tokenizer.padding_side == "right"
    # Some SQuAD questions start with long runs of spaces that would only waste window room.
    questions = [question.lstrip() for question in examples["question"]]
    first, second = (questions, examples["context"]) if pad_on_right else (examples["context"], questions)
    return tokenizer(
        first,
        second,
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length" if pad_to_max_length else False,
    )


def _context_sequence_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return 1 if tokenizer.padding_side == "right" else 0


def _cls_index(input_ids: list[int], tokenizer: PreTrainedTokenizerBase) -> int:
    cls_id = tokenizer.cls_token_id
    return input_ids.index(cls_id) if cls_id is not None and cls_id in input_ids else 0


def prepare_train_features(
    examples: dict[str, list[Any]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_seq_length: int,
    doc_stride: int,
    pad_to_max_length: bool = False,
) -> dict[str, list[Any]]:
    """Windows with `start_positions`/`end_positions` (token indices; CLS when the answer is not inside).

    Also `kd_mask`: 1 on context tokens and CLS, the positions prediction-layer distillation uses;
    as long as the window, so it is 0 on any padding.
    """
    encoded = _tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, pad_to_max_length)
    sample_map = encoded.pop("overflow_to_sample_mapping")
    offset_mapping = encoded.pop("offset_mapping")
    context_id = _context_sequence_id(tokenizer)
    starts, ends, kd_masks = [], [], []
    for window, offsets in enumerate(offset_mapping):
        cls_index = _cls_index(encoded["input_ids"][window], tokenizer)
        # Positions a distilled start/end distribution ranges over: the context, plus CLS (no answer).
        kd_mask = [int(s == context_id) for s in encoded.sequence_ids(window)]
        kd_mask[cls_index] = 1
        kd_masks.append(kd_mask)
        answers = examples["answers"][sample_map[window]]
        if not answers["answer_start"]:
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        # Training uses the first gold answer, as SQuAD training sets have exactly one.
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        sequence_ids = encoded.sequence_ids(window)
        context_tokens = [i for i, s in enumerate(sequence_ids) if s == context_id]
        first, last = context_tokens[0], context_tokens[-1]
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        # Last context token starting at or before the answer, and first one ending at or after it;
        # both searches stay inside the context so SEP/padding offsets (0, 0) are never picked.
        start = first
        while start <= last and offsets[start][0] <= start_char:
            start += 1
        end = last
        while end >= first and offsets[end][1] >= end_char:
            end -= 1
        starts.append(start - 1)
        ends.append(end + 1)
    encoded["start_positions"] = starts
    encoded["end_positions"] = ends
    encoded["kd_mask"] = kd_masks
    return dict(encoded)


def prepare_eval_features(
    examples: dict[str, list[Any]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_seq_length: int,
    doc_stride: int,
    pad_to_max_length: bool = False,
) -> dict[str, list[Any]]:
    """Windows with `example_id`, `cls_index` and `offset_mapping` set to None outside the context."""
    encoded = _tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, pad_to_max_length)
    sample_map = encoded.pop("overflow_to_sample_mapping")
    context_id = _context_sequence_id(tokenizer)
    example_ids, cls_indices, offset_mapping = [], [], []
    for window, offsets in enumerate(encoded["offset_mapping"]):
        sequence_ids = encoded.sequence_ids(window)
        example_ids.append(examples["id"][sample_map[window]])
        cls_indices.append(_cls_index(encoded["input_ids"][window], tokenizer))
        offset_mapping.append(
            [tuple(offset) if sequence_ids[k] == context_id else None for k, offset in enumerate(offsets)]
        )
    encoded["offset_mapping"] = offset_mapping
    encoded["example_id"] = example_ids
    encoded["cls_index"] = cls_indices
    return dict(encoded)


def columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows (as from `SquadDataset.examples()`) to the column batch the functions above take."""
    keys = rows[0].keys() if rows else ()
    return {key: [row[key] for row in rows] for key in keys}
