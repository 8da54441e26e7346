"""Sentence classification data: GLUE-style TSV, CSV, JSONL (each optionally gzipped) or hub ids.

Labels are kept as strings as read ("0"/"1" for SST-2) and mapped to ids through one
label list, so a fine-tuned model's `id2label` says what each class means.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from distill.config import DataSource
from distill.data.sources import is_local, load_hub_split, local_path
from distill.errors import DataError
from distill.io import atomic_write_text, read_text


@dataclass(frozen=True)
class ClassificationDataset:
    """Parallel lists of texts (and optional second texts) and string labels."""

    texts: list[str]
    labels: list[str]
    source: str
    text_pairs: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: list[int], suffix: str) -> ClassificationDataset:
        return ClassificationDataset(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            source=f"{self.source}{suffix}",
            text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in indices],
        )


def read_classification(
    source: DataSource | str,
    *,
    text_column: str = "sentence",
    label_column: str = "label",
    text_pair_column: str | None = None,
    default_split: str = "train",
) -> ClassificationDataset:
    """Read a labelled sentence dataset; missing columns and empty files are one-line errors."""
    source = DataSource(path=source) if isinstance(source, str) else source
    if is_local(source.path):
        path = local_path(source)
        frame = read_frame(path)
        name = str(path)
    else:
        frame = load_hub_split(source, default_split).to_pandas()
        name = f"{source.path}[{source.split or default_split}]"
    columns = [text_column, label_column] + ([text_pair_column] if text_pair_column else [])
    for column in columns:
        if column not in frame.columns:
            raise DataError(f"{name}: no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    if len(frame) == 0:
        raise DataError(f"{name}: dataset is empty: no rows")
    for column in columns:
        missing = frame[column].isna()
        if missing.any():
            row = int(missing.to_numpy().nonzero()[0][0]) + 1
            raise DataError(f"{name}: row {row}: column {column!r} is empty")
    return ClassificationDataset(
        texts=[str(t) for t in frame[text_column]],
        labels=[_label_string(v) for v in frame[label_column]],
        source=name,
        text_pairs=[str(t) for t in frame[text_pair_column]] if text_pair_column else None,
    )


def _label_string(value: object) -> str:
    # JSON/hub labels arrive as ints (or floats like 1.0 from pandas); TSV labels as "1". One spelling.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def file_kind(path: Path) -> str:
    """'.tsv', '.csv', '.jsonl', '.json' (or another suffix), looking through a trailing '.gz'."""
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[-2] if suffixes and suffixes[-1] == ".gz" and len(suffixes) > 1 else (suffixes or [""])[-1]


def read_frame(path: Path) -> pd.DataFrame:
    """A TSV/CSV (every value a string) or JSONL file (values as typed) as a frame; errors name the file."""
    kind = file_kind(path)
    text = read_text(path)
    try:
        if kind == ".tsv":
            # GLUE TSVs are not quoted: a sentence may start with a quote character.
            return pd.read_csv(io.StringIO(text), sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
        if kind == ".csv":
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        if kind in (".jsonl", ".json"):
            return pd.DataFrame(_read_jsonl(text, path))
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: cannot parse {kind[1:].upper()}: {str(exc).strip()}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: dataset is empty: no rows") from None
    raise DataError(f"{path}: unsupported file type (use .tsv, .csv or .jsonl, optionally .gz)")


def _read_jsonl(text: str, path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {number}: malformed JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def write_records(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Write rows in the format `path` names (TSV unquoted as GLUE, CSV, JSONL; `.gz` allowed), atomically."""
    kind = file_kind(path)
    if kind == ".tsv":
        for number, row in enumerate(rows, start=1):
            for column in columns:
                value = str(row[column])
                if "\t" in value or "\n" in value or "\r" in value:
                    raise DataError(f"{path}: row {number}: column {column!r} holds a tab or newline; write .csv")
        lines = ["\t".join(columns)] + ["\t".join(str(row[c]) for c in columns) for row in rows]
        text = "\n".join(lines) + "\n"
    elif kind == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[row[c] for c in columns] for row in rows])
        text = buffer.getvalue()
    elif kind in (".jsonl", ".json"):
        text = "".join(json.dumps({c: row[c] for c in columns}, ensure_ascii=False) + "\n" for row in rows)
    else:
        raise DataError(f"{path}: unsupported file type (use .tsv, .csv or .jsonl, optionally .gz)")
    atomic_write_text(path, text)


# --------------------------------------------------------------------------- labels and sampling


def infer_label_list(dataset: ClassificationDataset) -> list[str]:
    """Sorted distinct labels; numeric labels sort numerically so '10' follows '9'."""
    distinct = set(dataset.labels)
    if len(distinct) < 2:
        raise DataError(f"{dataset.source}: needs at least two distinct labels, found {sorted(distinct)}")
    if all(label.lstrip("-").isdigit() for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def encode_labels(dataset: ClassificationDataset, label_list: list[str]) -> list[int]:
    """Label ids in `label_list` order; a label outside the set names its row and value."""
    index = {label: i for i, label in enumerate(label_list)}
    ids = []
    for row, label in enumerate(dataset.labels, start=1):
        if label not in index:
            raise DataError(f"{dataset.source}: row {row}: label {label!r} is not in the label set {label_list}")
        ids.append(index[label])
    return ids


def sample_rows(dataset: ClassificationDataset, limit: int | None, seed: int | None) -> ClassificationDataset:
    """The first `limit` rows, after a `random.Random(seed).shuffle` when a seed is given."""
    order = list(range(len(dataset)))
    suffix = ""
    if seed is not None:
        random.Random(seed).shuffle(order)
        suffix = f"[shuffled seed {seed}]"
    if limit is not None and limit < len(order):
        order = order[:limit]
        suffix += f"[first {limit}]"
    return dataset if not suffix else dataset.take(order, suffix)
