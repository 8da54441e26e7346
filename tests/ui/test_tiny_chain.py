"""configs/tiny.yaml as users run it: augmentation, two chained stages with baselines, report and export.

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
MODELS = ["teacher", "tiny-small", "tiny-small-baseline", "tiny-smaller", "tiny-smaller-baseline"]


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

    report_dir = Path(outcome["report_dir"])
    for name in (LEADERBOARD_CSV, METRIC_PLOT, LOSS_PLOT, REPORT_MD):
        assert (report_dir / name).stat().st_size > 0
    assert (report_dir / METRIC_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((report_dir / LEADERBOARD_CSV).read_text().splitlines()) == 1 + len(MODELS)

    # The exported final student is a plain Hugging Face folder: Auto classes load it and it answers.
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from distill.qa.answer import answer_questions

    exported = report_dir / FINAL_STUDENT
    model = AutoModelForQuestionAnswering.from_pretrained(exported)
    assert model.config.num_hidden_layers == 1
    context = "the red fox lives in the old mill and eats honey."
    [answer] = answer_questions(model, AutoTokenizer.from_pretrained(exported), [("what does the fox eat?", context)])
    assert answer["answer"] == "" or answer["answer"] in context

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
    }
