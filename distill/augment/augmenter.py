"""The augmenter: substitutes for a text's replaceable words, then seeded draws of augmented copies.

`AnswerPreservingAug` is an nlpaug word augmenter (so `aug.augment(text)` and nlpaug flows
work), built on two steps the dataset code calls directly:

1. `substitutes(text, words)`: candidates for every replaceable word, computed once from the
   original text (as TinyBERT does) and shared by all copies; this is where the models run.
2. `draw(text, words, substitutes, rng)`: each word with candidates is swapped with
   probability `replace_prob` for one drawn at random, in the original word's case.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nlpaug.augmenter.word as naw
from nlpaug.util import Action

from distill.augment.words import Rewrite, Word, match_case, replaceable_words, rewrite
from distill.config.augment import AugmentConfig

if TYPE_CHECKING:
    from distill.augment.vectors import NeighbourTable


@dataclass
class DrawCounts:
    """Words that had substitutes (eligible) and words swapped, summed over copies."""

    eligible: int = 0
    replaced: int = 0

    def add(self, other: DrawCounts) -> None:
        self.eligible += other.eligible
        self.replaced += other.replaced


class AnswerPreservingAug(naw.WordAugmenter):
    """Swap words for substitutes without touching protected spans (answers) or the text between words.

    `neighbours` (a `NeighbourTable` over the data's vocabulary, see `vectors.py`) is needed by
    'embedding' and 'tinybert'; the masked LM and WordNet are loaded here as the method needs.
    """

    def __init__(self, settings: AugmentConfig, *, neighbours: NeighbourTable | None = None, seed: int = 0):
        super().__init__(action=Action.SUBSTITUTE, name="AnswerPreserving_Aug", aug_p=settings.replace_prob)
        if settings.needs_vectors and neighbours is None:
            raise ValueError(f"method '{settings.method}' needs a neighbour table")
        self.settings = settings
        self.neighbours = neighbours
        self.mlm = None
        self.synonyms = None
        if settings.needs_mlm:
            from distill.augment.mlm import MaskedLMSubstitutes

            self.mlm = MaskedLMSubstitutes(
                settings.mlm, top_k=settings.candidates, mask_ratio=settings.mask_ratio, batch_size=settings.batch_size
            )
        if settings.method == "synonym":
            from distill.augment.synonyms import WordNetSynonyms

            self.synonyms = WordNetSynonyms(settings.candidates)
        self._rng = random.Random(seed)

    # ----------------------------------------------------------------------- step 1: substitutes

    def substitutes(self, texts: Sequence[str], words: Sequence[Sequence[Word]]) -> list[list[list[str]]]:
        """Candidates for each word of each text, from the original texts; [] where the method has none.

        Texts are processed together so masked-LM passes of short texts share batches.
        """
        method = self.settings.method
        if method == "synonym":
            return [[self.synonyms.predict(w.text) for w in text_words] for text_words in words]
        if method == "embedding":
            return [[self.neighbours.predict(w.text) for w in text_words] for text_words in words]
        tokenized = [self.mlm.tokenize(text, text_words) for text, text_words in zip(texts, words, strict=True)]
        if method == "contextual":
            items = [(t, w, range(len(w))) for t, w in zip(tokenized, words, strict=True)]
            return self.mlm.candidates_many(items)
        # tinybert: a word that is one word piece gets masked-LM substitutes, others vector neighbours.
        singles = [[i for i in range(len(w)) if t.piece_count(i) == 1] for t, w in zip(tokenized, words, strict=True)]
        from_mlm = self.mlm.candidates_many(list(zip(tokenized, words, singles, strict=True)))
        found = []
        for text_words, single, predicted in zip(words, singles, from_mlm, strict=True):
            by_mlm = dict(zip(single, predicted, strict=True))
            found.append(
                [by_mlm[i] if i in by_mlm else self.neighbours.predict(w.text) for i, w in enumerate(text_words)]
            )
        return found

    # ----------------------------------------------------------------------- step 2: draws

    def draw(
        self, text: str, words: Sequence[Word], substitutes: Sequence[Sequence[str]], rng: random.Random
    ) -> tuple[Rewrite, DrawCounts]:
        """One augmented copy: each word with substitutes is swapped with probability replace_prob."""
        counts = DrawCounts()
        replacements = []
        for word, candidates in zip(words, substitutes, strict=True):
            if not candidates:
                continue
            counts.eligible += 1
            # Two draws per eligible word whatever the outcome, so one word's result never shifts another's.
            swap, pick = rng.random(), rng.randrange(len(candidates))
            if swap < self.settings.replace_prob:
                replacements.append((word, match_case(word.text, candidates[pick])))
                counts.replaced += 1
        return rewrite(text, replacements), counts

    # ----------------------------------------------------------------------- nlpaug interface

    def substitute(self, data: str) -> str:
        """nlpaug's entry point (`aug.augment(text)`): one augmented copy, nothing protected."""
        if not data or not data.strip():
            return data
        words = replaceable_words(data)
        [substitutes] = self.substitutes([data], [words])
        result, _ = self.draw(data, words, substitutes, self._rng)
        return result.text
