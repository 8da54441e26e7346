"""Augmented copies of SQuAD paragraphs with every answer kept exact.

Words that overlap an answer (or a v2 `plausible_answers` span) are never replaced, so
each answer's characters survive unchanged; its `answer_start` is moved by the length
changes of the replacements before it, and every moved answer is checked to slice to its
text before a copy is kept. Questions get new ids `<id>-aug<k>`; unanswerable questions
stay unanswerable; every other field is copied as it is.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from distill.augment.augmenter import AnswerPreservingAug, DrawCounts
from distill.augment.words import Rewrite, replaceable_words

ANSWER_KEYS = ("answers", "plausible_answers")


@dataclass
class UnitStats:
    """What one unit of work (a paragraph, a chunk of sentences) produced."""

    units_in: int = 0
    units_out: int = 0
    questions_out: int = 0
    answers_checked: int = 0
    answers_kept: int = 0
    words: DrawCounts = field(default_factory=DrawCounts)

    def add(self, other: UnitStats) -> None:
        self.units_in += other.units_in
        self.units_out += other.units_out
        self.questions_out += other.questions_out
        self.answers_checked += other.answers_checked
        self.answers_kept += other.answers_kept
        self.words.add(other.words)


def copy_rng(seed: int, unit: int, copy_number: int) -> random.Random:
    """The generator for one copy of one unit: independent of which worker runs it, or in what order."""
    return random.Random(f"{seed}/{unit}/{copy_number}")  # str seeds hash with SHA-512: stable everywhere


def paragraphs(squad: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for article in squad["data"]:
        yield from article["paragraphs"]


def protected_spans(paragraph: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (answer["answer_start"], answer["answer_start"] + len(answer["text"]))
        for qa in paragraph["qas"]
        for key in ANSWER_KEYS
        for answer in qa.get(key) or []
    ]


def augment_paragraph(
    aug: AnswerPreservingAug, paragraph: dict[str, Any], unit: int, seed: int
) -> tuple[list[dict[str, Any]], UnitStats]:
    """The paragraph (unless `keep_original` is off) followed by `factor` augmented copies."""
    settings = aug.settings
    context = paragraph["context"]
    texts = [context] + ([qa["question"] for qa in paragraph["qas"]] if settings.augment_questions else [])
    words = [replaceable_words(context, protected_spans(paragraph))] + [replaceable_words(q) for q in texts[1:]]
    substitutes = aug.substitutes(texts, words)
    stats = UnitStats(units_in=1)
    out = [paragraph] if settings.keep_original else []
    for k in range(1, settings.factor + 1):
        rng = copy_rng(seed, unit, k)
        rewrites = []
        for text, text_words, text_substitutes in zip(texts, words, substitutes, strict=True):
            rewritten, counts = aug.draw(text, text_words, text_substitutes, rng)
            rewrites.append(rewritten)
            stats.words.add(counts)
        out.append(_copy(paragraph, k, rewrites[0], rewrites[1:], stats))
    stats.units_out = len(out)
    stats.questions_out = sum(len(p["qas"]) for p in out)
    return out, stats


def _copy(
    paragraph: dict[str, Any], k: int, context: Rewrite, questions: list[Rewrite], stats: UnitStats
) -> dict[str, Any]:
    new = copy.deepcopy(paragraph)
    new["context"] = context.text
    for index, qa in enumerate(new["qas"]):
        qa["id"] = f"{qa['id']}-aug{k}"
        if questions:
            qa["question"] = questions[index].text
        for key in ANSWER_KEYS:
            for answer in qa.get(key) or []:
                answer["answer_start"] = context.move(answer["answer_start"])
                stats.answers_checked += 1
                start = answer["answer_start"]
                if context.text[start : start + len(answer["text"])] != answer["text"]:
                    # Cannot happen unless a replacement touched an answer: a bug, not bad input.
                    raise AssertionError(f"answer {answer['text']!r} of question {qa['id']} moved off its text")
                stats.answers_kept += 1
    return new
