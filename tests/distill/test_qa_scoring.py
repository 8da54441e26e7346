"""Evaluation's QA figures are the official SQuAD v2.0 script's on the files evaluation writes.

For random logits, on v1.1 and v2 data, at any no-answer threshold, tuned on validation
data or not: the metrics of the evaluate stage's path (`evaluate_qa` + `write_qa_predictions`)
equal `distill score` on the written files, and equal a plain transcription of the
official script (tests/distill/official_squad_v2.py) on them.
"""

from __future__ import annotations

import json
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from distill.config import QADataConfig
from distill.data.squad import SquadDataset, parse_squad
from distill.data.synthetic import synthetic_squad
from distill.evaluation.evaluate import evaluate_qa
from distill.qa.postprocess import NO_SPAN_NULL_ODDS
from distill.qa.scoring import TUNED_KEYS
from distill.stages.evaluate import write_qa_predictions
from tests.cli.runner import cli
from tests.distill.official_squad_v2 import evaluate_files


class RandomQAModel(torch.nn.Module):
    """Random start/end logits, the same for the same window: each row of input ids seeds its own generator.

    `levels` rounds logits onto a coarse grid so scores and odds tie; `cls_bias` moves the
    no-answer score, so some questions abstain at any threshold and some never do.
    """

    def __init__(self, seed: int, cls_bias: float, levels: int | None) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # forward_in_batches reads the device off a parameter
        self.seed, self.cls_bias, self.levels = seed, cls_bias, levels

    def forward(self, input_ids: torch.Tensor, **_: Any) -> dict[str, torch.Tensor]:
        starts, ends = [], []
        for row in input_ids.tolist():
            rng = np.random.default_rng([self.seed, zlib.crc32(np.asarray(row, dtype=np.int64).tobytes())])
            logits = rng.normal(scale=3.0, size=(2, len(row)))
            if self.levels is not None:
                logits = np.round(logits * self.levels / 3.0)
            logits[:, 0] += self.cls_bias + rng.normal()  # CLS, the no-answer slot, sits first for BERT
            starts.append(logits[0])
            ends.append(logits[1])
        as_tensor = lambda rows: torch.tensor(np.stack(rows), dtype=torch.float32)  # noqa: E731
        return {"start_logits": as_tensor(starts), "end_logits": as_tensor(ends)}


def squad(seed: int, version: str) -> SquadDataset:
    """Generated SQuAD (v2: some questions unanswerable; v1.1: those removed)."""
    obj = synthetic_squad(articles=2, paragraphs=2, facts=3, seed=seed)
    if version == "1.1":
        for article in obj["data"]:
            for paragraph in article["paragraphs"]:
                paragraph["qas"] = [qa for qa in paragraph["qas"] if qa["answers"]]
    return parse_squad(obj, source=f"synthetic-{seed}-v{version}")


DATA = {version: (squad(1, version), squad(2, version)) for version in ("1.1", "2.0")}


