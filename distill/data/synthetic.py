"""Deterministic synthetic data for tests and the tiny smoke config.

Small, learnable and offline: paragraphs state facts ("the red fox lives in the north
forest.") and questions ask for them, so a tiny model trained for a few seconds does
measurably better than chance. The vocabulary is closed, so `distill.models.tiny` can
build a tokenizer that covers every word.
"""

from __future__ import annotations

import random
from typing import Any

COLOURS = ["red", "blue", "green", "black", "white", "golden", "silver", "brown"]
ANIMALS = ["fox", "owl", "bear", "wolf", "deer", "hare", "lynx", "crow", "otter", "eagle"]
PLACES = ["north forest", "river valley", "old mill", "stone bridge", "high meadow", "dark cave", "lake shore"]
FOODS = ["berries", "fish", "honey", "seeds", "roots", "mice", "apples"]
POSITIVE = ["wonderful", "moving", "brilliant", "charming", "delightful", "sharp", "funny", "warm"]
NEGATIVE = ["dull", "tedious", "clumsy", "boring", "awful", "bland", "messy", "weak"]
NOUNS = ["film", "story", "script", "cast", "movie", "plot", "ending", "score"]
FILLER = [
    "the",
    "a",
    "an",
    "is",
    "was",
    "and",
    "in",
    "lives",
    "eats",
    "where",
    "what",
    "does",
    "do",
    "who",
    "quite",
    "truly",
    "this",
    "that",
    "very",
    "but",
    "of",
    "near",
    "likes",
    "to",
    "it",
    "animal",
    "which",
    "color",
    "food",
    "live",
    "eat",
    "many",
    "visitors",
    "come",
    "see",
    "every",
    "year",
    ".",
]


def vocabulary() -> list[str]:
    """Every word the generators can emit (multi-word places split)."""
    words = COLOURS + ANIMALS + FOODS + POSITIVE + NEGATIVE + NOUNS + FILLER
    words += [w for place in PLACES for w in place.split()]
    return sorted(set(words))


def _paragraph(rng: random.Random, facts: int) -> tuple[str, list[dict[str, Any]]]:
    """A context of `facts` sentences, and for each sentence the (question, answer) pairs it supports."""
    sentences, answers = [], []
    animals = rng.sample(ANIMALS, facts)
    for animal in animals:
        colour, place, food = rng.choice(COLOURS), rng.choice(PLACES), rng.choice(FOODS)
        sentence = f"the {colour} {animal} lives in the {place} and eats {food}."
        offset = sum(len(s) + 1 for s in sentences)
        sentences.append(sentence)
        answers.append(
            {
                "question": f"where does the {colour} {animal} live?",
                "text": place,
                "answer_start": offset + sentence.index(place),
            }
        )
        answers.append(
            {
                "question": f"what does the {colour} {animal} eat?",
                "text": food,
                "answer_start": offset + sentence.rindex(food),
            }
        )
    missing = rng.choice([a for a in ANIMALS if a not in animals])
    unanswerable = {"question": f"where does the {rng.choice(COLOURS)} {missing} live?"}
    return " ".join(sentences), answers + [unanswerable]


def synthetic_squad(
    *, articles: int = 4, paragraphs: int = 3, facts: int = 3, unanswerable: bool = True, seed: int = 0
) -> dict[str, Any]:
    """A SQuAD v2.0 (or v1.1 without `unanswerable`) JSON object with unique, stable question ids."""
    rng = random.Random(seed)
    data = []
    for a in range(articles):
        article = {"title": f"Synthetic_{a}", "paragraphs": []}
        for p in range(paragraphs):
            context, items = _paragraph(rng, facts)
            qas = []
            for q, item in enumerate(items):
                qid = f"syn-{seed}-{a}-{p}-{q}"
                if "text" in item:
                    qas.append(
                        {
                            "id": qid,
                            "question": item["question"],
                            "answers": [{"text": item["text"], "answer_start": item["answer_start"]}],
                        }
                    )
                elif unanswerable:
                    qas.append({"id": qid, "question": item["question"], "answers": [], "is_impossible": True})
            article["paragraphs"].append({"context": context, "qas": qas})
        data.append(article)
    return {"version": "v2.0" if unanswerable else "1.1", "data": data}


def synthetic_sentiment(*, rows: int = 200, seed: int = 0) -> list[dict[str, str]]:
    """Rows of {'sentence', 'label'} with label '1' for positive and '0' for negative wording."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        positive = rng.random() < 0.5
        adjective = rng.choice(POSITIVE if positive else NEGATIVE)
        noun = rng.choice(NOUNS)
        template = rng.choice(["the {n} is {a} .", "this {n} was truly {a} .", "a {a} {n} .", "quite a {a} {n} ."])
        out.append({"sentence": template.format(n=noun, a=adjective), "label": "1" if positive else "0"})
    return out
