"""SQuAD reading, validation, by-article splits (train, validation, eval) and hub-row conversion."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pytest

from distill.config import QADataConfig
from distill.data.squad import cap_questions, from_hub_rows, parse_squad, read_squad, split_by_article
from distill.data.synthetic import synthetic_squad
from distill.data.task_data import data_fingerprint, load_qa_data
from distill.errors import DataError


def test_reads_json_and_gzip_identically(tmp_path: Path) -> None:
    obj = synthetic_squad(articles=2, seed=4)
    plain, zipped = tmp_path / "a.json", tmp_path / "a.json.gz"
    plain.write_text(json.dumps(obj))
    with gzip.open(zipped, "wt") as handle:
        json.dump(obj, handle)
    assert read_squad(str(plain)).examples() == read_squad(str(zipped)).examples()


def test_examples_are_flat_hf_rows(squad_file: Path) -> None:
    dataset = read_squad(str(squad_file))
    rows = dataset.examples()
    assert len(rows) == dataset.num_questions
    answerable = [r for r in rows if r["answers"]["text"]]
    assert answerable and len(answerable) < len(rows) and dataset.has_unanswerable
    for row in answerable:
        start = row["answers"]["answer_start"][0]
        assert row["context"][start : start + len(row["answers"]["text"][0])] == row["answers"]["text"][0]


def _broken(mutate) -> dict:  # noqa: ANN001
    obj = copy.deepcopy(synthetic_squad(articles=2, seed=5))
    mutate(obj)
    return obj


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda o: o.pop("data"), "expected an object with a 'data' list"),
        (lambda o: o["data"][1].pop("paragraphs"), r"data\[1\]: missing 'paragraphs'"),
        (lambda o: o["data"][0]["paragraphs"][1].pop("qas"), r"data\[0\]\.paragraphs\[1\]: missing 'qas'"),
        (lambda o: o["data"][0]["paragraphs"][0].update(context=5), r"paragraphs\[0\]\.context: expected str"),
        (
            lambda o: o["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=3),
            r"question syn-5-0-0-0: answer_start 3 does not match answer",
        ),
        (
            lambda o: o["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=-1),
            r"answer_start: expected a non-negative integer",
        ),
        (lambda o: o["data"][0]["paragraphs"][0]["qas"][1].update(id="syn-5-0-0-0"), "duplicate question id"),
        (lambda o: o["data"][0]["paragraphs"][0]["qas"][0].pop("answers"), "missing 'answers'"),
        (lambda o: o.update(data=[]), "dataset is empty"),
    ],
)
def test_malformed_squad_is_named_precisely(mutate, expected: str) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match=expected) as caught:
        parse_squad(_broken(mutate), source="file.json")
    assert str(caught.value).startswith("file.json: ")


def test_scoring_mode_skips_span_check() -> None:
    obj = _broken(lambda o: o["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=3))
    assert parse_squad(obj, source="x", check_answer_spans=False).num_questions > 0


def test_malformed_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"data": [\n  {"paragraphs": ]}')
    with pytest.raises(DataError, match=r"bad\.json: malformed JSON at line 2"):
        read_squad(str(path))


def test_missing_file_is_not_a_hub_lookup(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_squad(str(tmp_path / "absent.json"))


def test_split_by_count_takes_front_and_back() -> None:
    dataset = parse_squad(synthetic_squad(articles=5, seed=2), source="s")
    train, evaluation = split_by_article(dataset, 3, 2)
    assert train.titles == ["Synthetic_0", "Synthetic_1", "Synthetic_2"]
    assert evaluation.titles == ["Synthetic_3", "Synthetic_4"]
    assert train.num_questions + evaluation.num_questions == dataset.num_questions


def test_split_by_titles_and_overlap_is_rejected() -> None:
    dataset = parse_squad(synthetic_squad(articles=4, seed=2), source="s")
    train, evaluation = split_by_article(dataset, ["Synthetic_2", "Synthetic_0"], ["Synthetic_3"])
    assert train.titles == ["Synthetic_0", "Synthetic_2"]  # file order, not list order
    assert evaluation.titles == ["Synthetic_3"]
    with pytest.raises(DataError, match="train and eval articles overlap"):
        split_by_article(dataset, 3, 2)
    with pytest.raises(DataError, match="no article titled 'Nope'"):
        split_by_article(dataset, ["Nope"], 1)
    with pytest.raises(DataError, match="asked for 9 articles but the file has 4"):
        split_by_article(dataset, 9, None)


def test_cap_questions_keeps_file_order_and_leaves_source_intact() -> None:
    dataset = parse_squad(synthetic_squad(articles=2, seed=2), source="s")
    capped = cap_questions(dataset, 10)
    assert capped.num_questions == 10
    assert [q["id"] for q in capped.questions()] == [q["id"] for q in dataset.questions()][:10]
    assert dataset.num_questions > 10


def test_hub_rows_round_trip() -> None:
    dataset = parse_squad(synthetic_squad(articles=2, seed=6), source="s")
    rebuilt = from_hub_rows(dataset.examples(), source="hub")
    assert rebuilt.examples() == dataset.examples()
    assert rebuilt.titles == dataset.titles


def six_articles(tmp_path: Path, name: str = "dev.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(synthetic_squad(articles=6, paragraphs=1, facts=2, seed=3)))
    return path


def qa_config(tmp_path: Path, **fields: object) -> QADataConfig:
    path = str(six_articles(tmp_path))
    return QADataConfig(train=path, eval=path, train_articles=2, eval_articles=2, **fields)


def test_validation_from_the_training_file_continues_after_the_training_articles(tmp_path: Path) -> None:
    config = qa_config(tmp_path, validation=str(tmp_path / "dev.json"), validation_articles=2)
    data = load_qa_data(config)
    assert data.train.titles == ["Synthetic_0", "Synthetic_1"]
    assert data.validation.titles == ["Synthetic_2", "Synthetic_3"]  # train | validation | ... | eval
    assert data.eval.titles == ["Synthetic_4", "Synthetic_5"]
    # The evaluate stage loads no training data, and gets the same validation articles.
    assert load_qa_data(config, need_train=False).validation.titles == data.validation.titles
    by_title = qa_config(tmp_path, validation=str(tmp_path / "dev.json"), validation_articles=["Synthetic_3"])
    assert load_qa_data(by_title, need_train=False).validation.titles == ["Synthetic_3"]
    assert load_qa_data(qa_config(tmp_path)).validation is None


@pytest.mark.parametrize(
    ("articles", "separate_file", "fields"),
    [
        (["Synthetic_1", "Synthetic_2"], False, "data.validation_articles and data.train_articles overlap"),
        (3, False, "data.validation_articles and data.eval_articles overlap"),  # 2..4 reaches eval's 4
        (["Synthetic_5"], True, "data.validation and data.eval overlap"),  # a copy of the file: same questions
    ],
)
def test_validation_overlapping_train_or_eval_is_one_line_naming_the_fields(
    tmp_path: Path, articles: object, separate_file: bool, fields: str
) -> None:
    validation = str(six_articles(tmp_path, "copy.json")) if separate_file else str(tmp_path / "dev.json")
    config = qa_config(tmp_path, validation=validation, validation_articles=articles)
    for need_train in (True, False):
        with pytest.raises(DataError, match=fields) as caught:
            load_qa_data(config, need_train=need_train)
        assert "\n" not in str(caught.value) and "held-out questions" in str(caught.value)


def test_data_fingerprint_follows_the_validation_file(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    validation = six_articles(other, "validation.json")
    config = qa_config(tmp_path, validation=str(validation))
    before = data_fingerprint(config)
    assert before != data_fingerprint(qa_config(tmp_path))
    validation.write_text(json.dumps(synthetic_squad(articles=6, paragraphs=1, facts=2, seed=4)))
    assert data_fingerprint(config) != before
