"""Augment a whole file: read and check it, build substitutes, run the units (in worker processes), write once.

The output is a pure function of the input bytes, the output settings and the seed:
  - each unit (a SQuAD paragraph, a chunk of sentences) is augmented on its own, with
    generators seeded from (seed, unit, copy);
  - the word-vector neighbour table is built once, in this process, for the data's vocabulary;
  - units come back in order, whichever worker ran them.
So `workers` changes only the speed. Nothing is written until every unit is done, and then
atomically: a failure leaves no partial output behind.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from distill.augment.augmenter import AnswerPreservingAug
from distill.augment.sentences import CHUNK, augment_rows
from distill.augment.squad import UnitStats, augment_paragraph, paragraphs
from distill.augment.words import replaceable_words
from distill.config.augment import AugmentConfig
from distill.data.classification import file_kind, read_frame, write_records
from distill.data.squad import parse_squad
from distill.errors import DataError
from distill.io import atomic_write_text, read_json

Kind = Literal["squad", "classification"]
Progress = Callable[[int, int], None]  # (input units done, input units in all)


@dataclass(frozen=True)
class AugmentResult:
    """Counts and speed of one augmentation run."""

    kind: Kind
    output: str
    stats: UnitStats
    seconds: float
    kept_original: bool

    @property
    def unit(self) -> str:
        return "paragraphs" if self.kind == "squad" else "rows"

    @property
    def replaced_share(self) -> float:
        return self.stats.words.replaced / max(self.stats.words.eligible, 1)

    def as_metrics(self) -> dict[str, Any]:
        unit = self.unit
        augmented = self.stats.units_out - (self.stats.units_in if self.kept_original else 0)
        metrics: dict[str, Any] = {
            f"input_{unit}": self.stats.units_in,
            f"output_{unit}": self.stats.units_out,
            f"augmented_{unit}": augmented,
            "eligible_words": self.stats.words.eligible,
            "replaced_words": self.stats.words.replaced,
            "replaced_share": round(self.replaced_share, 4),
            "seconds": round(self.seconds, 2),
            f"augmented_{unit}_per_second": round(augmented / max(self.seconds, 1e-9), 2),
        }
        if self.kind == "squad":
            metrics |= {
                "output_questions": self.stats.questions_out,
                "answers_checked": self.stats.answers_checked,
                "answers_kept": self.stats.answers_kept,
            }
        return metrics

    def summary(self) -> str:
        m, unit = self.as_metrics(), self.unit
        line = (
            f"{m[f'input_{unit}']} {unit} in, {m[f'output_{unit}']} out ({m[f'augmented_{unit}']} augmented) "
            f"in {m['seconds']:.1f} s: {m[f'augmented_{unit}_per_second']:.2f} augmented {unit}/s; "
            f"{m['replaced_words']}/{m['eligible_words']} replaceable words swapped ({m['replaced_share']:.1%})"
        )
        if self.kind == "squad":
            line += f"; answers exact: {m['answers_kept']}/{m['answers_checked']}"
        return line


def check_resources(settings: AugmentConfig) -> None:
    """The vectors, masked LM or WordNet the method needs are there (cheap checks, before any work)."""
    if settings.needs_vectors:
        from distill.augment.vectors import vectors_location

        vectors_location(settings.vectors)
    if settings.needs_mlm:
        from distill.models.loading import load_tokenizer

        load_tokenizer(settings.mlm)
    if settings.method == "synonym":
        from distill.augment.synonyms import WordNetSynonyms

        WordNetSynonyms(settings.candidates)


def detect_kind(path: Path) -> Kind:
    return "squad" if file_kind(path) == ".json" else "classification"


# --------------------------------------------------------------------------- reading and checking


@dataclass(frozen=True)
class AugmentSource:
    """Validated data to augment: a SQuAD object, or rows with the columns to augment."""

    kind: Kind
    squad: dict[str, Any] | None = None
    columns: list[str] | None = None  # all columns, in order (classification)
    rows: list[dict[str, Any]] | None = None
    text_columns: list[str] | None = None

    @classmethod
    def from_squad(cls, squad: dict[str, Any]) -> AugmentSource:
        return cls("squad", squad=squad)

    @classmethod
    def from_rows(cls, columns: list[str], rows: list[dict[str, Any]], text_columns: list[str]) -> AugmentSource:
        return cls("classification", columns=columns, rows=rows, text_columns=text_columns)


def read_input(path: Path, settings: AugmentConfig, text_columns: list[str]) -> AugmentSource:
    """Read and check a file before any model loads: bad input fails in a second, naming the file."""
    if detect_kind(path) == "squad":
        squad = read_json(path)
        dataset = parse_squad(squad, source=str(path), check_answer_spans=True)
        ids = {qa["id"] for qa in dataset.questions()}
        for qid in ids:
            base, _, k = qid.rpartition("-aug")
            if base in ids and k.isdigit() and 1 <= int(k) <= settings.factor:
                raise DataError(f"{path}: question id {qid} already exists; augmented ids would collide")
        return AugmentSource.from_squad(squad)
    frame = read_frame(path)
    for column in text_columns:
        if column not in frame.columns:
            raise DataError(f"{path}: no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    if len(frame) == 0:
        raise DataError(f"{path}: dataset is empty: no rows")
    rows = frame.to_dict("records")
    for number, row in enumerate(rows, start=1):
        for column in text_columns:
            if not isinstance(row[column], str) or not row[column].strip():
                raise DataError(f"{path}: row {number}: column {column!r} is empty or not text")
    return AugmentSource.from_rows([str(c) for c in frame.columns], rows, text_columns)


def _check_output(input_path: Path, output_path: Path, kind: Kind) -> None:
    if output_path.resolve() == input_path.resolve():
        raise DataError(f"{output_path}: output would overwrite the input")
    if output_path.is_dir():
        raise DataError(f"{output_path}: is a directory, expected a file path")
    out_kind = file_kind(output_path)
    if kind == "squad" and out_kind != ".json":
        raise DataError(f"{output_path}: SQuAD input is written as .json or .json.gz")
    if kind == "classification" and out_kind not in (".tsv", ".csv", ".jsonl"):
        raise DataError(f"{output_path}: unsupported output type (use .tsv, .csv or .jsonl, optionally .gz)")


# --------------------------------------------------------------------------- units and workers


def _units(data: AugmentSource, seed: int) -> list[tuple]:
    if data.kind == "squad":
        return [("squad", paragraph, unit, seed) for unit, paragraph in enumerate(paragraphs(data.squad))]
    rows = data.rows
    return [("rows", rows[i : i + CHUNK], i, data.text_columns, seed) for i in range(0, len(rows), CHUNK)]


def _vocabulary(data: AugmentSource, settings: AugmentConfig) -> set[str]:
    """Every word a neighbour may be asked for (one table, built before any unit runs)."""
    if data.kind == "squad":
        texts = [p["context"] for p in paragraphs(data.squad)]
        if settings.augment_questions:
            texts += [qa["question"] for p in paragraphs(data.squad) for qa in p["qas"]]
    else:
        texts = [row[c] for row in data.rows for c in data.text_columns]
    return {w.text.lower() for text in texts for w in replaceable_words(text)}


_AUGMENTER: AnswerPreservingAug | None = None  # one per worker process


def _init_worker(settings: AugmentConfig, neighbours: Any, threads: int | None) -> None:
    global _AUGMENTER
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _AUGMENTER = AnswerPreservingAug(settings, neighbours=neighbours)


def _run_unit(unit: tuple) -> tuple[list[dict[str, Any]], UnitStats]:
    assert _AUGMENTER is not None
    if unit[0] == "squad":
        _, paragraph, index, seed = unit
        return augment_paragraph(_AUGMENTER, paragraph, index, seed)
    _, rows, first, columns, seed = unit
    return augment_rows(_AUGMENTER, rows, first, columns, seed)


def _results(units: list[tuple], settings: AugmentConfig, neighbours: Any) -> Iterator[tuple[list, UnitStats]]:
    if settings.workers == 1:
        _init_worker(settings, neighbours, None)
        yield from map(_run_unit, units)
        return
    # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
    threads = max(1, (os.cpu_count() or 1) // settings.workers)
    context = multiprocessing.get_context("spawn")
    with context.Pool(settings.workers, initializer=_init_worker, initargs=(settings, neighbours, threads)) as pool:
        yield from pool.imap(_run_unit, units, chunksize=1)


# --------------------------------------------------------------------------- the whole file


def augment_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    settings: AugmentConfig,
    *,
    seed: int,
    text_columns: list[str] | None = None,
    progress: Progress | None = None,
) -> AugmentResult:
    """Augment a SQuAD (.json/.json.gz) or sentence (.tsv/.csv/.jsonl, .gz) file into `output_path`.

    `seed` applies when `settings.seed` is None. `text_columns` are the sentence columns to
    augment (default: `sentence`); labels and other columns are copied.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    _check_output(input_path, output_path, detect_kind(input_path))
    data = read_input(input_path, settings, text_columns or ["sentence"])
    if settings.workers > 1:
        # A model that fails to load in a pool initializer makes the pool respawn workers forever:
        # fail here instead. In one process the load itself raises the same one-line error.
        check_resources(settings)
    return augment_to_file(data, output_path, settings, seed=seed, progress=progress, started=started)


