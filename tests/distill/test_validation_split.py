"""The validation split: a seeded share held out of the training data, never overlapping train or eval.

QA holds out whole articles (no title, paragraph or question on both sides); classification
holds out distinct texts (every copy of a sentence on one side). The same seed gives the
same split whether or not the training data is needed, so evaluation rebuilds it exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.config import ClassificationDataConfig, DataSource, QADataConfig, RunConfig, parse_config
from distill.data.squad import SquadDataset
from distill.data.synthetic import synthetic_sentiment, synthetic_squad
from distill.data.task_data import describe, has_validation, load_classification_data, load_qa_data
from distill.errors import ConfigError, DataError
from distill.stages.plan import selection_metric

# --------------------------------------------------------------------------- QA


def squad_file(tmp_path: Path, articles: int = 20) -> str:
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(synthetic_squad(articles=articles, paragraphs=2, facts=2, seed=5)))
    return str(path)


def qa_config(tmp_path: Path, **fields: Any) -> QADataConfig:
    """20 articles in one file: the first 16 for training (a share of them held out), the last 4 for eval."""
    path = squad_file(tmp_path)
    return QADataConfig(train=path, eval=path, train_articles=16, eval_articles=4, **fields)


def parts(dataset: SquadDataset) -> dict[str, set[str]]:
    return {
        "titles": set(dataset.titles),
        "contexts": {p["context"] for a in dataset.articles for p in a["paragraphs"]},
        "ids": {qa["id"] for qa in dataset.questions()},
    }


def assert_disjoint(first: SquadDataset, second: SquadDataset) -> None:
    one, other = parts(first), parts(second)
    for kind in one:
        assert not one[kind] & other[kind], f"{kind} in both {first.source} and {second.source}"


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_qa_split_never_overlaps_and_follows_the_fraction(tmp_path: Path, seed: int) -> None:
    data = load_qa_data(qa_config(tmp_path, validation_fraction=0.25, validation_seed=seed))
    assert data.train is not None and data.validation is not None
    assert_disjoint(data.train, data.validation)
    assert_disjoint(data.validation, data.eval)
    assert_disjoint(data.train, data.eval)
    # Whole articles: the 16 training articles are shared out, 4 (a quarter) held out, each with all its questions.
    assert len(data.validation.articles) == 4 and len(data.train.articles) == 12
    assert set(data.train.titles) | set(data.validation.titles) == {f"Synthetic_{i}" for i in range(16)}
    assert data.train.num_questions + data.validation.num_questions == 16 * data.eval.num_questions // 4
    assert describe(data)["validation_articles"] == 4
    assert describe(data)["validation_questions"] == data.validation.num_questions


def test_qa_split_is_seeded(tmp_path: Path) -> None:
    def held_out(seed: int, **fields: Any) -> list[str]:
        validation = load_qa_data(qa_config(tmp_path, validation_fraction=0.25, validation_seed=seed, **fields))
        assert validation.validation is not None
        return validation.validation.titles

    assert held_out(3) == held_out(3)
    assert held_out(3) != held_out(4)
    # Independent of the training cap: capping the training questions does not move the validation set.
    assert held_out(3, max_train_samples=5) == held_out(3)


def test_qa_validation_is_the_same_without_training_data(tmp_path: Path) -> None:
    config = qa_config(tmp_path, validation_fraction=0.3, validation_seed=2)
    with_train, without = load_qa_data(config), load_qa_data(config, need_train=False)
    assert without.train is None
    assert with_train.validation is not None and without.validation is not None
    assert without.validation.examples() == with_train.validation.examples()


def test_qa_caps_apply_after_the_split(tmp_path: Path) -> None:
    uncapped = load_qa_data(qa_config(tmp_path, validation_fraction=0.25))
    capped = load_qa_data(qa_config(tmp_path, validation_fraction=0.25, max_validation_samples=3, max_train_samples=4))
    assert capped.validation is not None and uncapped.validation is not None and capped.train is not None
    assert capped.validation.num_questions == 3
    first_three = [qa["id"] for qa in uncapped.validation.questions()][:3]
    assert [qa["id"] for qa in capped.validation.questions()] == first_three
    assert capped.train.num_questions == 4
    assert_disjoint(capped.train, capped.validation)


def test_qa_validation_source_can_be_capped(tmp_path: Path) -> None:
    other = tmp_path / "validation.json"
    other.write_text(json.dumps(synthetic_squad(articles=2, paragraphs=2, facts=2, seed=6)))
    config = qa_config(tmp_path, validation=str(other), max_validation_samples=2)
    data = load_qa_data(config)
    assert data.validation is not None and data.validation.num_questions == 2


@pytest.mark.parametrize("fraction", [0.01, 0.99])
def test_qa_fraction_leaving_nothing_is_one_line_naming_the_field(tmp_path: Path, fraction: float) -> None:
    config = qa_config(tmp_path, validation_fraction=fraction)
    for need_train in (True, False):
        with pytest.raises(DataError, match=r"data\.validation_fraction .* of 16 training articles holds out") as e:
            load_qa_data(config, need_train=need_train)
        assert "\n" not in str(e.value) and "at least one on each side" in str(e.value)


# --------------------------------------------------------------------------- classification


def sentiment_file(tmp_path: Path, *, pairs: bool = False) -> str:
    """60 rows, each distinct sentence twice or three times (copies must land on one side)."""
    rows = synthetic_sentiment(rows=20, seed=4)
    header = "sentence\tsecond\tlabel\n" if pairs else "sentence\tlabel\n"
    lines = []
    for copy in range(3):
        for index, row in enumerate(rows):
            second = f"\t{'a' if copy else 'b'}" if pairs else ""  # one premise, two hypotheses
            if copy < 2 or index % 2:
                lines.append(f"{row['sentence']}{second}\t{row['label']}\n")
    path = tmp_path / ("pairs.tsv" if pairs else "sentences.tsv")
    path.write_text(header + "".join(lines))
    return str(path)


def eval_file(tmp_path: Path) -> str:
    """Sentences the generated training file never has."""
    path = tmp_path / "eval.tsv"
    path.write_text("sentence\tlabel\nan unseen gem of a film .\t1\na tired mess from start to end .\t0\n")
    return str(path)


def classification_config(tmp_path: Path, **fields: Any) -> ClassificationDataConfig:
    return ClassificationDataConfig(
        train=sentiment_file(tmp_path), eval=eval_file(tmp_path), labels=["0", "1"], **fields
    )


def keys(dataset: Any) -> set[tuple[str, str | None]]:
    pairs = dataset.text_pairs or [None] * len(dataset)
    return set(zip(dataset.texts, pairs, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_classification_split_never_shares_a_text(tmp_path: Path, seed: int) -> None:
    config = classification_config(tmp_path, validation_fraction=0.25, validation_seed=seed)
    data = load_classification_data(config)
    assert data.train is not None and data.validation is not None
    assert not set(data.train.texts) & set(data.validation.texts)
    distinct = set(data.train.texts) | set(data.validation.texts)
    assert len(set(data.validation.texts)) == round(0.25 * len(distinct))
    assert len(data.train) + len(data.validation) == 50  # every row on one side, copies included
    assert describe(data)["validation_rows"] == len(data.validation)


def test_classification_pairs_are_grouped_by_their_first_text(tmp_path: Path) -> None:
    """A premise with several hypotheses (MNLI, QNLI) goes to one side with all of them."""
    path = sentiment_file(tmp_path, pairs=True)
    evaluation = tmp_path / "eval-pairs.tsv"
    evaluation.write_text("sentence\tsecond\tlabel\nan unseen gem .\ta\t1\n")
    config = ClassificationDataConfig(
        train=path, eval=str(evaluation), text_pair_column="second", labels=["0", "1"], validation_fraction=0.3
    )
    data = load_classification_data(config)
    assert data.train is not None and data.validation is not None and data.validation.text_pairs is not None
    assert not keys(data.train) & keys(data.validation)
    assert not set(data.train.texts) & set(data.validation.texts)


def test_classification_split_is_seeded_and_apart_from_the_training_sample(tmp_path: Path) -> None:
    def held_out(**fields: Any) -> list[str]:
        validation = load_classification_data(classification_config(tmp_path, validation_fraction=0.25, **fields))
        assert validation.validation is not None
        return validation.validation.texts

    assert held_out(validation_seed=3) == held_out(validation_seed=3)
    assert held_out(validation_seed=3) != held_out(validation_seed=4)
    assert held_out(validation_seed=3, sample_seed=9, max_train_samples=10) == held_out(validation_seed=3)


def test_classification_validation_is_the_same_without_training_data(tmp_path: Path) -> None:
    config = classification_config(tmp_path, validation_fraction=0.4, validation_seed=5)
    with_train, without = load_classification_data(config), load_classification_data(config, need_train=False)
    assert without.train is None and with_train.validation is not None and without.validation is not None
    assert without.validation.texts == with_train.validation.texts
    assert without.validation.labels == with_train.validation.labels


def test_classification_caps(tmp_path: Path) -> None:
    config = classification_config(
        tmp_path, validation_fraction=0.25, max_validation_samples=4, max_train_samples=6, sample_seed=1
    )
    data = load_classification_data(config)
    assert data.train is not None and data.validation is not None
    assert len(data.validation) == 4 and len(data.train) == 6
    assert not set(data.train.texts) & set(data.validation.texts)
    assert load_classification_data(config).validation.texts == data.validation.texts  # seeded sample


def test_classification_validation_source(tmp_path: Path) -> None:
    validation = tmp_path / "validation.tsv"
    validation.write_text("sentence\tlabel\na fine film .\t1\na dull film .\t0\n")
    config = classification_config(tmp_path, validation=str(validation))
    data = load_classification_data(config, need_train=False)
    assert data.validation is not None and data.validation.texts == ["a fine film .", "a dull film ."]
    with pytest.raises(DataError, match="data.validation and data.eval are the same data"):
        load_classification_data(classification_config(tmp_path, validation=config.eval))


def test_classification_validation_shares_no_text_with_eval_or_train(tmp_path: Path) -> None:
    """Nothing chosen on validation may be a test sentence, or one the students trained on."""
    config = classification_config(tmp_path)
    like_eval = tmp_path / "like-eval.tsv"
    like_eval.write_text("sentence\tlabel\na new line .\t1\nan unseen gem of a film .\t0\n")
    with pytest.raises(DataError, match=r"data.validation and data.eval share 1 texts .*test set") as error:
        load_classification_data(config.model_copy(update={"validation": DataSource(path=str(like_eval))}))
    assert "\n" not in str(error.value) and "like-eval.tsv" in str(error.value)
    trained = synthetic_sentiment(rows=20, seed=4)[0]["sentence"]
    like_train = tmp_path / "like-train.tsv"
    like_train.write_text(f"sentence\tlabel\na new line .\t1\n{trained}\t0\n")
    with pytest.raises(DataError, match=r"data.validation and data.train share 1 texts"):
        load_classification_data(config.model_copy(update={"validation": DataSource(path=str(like_train))}))
    same_file = config.model_copy(update={"eval": config.train, "validation_fraction": 0.25})
    with pytest.raises(DataError, match=r"of 0 distinct training texts not in eval holds out 0"):
        load_classification_data(same_file)  # train and eval one file: every text is a test text


def test_classification_fraction_never_holds_out_an_eval_text(tmp_path: Path) -> None:
    """A training file that repeats test sentences keeps them on the training side."""
    config = classification_config(tmp_path)
    repeated = synthetic_sentiment(rows=20, seed=4)[:5]
    evaluation = tmp_path / "overlapping-eval.tsv"
    evaluation.write_text("sentence\tlabel\n" + "".join(f"{r['sentence']}\t{r['label']}\n" for r in repeated))
    for seed in range(5):
        data = load_classification_data(
            config.model_copy(
                update={"eval": DataSource(path=str(evaluation)), "validation_fraction": 0.5, "validation_seed": seed}
            )
        )
        assert data.validation is not None and data.train is not None
        assert not set(data.validation.texts) & set(data.eval.texts)
        assert set(data.eval.texts) <= set(data.train.texts)


@pytest.mark.parametrize("fraction", [0.01, 0.99])
def test_classification_fraction_leaving_nothing(tmp_path: Path, fraction: float) -> None:
    with pytest.raises(
        DataError, match=r"data\.validation_fraction .* of 20 distinct training texts not in eval holds out"
    ):
        load_classification_data(classification_config(tmp_path, validation_fraction=fraction), need_train=False)


# --------------------------------------------------------------------------- config


def run_config(data: dict[str, Any]) -> RunConfig:
    return parse_config({"name": "v", "data": data, "teacher": {"model": "minilm"}}, source="run.yaml")


QA = {"task": "qa", "train": "train.json", "eval": "eval.json"}
CLASSIFICATION = {"task": "classification", "train": "train.tsv", "eval": "eval.tsv"}


@pytest.mark.parametrize("base", [QA, CLASSIFICATION], ids=["qa", "classification"])
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"validation": "v.json", "validation_fraction": 0.1}, "set data.validation or data.validation_fraction"),
        ({"validation_fraction": 0}, r"data\.validation_fraction: .*greater than 0 \(got 0\)"),
        ({"validation_fraction": 1}, r"data\.validation_fraction: .*less than 1 \(got 1\)"),
        ({"validation_fraction": 0.2, "train": None}, r"validation_fraction needs data\.train"),
        ({"max_validation_samples": 5}, "max_validation_samples needs data.validation or data.validation_fraction"),
        ({"validation_fraction": 0.2, "max_validation_samples": 0}, r"data\.max_validation_samples: .*greater than"),
    ],
)
def test_bad_validation_settings_are_one_line(base: dict[str, Any], fields: dict[str, Any], expected: str) -> None:
    data = {key: value for key, value in {**base, **fields}.items() if value is not None}
    with pytest.raises(ConfigError, match=expected) as caught:
        run_config(data)
    assert str(caught.value).startswith("run.yaml: data") and "\n" not in str(caught.value)


def test_selection_metric_is_validation_when_the_run_has_it() -> None:
    assert selection_metric(run_config(QA)) == ("f1", "eval f1")
    assert selection_metric(run_config({**QA, "validation_fraction": 0.2})) == ("validation_f1", "validation f1")
    classification = run_config({**CLASSIFICATION, "validation": "v.tsv"})
    assert has_validation(classification.data)
    assert selection_metric(classification) == ("validation_accuracy", "validation accuracy")
