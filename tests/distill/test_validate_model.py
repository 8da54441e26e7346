"""Scoring on validation: evaluate_model reports it beside eval as validation_*, validate_model gives the same alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.config import RunConfig, parse_config
from distill.data.synthetic import synthetic_sentiment, synthetic_squad
from distill.errors import DataError
from distill.stages import evaluate as evaluate_stage
from distill.stages.plan import model_artifact, plan_evaluate, plan_validate


@pytest.fixture(autouse=True)
def no_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Latency and throughput are measured in a process of their own and are not what these tests check.
    monkeypatch.setattr(evaluate_stage, "measure_speed", lambda request: {"latency_p50_ms": 1.0})


def run_config(tmp_path: Path, data: dict[str, Any]) -> RunConfig:
    return parse_config(
        {"name": "v", "artifact_root": str(tmp_path / "artifacts"), "data": data, "teacher": {"model": "minilm"}}
    )


def qa_data(tmp_path: Path, *, unanswerable: bool, **fields: Any) -> dict[str, Any]:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(synthetic_squad(articles=6, paragraphs=1, facts=2, unanswerable=unanswerable, seed=8)))
    return {
        "task": "qa",
        "train": str(path),
        "eval": str(path),
        "train_articles": 4,
        "eval_articles": 2,
        "max_seq_length": 64,
        "doc_stride": 16,
        **fields,
    }


def folders(tmp_path: Path) -> tuple[Path, Path]:
    evaluated, validated = tmp_path / "evaluated", tmp_path / "validated"
    evaluated.mkdir()
    validated.mkdir()
    return evaluated, validated


@pytest.mark.parametrize("unanswerable", [True, False], ids=["v2", "v1.1"])
def test_validate_model_gives_what_evaluate_model_reports(
    tmp_path: Path, tiny_qa_model: Path, unanswerable: bool
) -> None:
    config = run_config(tmp_path, qa_data(tmp_path, unanswerable=unanswerable, validation_fraction=0.5))
    evaluated, validated = folders(tmp_path)
    metrics = evaluate_stage.evaluate_model(
        plan_evaluate(config, model_artifact(str(tiny_qa_model)), "model"), evaluated
    )
    alone = evaluate_stage.validate_model(plan_validate(config, model_artifact(str(tiny_qa_model))), validated)

    assert alone == {key: value for key, value in metrics.items() if key.startswith("validation_")}
    expected = {"validation_exact", "validation_f1", "validation_total"}
    if unanswerable:
        expected |= {"validation_HasAns_f1", "validation_NoAns_f1", "validation_best_f1", "validation_best_f1_thresh"}
        assert "tuned_f1" in metrics  # the same validation predictions tune the no-answer threshold
    assert expected <= set(alone)
    assert alone["validation_total"] == len(json.loads((validated / "validation_predictions.json").read_text()))
    # The same validation files; validate_model predicts nothing on eval.
    names = ["validation_predictions.json"] + (["validation_null_odds.json"] if unanswerable else [])
    assert sorted(p.name for p in validated.iterdir()) == sorted(names)
    for name in names:
        assert (validated / name).read_text() == (evaluated / name).read_text()


def test_validate_model_without_validation_data_is_one_line(tmp_path: Path, tiny_qa_model: Path) -> None:
    config = run_config(tmp_path, qa_data(tmp_path, unanswerable=True))
    with pytest.raises(DataError, match="no validation set to score on") as caught:
        evaluate_stage.validate_model(plan_validate(config, model_artifact(str(tiny_qa_model))), tmp_path)
    assert "\n" not in str(caught.value)


def test_classification_validation_accuracy(tmp_path: Path, tiny_classifier: Path) -> None:
    path = tmp_path / "sentences.tsv"
    rows = synthetic_sentiment(rows=30, seed=2)
    path.write_text("sentence\tlabel\n" + "".join(f"{r['sentence']}\tLABEL_{r['label']}\n" for r in rows))
    evaluation = tmp_path / "eval.tsv"
    evaluation.write_text("sentence\tlabel\nan unseen gem of a film .\tLABEL_1\n")  # no training sentence
    data = {
        "task": "classification",
        "train": str(path),
        "eval": str(evaluation),
        "labels": ["LABEL_0", "LABEL_1"],
        "validation_fraction": 0.3,
    }
    config = run_config(tmp_path, data)
    evaluated, validated = folders(tmp_path)
    metrics = evaluate_stage.evaluate_model(
        plan_evaluate(config, model_artifact(str(tiny_classifier)), "model"), evaluated
    )
    alone = evaluate_stage.validate_model(plan_validate(config, model_artifact(str(tiny_classifier))), validated)
    assert {"accuracy", "validation_accuracy", "validation_macro_f1"} <= set(metrics)
    assert alone == {key: value for key, value in metrics.items() if key.startswith("validation_")}
    predictions = json.loads((validated / "validation_predictions.json").read_text())
    assert predictions == json.loads((evaluated / "validation_predictions.json").read_text())
    assert len(predictions) == alone["validation_total"] < len(rows)
