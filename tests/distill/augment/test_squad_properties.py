"""Property tests: on generated paragraphs, augmentation keeps every answer exact and changes nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill.augment.augmenter import AnswerPreservingAug
from distill.augment.runner import AugmentSource, augment_to_file
from distill.augment.squad import augment_paragraph
from distill.augment.vectors import NeighbourTable, load_vectors
from distill.augment.words import STOPWORDS, find_words, is_replaceable
from distill.config.augment import AugmentConfig
from distill.data.squad import parse_squad
from tests.conftest import AUGMENT_WORDS

TOKENS = st.sampled_from(AUGMENT_WORDS + ["the", "of", "Castle", "RIVER", "1066", "U2", "don't", "well-known"])
SEPARATORS = st.sampled_from([" ", "  ", ", ", ". ", " (", ") ", "\n", " - ", '"', "; "])


@st.composite
def paragraphs(draw: st.DrawFn) -> dict[str, Any]:
    """A context of words and punctuation, and questions whose answers sit anywhere in it.

    Answers are drawn as word-aligned or arbitrary character spans: at the start, at the end,
    overlapping each other, cutting words, next to punctuation, and the same text repeated.
    """
    words = draw(st.lists(TOKENS, min_size=1, max_size=40))
    context = words[0]
    for word in words[1:]:
        context += draw(SEPARATORS) + word
    context += draw(st.sampled_from(["", ".", "!", " ?"]))
    spans = []
    for _ in range(draw(st.integers(1, 5))):
        start = draw(st.sampled_from([0, len(context) - 1]) | st.integers(0, len(context) - 1))
        end = draw(st.integers(start + 1, min(len(context), start + 25)))
        spans.append((start, end))
    qas = []
    for q, (start, end) in enumerate(spans):
        text = context[start:end]
        kind = draw(st.sampled_from(["answer", "answer", "unanswerable", "plausible"]))
        qa: dict[str, Any] = {"id": f"q{q}", "question": f"what is {q}?"}
        if kind == "answer":
            # Several annotators, sometimes pointing at another occurrence of the same text.
            other = context.find(text)
            qa["answers"] = [{"text": text, "answer_start": start}, {"text": text, "answer_start": other}]
        else:
            qa["answers"] = []
            qa["is_impossible"] = True
            if kind == "plausible":
                qa["plausible_answers"] = [{"text": text, "answer_start": start}]
        qas.append(qa)
    return {"context": context, "qas": qas}


@pytest.fixture(scope="module")
def neighbours(tiny_vectors) -> NeighbourTable:  # noqa: ANN001
    return NeighbourTable.build(load_vectors(str(tiny_vectors)), [w.lower() for w in AUGMENT_WORDS], 5)


@pytest.fixture(scope="module", params=["embedding", "tinybert"])
def augmenter(request, neighbours, tiny_mlm, tiny_vectors) -> AnswerPreservingAug:  # noqa: ANN001
    config = AugmentConfig(
        method=request.param, factor=3, replace_prob=0.5, candidates=5, mlm=str(tiny_mlm), vectors=str(tiny_vectors)
    )
    return AnswerPreservingAug(config, neighbours=neighbours)


def _skeleton(text: str) -> list[str]:
    """What lies between words: spacing and punctuation, which must survive byte for byte."""
    return re.split(r"\w+(?:['’-]\w+)*", text)


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(paragraph=paragraphs(), seed=st.integers(0, 2**16))
def test_every_answer_slices_exactly_and_only_free_words_change(augmenter, paragraph, seed) -> None:  # noqa: ANN001
    out, stats = augment_paragraph(augmenter, paragraph, unit=0, seed=seed)
    assert len(out) == 1 + augmenter.settings.factor
    assert out[0] is paragraph  # the original is passed through untouched
    protected = [
        (a["answer_start"], a["answer_start"] + len(a["text"]))
        for qa in paragraph["qas"]
        for key in ("answers", "plausible_answers")
        for a in qa.get(key, [])
    ]
    original_words = find_words(paragraph["context"])
    for k, copy in enumerate(out[1:], start=1):
        context = copy["context"]
        for qa, original_qa in zip(copy["qas"], paragraph["qas"], strict=True):
            assert qa["id"] == f"{original_qa['id']}-aug{k}"
            assert qa["question"] == original_qa["question"]  # augment_questions is off
            assert qa.get("is_impossible") == original_qa.get("is_impossible")
            for key in ("answers", "plausible_answers"):
                assert len(qa.get(key, [])) == len(original_qa.get(key, []))
                for answer, original in zip(qa.get(key, []), original_qa.get(key, []), strict=True):
                    assert answer["text"] == original["text"]
                    start = answer["answer_start"]
                    assert context[start : start + len(answer["text"])] == answer["text"]
        assert _skeleton(context) == _skeleton(paragraph["context"])
        new_words = find_words(context)
        assert len(new_words) == len(original_words)
        for old, new in zip(original_words, new_words, strict=True):
            if old.text != new.text:
                assert is_replaceable(old.text), f"{old.text!r} is not replaceable but became {new.text!r}"
                assert not any(old.start < end and start < old.end for start, end in protected)
                assert new.text.isalpha() and new.text.lower() not in STOPWORDS
                assert new.text[0].isupper() == old.text[0].isupper()
    assert (
        stats.answers_kept
        == stats.answers_checked
        == augmenter.settings.factor
        * sum(len(qa.get(key, [])) for qa in paragraph["qas"] for key in ("answers", "plausible_answers"))
    )
    assert stats.words.replaced <= stats.words.eligible


@PROPERTY
@given(paragraph_list=st.lists(paragraphs(), min_size=1, max_size=3), seed=st.integers(0, 100))
def test_files_are_valid_squad_with_right_counts_and_same_bytes_for_same_seed(
    augmenter, paragraph_list, seed, tmp_path_factory
) -> None:  # noqa: ANN001
    # Question ids must be unique across the file: prefix them per paragraph.
    for p, paragraph in enumerate(paragraph_list):
        for qa in paragraph["qas"]:
            qa["id"] = f"p{p}-{qa['id']}"
    squad = {"version": "v2.0", "data": [{"title": "T", "paragraphs": paragraph_list}]}
    folder = tmp_path_factory.mktemp("files")
    settings_ = augmenter.settings
    outputs = []
    for name in ("a.json", "b.json"):
        augment_to_file(AugmentSource.from_squad(json.loads(json.dumps(squad))), folder / name, settings_, seed=seed)
        outputs.append((folder / name).read_bytes())
    assert outputs[0] == outputs[1]
    result = parse_squad(json.loads(outputs[0]), source="augmented", check_answer_spans=True)
    questions = sum(len(p["qas"]) for p in paragraph_list)
    assert result.num_questions == questions * (1 + settings_.factor)
    assert len(result.articles[0]["paragraphs"]) == len(paragraph_list) * (1 + settings_.factor)
