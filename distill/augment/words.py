"""Words with their character offsets, which of them may change, and rewriting text around them.

Everything here works on offsets into the original string, so text between replaced words
(casing, spacing, punctuation) is copied byte for byte, and any protected span (an answer)
can be moved to its new offset exactly.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A word: letters/digits with inner apostrophes or hyphens ("don't", "well-known"), so those
# come out whole and, not being purely alphabetic, are never replaced.
_WORD = re.compile(r"\w+(?:['’-]\w+)*")

# NLTK's English stopword list (the list TinyBERT-style augmenters skip), without the
# contraction fragments our tokenizer never produces. Swapping these breaks grammar and
# changes meaning ("not" -> "also") without teaching the student anything.
STOPWORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is are
    was were be been being have has had having do does did doing a an the and but if or because as until while of
    at by for with about against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each few more most other
    some such no nor not only own same so than too very s t can will just don should now d ll m o re ve y ain
    aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn also
    """.split()
)


@dataclass(frozen=True)
class Word:
    """A word of a text: `text == source[start:end]`."""

    start: int
    end: int
    text: str


def find_words(text: str) -> list[Word]:
    return [Word(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]


def is_replaceable(word: str) -> bool:
    """Only alphabetic non-stopwords change: numbers, dates, names with digits and function words stay."""
    return word.isalpha() and word.lower() not in STOPWORDS


def overlaps(word: Word, spans: Sequence[tuple[int, int]]) -> bool:
    """True when the word shares a character with any protected span [start, end)."""
    return any(word.start < end and start < word.end for start, end in spans)


def replaceable_words(text: str, protected: Sequence[tuple[int, int]] = ()) -> list[Word]:
    """The words of `text` that may be swapped: replaceable and outside every protected span.

    A word partly inside an answer (SQuAD answers sometimes cut a word, "Norman" in
    "Normans") is protected whole, so the answer's characters never change.
    """
    return [w for w in find_words(text) if is_replaceable(w.text) and not overlaps(w, protected)]


def match_case(original: str, substitute: str) -> str:
    """Give the substitute the original's shape: 'Paris' -> 'London', 'NASA' -> 'ESA', 'river' -> 'stream'."""
    if original.isupper() and len(original) > 1:
        return substitute.upper()
    if original[:1].isupper():
        return substitute[:1].upper() + substitute[1:]
    return substitute


@dataclass(frozen=True)
class Rewrite:
    """A text after replacements, and how to move an offset of the original into it."""

    text: str
    _starts: tuple[int, ...]  # original start of each replaced word, ascending
    _shifts: tuple[int, ...]  # cumulative length change after each replaced word

    def move(self, offset: int) -> int:
        """New offset of original position `offset`, which must not fall inside a replaced word."""
        index = bisect_right(self._starts, offset)
        return offset + (self._shifts[index - 1] if index else 0)


def rewrite(text: str, replacements: Iterable[tuple[Word, str]]) -> Rewrite:
    """Apply non-overlapping word replacements; everything between them is copied unchanged."""
    pieces: list[str] = []
    starts: list[int] = []
    shifts: list[int] = []
    cursor = shift = 0
    for word, new in sorted(replacements, key=lambda pair: pair[0].start):
        if word.start < cursor:
            raise ValueError(f"overlapping replacements at offset {word.start}")
        pieces.append(text[cursor : word.start])
        pieces.append(new)
        cursor = word.end
        shift += len(new) - (word.end - word.start)
        starts.append(word.start)
        shifts.append(shift)
    pieces.append(text[cursor:])
    return Rewrite("".join(pieces), tuple(starts), tuple(shifts))
