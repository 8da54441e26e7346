"""Whole files: worker-count independence, sentence formats, counts, and bad input that writes nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from distill.augment.runner import augment_file
from distill.config.augment import AugmentConfig
from distill.data.classification import read_classification
from distill.data.squad import read_squad
from distill.data.synthetic import synthetic_squad
from distill.errors import DataError


def _settings(tiny_mlm: Path, tiny_vectors: Path, **overrides: object) -> AugmentConfig:
    base = {"method": "tinybert", "factor": 3, "candidates": 5, "mlm": str(tiny_mlm), "vectors": str(tiny_vectors)}
    return AugmentConfig(**(base | overrides))


def test_output_bytes_do_not_depend_on_the_worker_count(tmp_path: Path, tiny_mlm: Path, tiny_vectors: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps(synthetic_squad(articles=3, paragraphs=3, facts=4, seed=5)))
    one = augment_file(source, tmp_path / "one.json", _settings(tiny_mlm, tiny_vectors), seed=7)
    two = augment_file(source, tmp_path / "two.json", _settings(tiny_mlm, tiny_vectors, workers=2), seed=7)
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    assert one.stats == two.stats
    other_seed = augment_file(source, tmp_path / "three.json", _settings(tiny_mlm, tiny_vectors), seed=8)
    assert (tmp_path / "three.json").read_bytes() != (tmp_path / "one.json").read_bytes()
    assert other_seed.stats.answers_kept == other_seed.stats.answers_checked > 0


def test_no_original_and_gzip_output(tmp_path: Path, squad_file: Path, tiny_mlm: Path, tiny_vectors: Path) -> None:
    settings = _settings(tiny_mlm, tiny_vectors, method="embedding", factor=2, keep_original=False)
    result = augment_file(squad_file, tmp_path / "out.json.gz", settings, seed=1)
    original, augmented = read_squad(str(squad_file)), read_squad(str(tmp_path / "out.json.gz"))
    assert augmented.num_questions == 2 * original.num_questions
    assert all(qa["id"].rsplit("-aug", 1)[1] in ("1", "2") for qa in augmented.questions())
    metrics = result.as_metrics()
    assert metrics["input_paragraphs"] == 6 and metrics["output_paragraphs"] == metrics["augmented_paragraphs"] == 12


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_sentences_keep_labels_and_format(
    suffix: str, tmp_path: Path, sentiment_tsv: Path, tiny_mlm: Path, tiny_vectors: Path
) -> None:
    output = tmp_path / f"out{suffix}"
    result = augment_file(sentiment_tsv, output, _settings(tiny_mlm, tiny_vectors, factor=2), seed=3)
    original = read_classification(str(sentiment_tsv))
    augmented = read_classification(str(output))
    assert len(augmented) == 3 * len(original) == result.stats.units_out
    assert augmented.labels == [label for label in original.labels for _ in range(3)]
    assert augmented.texts[0::3] == original.texts
    changed = sum(a != o for a, o in zip(augmented.texts[1::3], original.texts, strict=True))
    assert changed > len(original) // 2  # replace_prob 0.4 over several eligible words: most rows change
    assert 0.25 < result.replaced_share < 0.55


def test_quoted_sentences_survive_a_csv_round_trip(tmp_path: Path, tiny_mlm: Path, tiny_vectors: Path) -> None:
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as handle:
        csv.writer(handle).writerows([["sentence", "label"], ['the "red" fox, truly', "1"], ["a dull film", "0"]])
    augment_file(source, tmp_path / "out.csv", _settings(tiny_mlm, tiny_vectors, factor=1), seed=0)
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert rows[0]["sentence"] == 'the "red" fox, truly' and rows[1]["label"] == "1"


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (
            '{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "x", "question": "q", '
            '"answers": [{"text": "zz", "answer_start": 0}]}]}]}]}',
            "bad.json",
            "answer_start 0 does not match",
        ),
        ("sentence\tlabel\n", "empty.tsv", "dataset is empty"),
        ("text\tlabel\nhello\t1\n", "cols.tsv", "no column 'sentence'"),
        ("{not json", "broken.json", "malformed JSON at line 1"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_and_writes_nothing(
    content: str, name: str, message: str, tmp_path: Path, tiny_mlm: Path, tiny_vectors: Path
) -> None:
    source = tmp_path / name
    source.write_text(content)
    output = tmp_path / ("out" + "".join(source.suffixes))
    with pytest.raises(DataError, match=message) as error:
        augment_file(source, output, _settings(tiny_mlm, tiny_vectors), seed=0)
    assert str(source) in str(error.value) and "\n" not in str(error.value)
    assert not output.exists() and [p.name for p in tmp_path.iterdir()] == [name]


def test_output_kind_and_collisions_are_checked_first(tmp_path: Path, squad_file: Path, tiny_vectors: Path) -> None:
    settings = AugmentConfig(method="embedding", vectors=str(tiny_vectors), factor=2)
    with pytest.raises(DataError, match="written as .json"):
        augment_file(squad_file, tmp_path / "out.tsv", settings, seed=0)
    with pytest.raises(DataError, match="would overwrite the input"):
        augment_file(squad_file, squad_file, settings, seed=0)
    with pytest.raises(DataError, match="vectors '.*missing': no such file"):
        augment_file(squad_file, tmp_path / "o.json", settings.model_copy(update={"vectors": "missing"}), seed=0)
    squad = json.loads(squad_file.read_text())
    qa = squad["data"][0]["paragraphs"][0]["qas"][0]
    squad["data"][0]["paragraphs"][0]["qas"].append({**qa, "id": f"{qa['id']}-aug2"})
    squad_file.write_text(json.dumps(squad))
    with pytest.raises(DataError, match="augmented ids would collide"):
        augment_file(squad_file, tmp_path / "out.json", settings, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["squad.json"]
