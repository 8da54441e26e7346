"""The `distill` command end to end, as a user runs it: real processes, real files, real exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from distill.data.synthetic import synthetic_squad
from tests.cli.runner import distill


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("distill: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_score_prints_official_keys(squad_file: Path, tmp_path: Path) -> None:
    data = json.loads(squad_file.read_text())
    predictions = {
        qa["id"]: (qa["answers"][0]["text"] if qa["answers"] else "")
        for article in data["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    }
    (tmp_path / "p.json").write_text(json.dumps(predictions))
    (tmp_path / "n.json").write_text(json.dumps({qid: 0.5 for qid in predictions}))
    result = distill("score", squad_file, tmp_path / "p.json", "--na-prob-file", tmp_path / "n.json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert list(scores) == [
        "exact",
        "f1",
        "total",
        "HasAns_exact",
        "HasAns_f1",
        "HasAns_total",
        "NoAns_exact",
        "NoAns_f1",
        "NoAns_total",
        "best_exact",
        "best_exact_thresh",
        "best_f1",
        "best_f1_thresh",
    ]
    assert scores["exact"] == scores["f1"] == 100.0 and scores["total"] == len(predictions)


@pytest.mark.parametrize(
    ("predictions", "na_probs", "fragments"),
    [
        ("[1, 2]", None, ["p.json", "expected a JSON object mapping question id"]),
        ('{"x": 3}', None, ["p.json", "prediction for 'x' must be a string"]),
        ("{not json", None, ["p.json", "malformed JSON at line 1"]),
        ("{}", "{}", ["n.json", "no value for question"]),
    ],
)
def test_score_bad_input(
    squad_file: Path, tmp_path: Path, predictions: str, na_probs: str | None, fragments: list[str]
) -> None:
    (tmp_path / "p.json").write_text(predictions)
    args = ["score", squad_file, tmp_path / "p.json"]
    if na_probs is not None:
        data = json.loads(squad_file.read_text())
        first = data["data"][0]["paragraphs"][0]["qas"][0]["id"]
        (tmp_path / "p.json").write_text(json.dumps({first: ""}))
        (tmp_path / "n.json").write_text(na_probs)
        args += ["--na-prob-file", tmp_path / "n.json"]
    assert_user_error(distill(*args), *fragments)


def test_evaluate_qa_writes_predictions_that_score_the_same(
    tiny_qa_model: Path, squad_file: Path, tmp_path: Path
) -> None:
    out, odds, validation = tmp_path / "preds.json", tmp_path / "odds.json", tmp_path / "validation.json"
    validation.write_text(json.dumps(synthetic_squad(articles=2, paragraphs=2, facts=3, seed=5)))
    result = distill(
        "evaluate",
        "--model",
        tiny_qa_model,
        "--data",
        squad_file,
        "--max-seq-length",
        "32",
        "--doc-stride",
        "8",
        "--output",
        out,
        "--na-prob-output",
        odds,
        "--null-threshold",
        "-0.25",
        "--validation-data",
        validation,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "qa" and report["untrained_head"] is False
    metrics = report["metrics"]
    assert report["num_features"] > metrics["total"]  # long contexts were windowed
    # The official script on the written files, at the threshold the metrics record, prints the same figures.
    assert metrics["null_threshold"] == -0.25
    rescored = json.loads(distill("score", squad_file, out, "--na-prob-file", odds, "--na-prob-thresh", "-0.25").stdout)
    assert rescored == {key: metrics[key] for key in rescored}
    # And at the threshold tuned on --validation-data, the tuned_* figures.
    tuned = metrics["tuned_null_threshold"]
    at_tuned = json.loads(distill("score", squad_file, out, "--na-prob-file", odds, "--na-prob-thresh", tuned).stdout)
    assert (metrics["tuned_exact"], metrics["tuned_f1"]) == (at_tuned["exact"], at_tuned["f1"])


def test_evaluate_classification(tiny_classifier: Path, sentiment_tsv: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.json"
    result = distill(
        "evaluate", "--model", tiny_classifier, "--data", sentiment_tsv, "--output", out, "--max-samples", "25"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "classification" and report["labels"] == ["0", "1"]
    assert report["metrics"]["total"] == 25 and 0.0 <= report["metrics"]["accuracy"] <= 1.0
    assert len(json.loads(out.read_text())) == 25


def test_evaluate_bad_input_writes_nothing(tiny_qa_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    obj = synthetic_squad(articles=1, seed=0)
    obj["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    bad.write_text(json.dumps(obj))
    out = tmp_path / "preds.json"
    result = distill("evaluate", "--model", tiny_qa_model, "--data", bad, "--output", out)
    assert_user_error(result, "bad.json", "question syn-0-0-0-0: answer_start")
    assert not out.exists()
    assert_user_error(distill("evaluate", "--model", tmp_path / "nope", "--data", bad), "no such model folder")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(synthetic_squad(articles=1, seed=0)))
    assert_user_error(
        distill("evaluate", "--model", tiny_qa_model, "--data", good, "--validation-data", good, "--output", out),
        "--validation-data and --data overlap",
    )
    assert not out.exists()


def test_validate_prints_resolved_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: x\ndata: {task: qa, eval: '${NOPE_DIR:-/d}/dev.json'}\nteacher: {model: minilm}\n")
    result = distill("validate", config)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["data"]["eval"]["path"] == "/d/dev.json" and resolved["data"]["doc_stride"] == 128
    config.write_text("name: x\ndata: {task: qa, eval: d.json, doc_strid: 3}\nteacher: {model: minilm}\n")
    assert_user_error(distill("validate", config), "c.yaml", "data.doc_strid: unknown key")


@pytest.mark.data
def test_evaluate_untrained_minilm_on_real_dev(shared_data_dir: Path, minilm_path: str) -> None:
    result = distill(
        "evaluate",
        "--model",
        "minilm",
        "--data",
        shared_data_dir / "squad_v2" / "dev-v2.0.json.gz",
        "--max-samples",
        "24",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["untrained_head"] is True and "newly initialised head" in result.stderr
    metrics = report["metrics"]
    assert metrics["total"] == 24 and metrics["HasAns_total"] + metrics["NoAns_total"] == 24
    assert 0.0 <= metrics["f1"] <= 100.0 and metrics["exact"] <= metrics["f1"]
