"""configs/tiny.yaml as users run it: augmentation, two chained stages with baselines, ONNX exports, report.

The run is the session's one `distill run` against a real `prefect server start` (conftest.py),
which test_flow_run_page.py also opens in a browser.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from distill.reporting.files import FINAL_STUDENT, LEADERBOARD_CSV, LOSS_PLOT, METRIC_PLOT, REPORT_MD
from distill.reporting.report import COST_COLUMNS
from flows.progressive import progressive_distillation
from tests.flows.conftest import tiny_config
from tests.tiny_chain_run import TEST_TIMEOUT_S, TinyChainRun

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)
MODELS = [
    "teacher",
    "tiny-small",
    "tiny-small-baseline",
    "tiny-smaller",
    "tiny-smaller-baseline",
    "tiny-smaller-onnx",
    "tiny-smaller-onnx-int8",
]


def test_tiny_chain_report_export_and_stage_two_only_rerun(tiny_chain_run: TinyChainRun) -> None:
    config = tiny_config(tiny_chain_run.artifact_root)
    outcome = tiny_chain_run.summary
    stages = {s["name"]: s for s in outcome["stages"]}
    assert all(s["status"] == "completed" for s in stages.values())

    # Stage 2 learned from stage 1's distilled student, not from the original teacher.
    manifest = json.loads((Path(stages["distill_tiny-smaller"]["uri"]) / "manifest.json").read_text())
    stage_one = json.loads((Path(stages["distill_tiny-small"]["uri"]) / "manifest.json").read_text())
    assert stage_one["upstream"]["teacher"] != manifest["upstream"]["teacher"]
    assert manifest["upstream"]["augmented"] == stage_one["upstream"]["augmented"]  # augmented once, shared
    augment = stages["augment_training_data"]["metrics"]
    assert augment["answers_kept"] == augment["answers_checked"] > 0
    assert augment["output_questions"] == 2 * 352  # 352 generated training questions, original + 1 copy
    assert stages["distill_tiny-small"]["metrics"]["train_questions"] == 2 * 352
    assert stages["baseline_tiny-small"]["metrics"]["train_questions"] == 352  # baselines: original data

    rows = outcome["leaderboard"]
    assert [row["model"] for row in rows] == MODELS
    for row in rows:
        for column in ("f1", "exact", "HasAns_f1", "NoAns_f1", "delta_vs_teacher", *COST_COLUMNS):
            assert row[column] is not None, (row["model"], column)
    assert {row["model"]: row["taught_by"] for row in rows if row["role"] == "distilled"} == {
        "tiny-small": "teacher",
        "tiny-smaller": "tiny-small",
    }
    assert all(row["lift_vs_baseline"] is not None for row in rows if row["role"] == "distilled")

    # The final student exported in both formats, each checked against PyTorch on the eval questions, then scored
    # and timed in onnxruntime like every other model.
    by_model = {row["model"]: row for row in rows}
    student, fp32, int8 = (by_model[name] for name in ("tiny-smaller", "tiny-smaller-onnx", "tiny-smaller-onnx-int8"))
    assert (fp32["role"], fp32["format"], fp32["precision"]) == ("exported", "onnx", "fp32")
    assert (int8["role"], int8["format"], int8["precision"]) == ("exported", "onnx-int8", "int8")
    assert student["format"] == "pytorch" and student["latency_runtime"] == "torch"
    assert fp32["latency_runtime"] == int8["latency_runtime"] == "onnxruntime"
    assert fp32["parameters"] == int8["parameters"] == student["parameters"]
    assert int8["size_on_disk_mb"] < fp32["size_on_disk_mb"]
    assert fp32["f1"] == student["f1"]  # the same logits to 1e-6: the same answers
    assert fp32["delta_vs_source"] == 0 and int8["delta_vs_source"] == round(int8["f1"] - student["f1"], 6)
    fp32_check = stages["export_tiny-smaller-onnx"]["metrics"]
    assert fp32_check["check_max_abs_diff"] <= config.export.max_abs_diff
    assert fp32_check["check_rows"] == 60 and fp32_check["check_agreement"] == 1.0
    int8_check = stages["export_tiny-smaller-onnx-int8"]["metrics"]
    assert int8_check["check_agreement"] >= config.export.min_agreement

    report_dir = Path(outcome["report_dir"])
    for name in (LEADERBOARD_CSV, METRIC_PLOT, LOSS_PLOT, REPORT_MD):
        assert (report_dir / name).stat().st_size > 0
    assert (report_dir / METRIC_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((report_dir / LEADERBOARD_CSV).read_text().splitlines()) == 1 + len(MODELS)
    assert "tiny-smaller-onnx-int8" in (report_dir / REPORT_MD).read_text()  # the exports are in the report too

    # The exported final student is a plain Hugging Face folder: Auto classes load it and it answers.
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from distill.qa.answer import answer_questions

    exported = report_dir / FINAL_STUDENT
    model = AutoModelForQuestionAnswering.from_pretrained(exported)
    assert model.config.num_hidden_layers == 1
    context = "the red fox lives in the old mill and eats honey."
    [answer] = answer_questions(model, AutoTokenizer.from_pretrained(exported), [("what does the fox eat?", context)])
    assert answer["answer"] == "" or answer["answer"] in context

    # The exports beside it answer through onnxruntime, with the same windowing and post-processing; the fp32 graph
    # gives PyTorch's answers. Plain onnxruntime loads it too, with dynamic batch and sequence axes.
    import onnxruntime

    questions = [("what does the fox eat?", context), ("where does the fox live?", context * 8)]
    expected = answer_questions(model, AutoTokenizer.from_pretrained(exported), questions)
    onnx_folder = report_dir / f"{FINAL_STUDENT}-onnx"
    got = answer_questions(onnx_folder, None, questions)
    assert [a["answer"] for a in got] == [a["answer"] for a in expected]
    assert [a["null_odds"] for a in got] == pytest.approx([a["null_odds"] for a in expected], abs=1e-4)
    int8_answers = answer_questions(report_dir / f"{FINAL_STUDENT}-onnx-int8", None, questions)
    assert all(a["answer"] == "" or a["answer"] in text for a, (_, text) in zip(int8_answers, questions, strict=True))
    session = onnxruntime.InferenceSession(str(onnx_folder / "model.onnx"), providers=["CPUExecutionProvider"])
    encoded = AutoTokenizer.from_pretrained(onnx_folder)(["a b", "a longer second question"], [context] * 2,
                                                          padding=True, return_tensors="np")  # fmt: skip
    start, end = session.run(["start_logits", "end_logits"], {i.name: encoded[i.name] for i in session.get_inputs()})
    assert start.shape == end.shape == encoded["input_ids"].shape

    # Changing only stage 2's temperature re-runs stage 2's prediction step (and its evaluation) alone;
    # another augmentation worker count gives the same bytes, so augmentation stays cached too.
    second = config.stages[1].model_copy(
        update={"prediction_layer": config.stages[1].prediction_layer.model_copy(update={"temperature": 4.0})}
    )
    faster = config.augmentation.model_copy(update={"workers": 2})
    changed = config.model_copy(update={"stages": [config.stages[0], second], "augmentation": faster})
    with temporary_settings(updates={PREFECT_API_URL: tiny_chain_run.server.api_url}):
        rerun = {s["name"]: s["status"] for s in progressive_distillation(changed)["stages"]}
        APILogWorker.drain_all()  # its last log lines reach the server before the session stops it
    assert {name for name, status in rerun.items() if status == "completed"} == {
        "distill_tiny-smaller",
        "evaluate_tiny-smaller",
        *(f"{step}_tiny-smaller-{fmt}" for step in ("export", "evaluate") for fmt in ("onnx", "onnx-int8")),
    }
