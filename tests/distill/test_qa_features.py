"""Window features: overflow windows with stride, answer positions, CLS for absent answers, eval offsets."""

from __future__ import annotations

from distill.data.synthetic import synthetic_squad
from distill.qa.features import columns, prepare_eval_features, prepare_train_features


def long_examples() -> list[dict]:
    """One long context; one question per occurrence of every 'eats X' answer, at many window positions."""
    paragraph = synthetic_squad(articles=1, paragraphs=1, facts=9, seed=11)["data"][0]["paragraphs"][0]
    context = " ".join([paragraph["context"]] * 3)
    rows = []
    for food in ["berries", "fish", "honey", "seeds", "roots", "mice", "apples"]:
        start = context.find(food)
        while start != -1:
            rows.append(
                {
                    "id": f"{food}-{start}",
                    "question": f"what is {food}?",
                    "context": context,
                    "answers": {"text": [food], "answer_start": [start]},
                }
            )
            start = context.find(food, start + 1)
    rows.append(
        {
            "id": "none",
            "question": "where does the owl live?",
            "context": context,
            "answers": {"text": [], "answer_start": []},
        }
    )
    return rows


def test_train_positions_slice_exactly_or_point_at_cls(tiny_tokenizer) -> None:  # noqa: ANN001
    rows = long_examples()
    batch = columns(rows)
    by_id = {row["id"]: row for row in rows}
    at_window_edge = 0
    # Several window sizes, so that some answers land exactly on a window's last context token.
    for max_seq_length in range(56, 72, 3):
        train = prepare_train_features(batch, tiny_tokenizer, max_seq_length=max_seq_length, doc_stride=24)
        evaluation = prepare_eval_features(batch, tiny_tokenizer, max_seq_length=max_seq_length, doc_stride=24)
        assert len(train["input_ids"]) == len(evaluation["input_ids"]) > 2 * len(rows)  # several windows each
        answered = set()
        for window, example_id in enumerate(evaluation["example_id"]):
            row = by_id[example_id]
            offsets = evaluation["offset_mapping"][window]
            start, end = train["start_positions"][window], train["end_positions"][window]
            context_offsets = [o for o in offsets if o is not None]
            if not row["answers"]["text"]:
                assert start == end == 0
                continue
            answer_start = row["answers"]["answer_start"][0]
            answer_end = answer_start + len(row["answers"]["text"][0])
            if context_offsets[0][0] <= answer_start and context_offsets[-1][1] >= answer_end:
                answered.add(example_id)
                assert row["context"][offsets[start][0] : offsets[end][1]] == row["answers"]["text"][0]
                at_window_edge += end == max(i for i, o in enumerate(offsets) if o is not None)
            else:
                assert start == end == 0, "a window without the whole answer must point at CLS"
        assert len(answered) == len(rows) - 1  # every answer is whole in at least one window
    assert at_window_edge >= 1, "no answer fell on a window's last context token; edge case untested"


def test_windows_overlap_by_stride_and_repeat_the_question(tiny_tokenizer) -> None:  # noqa: ANN001
    rows = long_examples()[:1]
    evaluation = prepare_eval_features(columns(rows), tiny_tokenizer, max_seq_length=64, doc_stride=24)
    windows = [[o for o in offsets if o is not None] for offsets in evaluation["offset_mapping"]]
    assert len(windows) > 3
    for first, second in zip(windows, windows[1:], strict=False):
        overlap = [o for o in first if o in set(second)]
        assert len(overlap) == 24
    question_ids = tiny_tokenizer(rows[0]["question"])["input_ids"]
    for input_ids in evaluation["input_ids"]:
        assert input_ids[: len(question_ids)] == question_ids
    # Not padded: every window is full but the last, which holds only what is left of the context.
    lengths = [len(input_ids) for input_ids in evaluation["input_ids"]]
    assert lengths[:-1] == [64] * (len(lengths) - 1) and lengths[-1] < 64


def test_eval_offsets_are_none_outside_context(tiny_tokenizer) -> None:  # noqa: ANN001
    rows = long_examples()[:2]
    evaluation = prepare_eval_features(columns(rows), tiny_tokenizer, max_seq_length=64, doc_stride=24)
    for window, offsets in enumerate(evaluation["offset_mapping"]):
        sequence_ids = [0 if o is None else 1 for o in offsets]
        assert sequence_ids[0] == 0 and evaluation["cls_index"][window] == 0
        assert evaluation["input_ids"][window][0] == tiny_tokenizer.cls_token_id
        question_length = len(tiny_tokenizer(rows[0]["question"])["input_ids"])
        assert all(o is None for o in offsets[:question_length])
    assert set(evaluation["example_id"]) == {rows[0]["id"], rows[1]["id"]}


def test_leading_question_whitespace_is_stripped(tiny_tokenizer) -> None:  # noqa: ANN001
    row = long_examples()[0]
    padded = dict(row, question="      " + row["question"])
    plain = prepare_eval_features(columns([row]), tiny_tokenizer, max_seq_length=64, doc_stride=24)
    spaced = prepare_eval_features(columns([padded]), tiny_tokenizer, max_seq_length=64, doc_stride=24)
    assert plain["input_ids"] == spaced["input_ids"]
