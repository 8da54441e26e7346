"""Classification readers: TSV (GLUE quoting), CSV, JSONL, gzip, label validation, sampling."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from distill.data.classification import encode_labels, infer_label_list, read_classification, sample_rows
from distill.errors import DataError


def test_glue_tsv_keeps_quote_characters(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text('sentence\tlabel\n" sweet , " she said \t1\nit \'s bad \t0\n')
    data = read_classification(str(path))
    assert data.texts == ['" sweet , " she said ', "it 's bad "]
    assert data.labels == ["1", "0"]


def test_csv_jsonl_and_gzip_agree(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text('text,y\n"a, b",pos\nc,neg\n')
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"text": "a, b", "y": "pos"}) + "\n\n" + json.dumps({"text": "c", "y": "neg"}) + "\n")
    from_csv = read_classification(str(tmp_path / "d.csv"), text_column="text", label_column="y")
    from_jsonl = read_classification(str(tmp_path / "d.jsonl.gz"), text_column="text", label_column="y")
    assert from_csv.texts == from_jsonl.texts == ["a, b", "c"]
    assert from_csv.labels == from_jsonl.labels == ["pos", "neg"]


def test_integer_labels_from_json_match_tsv_spelling(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"sentence": "x", "label": 1}\n{"sentence": "y", "label": 0}\n')
    assert read_classification(str(tmp_path / "d.jsonl")).labels == ["1", "0"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.tsv", "text\tlabel\nx\t1\n", r"a\.tsv: no column 'sentence' \(columns: text, label\)"),
        ("b.tsv", "sentence\tlabel\n", r"b\.tsv: dataset is empty"),
        ("c.jsonl", '{"sentence": "x", "label": 1}\n{oops\n', r"c\.jsonl: line 2: malformed JSON"),
        (
            "d.jsonl",
            '{"sentence": "x", "label": 1}\n{"sentence": null, "label": 0}\n',
            r"row 2: column 'sentence' is empty",
        ),
        ("e.parquet", "", "unsupported file type"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, name: str, content: str, expected: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=expected):
        read_classification(str(tmp_path / name))


def test_label_outside_set_names_row_and_value(sentiment_tsv: Path) -> None:
    data = read_classification(str(sentiment_tsv))
    assert infer_label_list(data) == ["0", "1"]
    assert encode_labels(data, ["0", "1"]) == [int(label) for label in data.labels]
    with pytest.raises(DataError, match=r"row 1: label '.' is not in the label set \['neg', 'pos'\]"):
        encode_labels(data, ["neg", "pos"])


def test_numeric_labels_sort_numerically(tmp_path: Path) -> None:
    (tmp_path / "d.tsv").write_text("sentence\tlabel\n" + "".join(f"s{i}\t{i}\n" for i in (10, 2, 9, 2)))
    assert infer_label_list(read_classification(str(tmp_path / "d.tsv"))) == ["2", "9", "10"]


def test_seeded_sample_is_python_random_shuffle(sentiment_tsv: Path) -> None:
    import random

    data = read_classification(str(sentiment_tsv))
    order = list(range(len(data)))
    random.Random(0).shuffle(order)
    sample = sample_rows(data, 7, 0)
    assert sample.texts == [data.texts[i] for i in order[:7]]
    assert sample_rows(data, 7, None).texts == data.texts[:7]