def distill_score(
    data: Path,
    predictions: Path,
    na_probs: Path | None,
    threshold: float,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> dict:
    """`distill score DATA PREDICTIONS [--na-prob-file NA --na-prob-thresh T]`, run in this process."""
    args = ["score", str(data), str(predictions)]
    if na_probs is not None:
        args += ["--na-prob-file", str(na_probs), "--na-prob-thresh", repr(threshold)]
    code, out, err = cli(args, monkeypatch, capsys)
    assert code in (0, None), err
    return json.loads(out)


@settings(
    max_examples=100,
    deadline=None,
    # cli() resets what it changes in monkeypatch and capsys on every call, so sharing them across examples is safe.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    version=st.sampled_from(["1.1", "2.0"]),
    with_negative=st.sampled_from([None, None, False]),  # None: from the data, as configs default
    tuned=st.booleans(),
    seed=st.integers(0, 2**16),
    cls_bias=st.sampled_from([-6.0, 0.0, 3.0, 8.0]),
    levels=st.sampled_from([None, 2, 6]),
    n_best_size=st.sampled_from([1, 5, 20]),
    max_answer_length=st.sampled_from([1, 3, 30]),
)
def test_metrics_are_the_official_script_on_the_written_files(
    tiny_tokenizer: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: st.DataObject,
    version: str,
    with_negative: bool | None,
    tuned: bool,
    seed: int,
    cls_bias: float,
    levels: int | None,
    n_best_size: int,
    max_answer_length: int,
) -> None:
    dataset, validation = DATA[version]
    model = RandomQAModel(seed, cls_bias, levels)

    def evaluate(threshold: float):  # noqa: ANN202
        settings = QADataConfig(
            eval="unused",
            max_seq_length=48,
            doc_stride=16,  # several windows per question
            n_best_size=n_best_size,
            max_answer_length=max_answer_length,
            version_2_with_negative=with_negative,
            null_score_diff_threshold=threshold,
        )
        return evaluate_qa(
            model, tiny_tokenizer, dataset, settings, batch_size=8, validation=validation if tuned else None
        )

    # Thresholds anywhere, and exactly on a question's odds (abstain only when the odds exceed it).
    all_odds = sorted(evaluate(0.0).predictions.null_odds.values())
    threshold = data.draw(st.just(0.0) | st.floats(-30, 30) | st.sampled_from(all_odds), label="threshold")
    evaluation = evaluate(threshold)
    metrics = evaluation.metrics
    is_v2 = version == "2.0" and with_negative is not False
    abstaining = sum(odds > threshold for odds in all_odds) if is_v2 else 0
    event("abstains: " + ("none" if abstaining == 0 else "all" if abstaining == len(all_odds) else "some"))

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        write_qa_predictions(evaluation, out)
        data_file = out / "data.json"
        data_file.write_text(json.dumps(dataset.to_json()))
        na_probs = out / "null_odds.json" if is_v2 else None
        assert (out / "null_odds.json").exists() == is_v2  # v1.1: nothing abstains, so no na-prob file
        # Spans, never abstentions: "" only where no window offers a valid span, whatever the odds and threshold,
        # so the best-threshold sweep can count every span.
        spans, odds = json.loads((out / "predictions.json").read_text()), evaluation.predictions.null_odds
        assert all((text == "") == (odds[qid] == NO_SPAN_NULL_ODDS) for qid, text in spans.items())
        official = evaluate_files(data_file, out / "predictions.json", na_probs, threshold if is_v2 else 1.0)
        scored = distill_score(data_file, out / "predictions.json", na_probs, threshold, monkeypatch, capsys)
        assert scored == official
        assert {key: metrics[key] for key in official} == official
        if not is_v2:
            assert "null_threshold" not in metrics and not any(key.startswith("tuned_") for key in metrics)
            return
        assert metrics["null_threshold"] == threshold
        if not tuned:
            assert not any(key.startswith("tuned_") for key in metrics)
            return
        # The tuned threshold is the official best_f1_thresh on the written validation files ...
        validation_file = out / "validation.json"
        validation_file.write_text(json.dumps(validation.to_json()))
        on_validation = evaluate_files(
            validation_file, out / "validation_predictions.json", out / "validation_null_odds.json"
        )
        assert metrics["validation_best_f1"] == on_validation["best_f1"]
        assert metrics["validation_best_f1_thresh"] == on_validation["best_f1_thresh"]
        validation_odds = json.loads((out / "validation_null_odds.json").read_text())
        abstain_everywhere = 100.0 * on_validation.get("NoAns_total", 0) / on_validation["total"]
        if on_validation["best_f1"] > abstain_everywhere:
            assert metrics["tuned_null_threshold"] == on_validation["best_f1_thresh"]
        else:
            # Nothing beat abstaining everywhere: the official 0.0 (meant for probabilities) is replaced by a
            # threshold below every odds value, which abstains everywhere and so scores the sweep's best.
            assert metrics["tuned_null_threshold"] < min(validation_odds.values())
            at_validation = evaluate_files(
                validation_file,
                out / "validation_predictions.json",
                out / "validation_null_odds.json",
                metrics["tuned_null_threshold"],
            )
            assert at_validation["f1"] == on_validation["best_f1"]
        # ... and the tuned figures are the official script's on the eval files at that threshold.
        at_tuned = evaluate_files(data_file, out / "predictions.json", na_probs, metrics["tuned_null_threshold"])
        assert {key: metrics[f"tuned_{key}"] for key in TUNED_KEYS} == {key: at_tuned[key] for key in TUNED_KEYS}


def _v2_pair() -> SquadDataset:
    """One answerable and one unanswerable question."""
    context = "Paris is the capital of France."
    qas = [
        {
            "id": "has",
            "question": "Capital?",
            "answers": [{"text": "Paris", "answer_start": 0}],
            "is_impossible": False,
        },
        {"id": "none", "question": "King?", "answers": [], "is_impossible": True},
    ]
    return parse_squad(
        {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}, source="mem"
    )


@pytest.mark.parametrize(
    ("spans", "odds", "abstains_everywhere"),
    [
        # A wrong span on the answerable question and low odds on the unanswerable one: answering never helps,
        # so the best is to abstain everywhere, which the official 0.0 would not do (it answers "none").
        ({"has": "France", "none": "Paris"}, {"has": 3.0, "none": -2.0}, True),
        # A right span with low odds: answering it beats abstaining; the official threshold is kept.
        ({"has": "Paris", "none": "France"}, {"has": 3.0, "none": 5.0}, False),
    ],
)
def test_tuned_threshold_means_what_the_sweep_found(
    spans: dict[str, str], odds: dict[str, float], abstains_everywhere: bool
) -> None:
    from distill.evaluation.metrics.squad import score_squad
    from distill.qa.postprocess import QAPredictions
    from distill.qa.scoring import tuned_threshold

    dataset, predictions = _v2_pair(), QAPredictions(best_spans=spans, null_odds=odds)
    on_validation = score_squad(dataset, spans, odds, na_prob_thresh=0.0)
    threshold = tuned_threshold(on_validation, predictions)
    if abstains_everywhere:
        assert on_validation["best_f1_thresh"] == 0.0  # the official value
        assert score_squad(dataset, spans, odds, na_prob_thresh=0.0)["f1"] < on_validation["best_f1"]
        assert threshold < min(odds.values())
    else:
        assert threshold == on_validation["best_f1_thresh"] == 3.0
    # Either way, applying the tuned threshold scores what the sweep found best.
    assert score_squad(dataset, spans, odds, na_prob_thresh=threshold)["f1"] == on_validation["best_f1"]