def augment_to_file(
    data: AugmentSource,
    output_path: Path,
    settings: AugmentConfig,
    *,
    seed: int,
    progress: Progress | None = None,
    started: float | None = None,
) -> AugmentResult:
    """Augment validated data and write it to `output_path` (atomically, once everything succeeded)."""
    started = time.perf_counter() if started is None else started
    seed = settings.seed if settings.seed is not None else seed
    kind = data.kind
    neighbours = None
    if settings.needs_vectors:
        from distill.augment.vectors import NeighbourTable, load_vectors

        vectors = load_vectors(settings.vectors, limit=settings.vector_vocab_size)
        neighbours = NeighbourTable.build(vectors, _vocabulary(data, settings), settings.candidates)
    units = _units(data, seed)
    total_in = len(units) if kind == "squad" else len(data.rows)
    stats = UnitStats()
    outputs = []
    for produced, unit_stats in _results(units, settings, neighbours):
        outputs.append(produced)
        stats.add(unit_stats)
        if progress is not None:
            progress(stats.units_in, total_in)
    _write(output_path, data, outputs)
    return AugmentResult(kind, str(output_path), stats, time.perf_counter() - started, settings.keep_original)


def _write(path: Path, data: AugmentSource, outputs: list[list[dict[str, Any]]]) -> None:
    if data.kind == "classification":
        write_records(path, data.columns, [row for chunk in outputs for row in chunk])
        return
    produced = iter(outputs)
    articles = [
        {**article, "paragraphs": [p for _ in article["paragraphs"] for p in next(produced)]}
        for article in data.squad["data"]
    ]
    atomic_write_text(path, json.dumps({**data.squad, "data": articles}, ensure_ascii=False))
