"""Augmented copies of sentence-classification rows (TSV, CSV or JSONL): text swapped, labels copied.

Rows are processed in fixed chunks of `CHUNK` so masked-LM passes of short sentences share
batches; the chunking depends only on the data, never on the worker count, so the output
does not either.
"""

from __future__ import annotations

from typing import Any

from distill.augment.augmenter import AnswerPreservingAug
from distill.augment.squad import UnitStats, copy_rng
from distill.augment.words import replaceable_words

CHUNK = 64


def augment_rows(
    aug: AnswerPreservingAug, rows: list[dict[str, Any]], first_row: int, columns: list[str], seed: int
) -> tuple[list[dict[str, Any]], UnitStats]:
    """Each row (unless `keep_original` is off) followed by `factor` copies with `columns` augmented."""
    settings = aug.settings
    texts = [str(row[column]) for row in rows for column in columns]
    words = [replaceable_words(text) for text in texts]
    substitutes = aug.substitutes(texts, words)
    stats = UnitStats(units_in=len(rows))
    out: list[dict[str, Any]] = []
    for offset, row in enumerate(rows):
        if settings.keep_original:
            out.append(row)
        for k in range(1, settings.factor + 1):
            rng = copy_rng(seed, first_row + offset, k)
            new = dict(row)
            for c, column in enumerate(columns):
                i = offset * len(columns) + c
                rewritten, counts = aug.draw(texts[i], words[i], substitutes[i], rng)
                new[column] = rewritten.text
                stats.words.add(counts)
            out.append(new)
    stats.units_out = len(out)
    return out, stats
