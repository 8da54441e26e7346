"""The Prefect UI in headless Chromium: the tiny chain's flow run shows every stage and the leaderboard.

Selenium drives Debian's `chromium` through its `chromium-driver` (same version, installed by
.ci/run). Outside CI the test skips when they are missing; in CI it fails instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_chain_run import TEST_TIMEOUT_S, TinyChainRun
from tests.ui.pages import artifact_titles, heading, open_tab, shown_table, shown_task_runs, wait_for

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)

# What a person reads in the flow run's "Task Runs" tab: one task run per stage of configs/tiny.yaml, each named
# by its stage (distill.stages.identity); the report task gets Prefect's default, its name and a short id.
STAGE_TASK_RUNS = [
    "finetune-teacher",
    "evaluate-teacher",
    "augment-training-data",
    *(
        f"{step}-{stage}"
        for stage in ("tiny-small", "tiny-smaller")
        for step in ("intermediate", "distill", "evaluate", "baseline")
    ),
    "evaluate-tiny-small-baseline",
    "evaluate-tiny-smaller-baseline",
    *(f"{step}-tiny-smaller-{fmt}" for step in ("export", "evaluate") for fmt in ("onnx", "onnx-int8")),
    r"report-\w+",
]


def match_stages(names: list[str]) -> dict[str, str | None]:
    """Each expected task run pattern -> the one shown name it matches (None when none does)."""
    return {pattern: next((n for n in names if re.fullmatch(pattern, n)), None) for pattern in STAGE_TASK_RUNS}


def test_flow_run_page_shows_every_stage_and_the_leaderboard(
    browser: Any, tiny_chain_run: TinyChainRun, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    flow_run = f"{tiny_chain_run.server.url}/runs/flow-run/{tiny_chain_run.flow_run_id}"
    browser.get(flow_run)
    wait_for(browser, lambda d: "progressive-distillation" in heading(d)[0], f"the flow run page {flow_run}", tmp_path)
    assert heading(browser)[1] == "Completed"

    # Every stage reported its task run to the server, and each finished.
    open_tab(browser, "Task Runs", tmp_path)
    wait_for(
        browser,
        lambda d: all(match_stages(list(shown_task_runs(d))).values()),
        lambda: (
            "task runs for "
            + ", ".join(p for p, name in match_stages(list(shown_task_runs(browser))).items() if name is None)
        ),
        tmp_path,
    )
    shown = shown_task_runs(browser)
    assert len(shown) == len(STAGE_TASK_RUNS), sorted(shown)
    assert set(shown.values()) == {"completed"}, shown
    task_runs_shot = tmp_path / "flow-run-task-runs.png"
    browser.save_screenshot(str(task_runs_shot))

    # The Artifacts tab lists the leaderboard (and each stage's metrics); its page shows the table the run wrote.
    open_tab(browser, "Artifacts", tmp_path)
    wanted = {"leaderboard", "report"} | {
        f"{stage}-metrics" for stage in ("finetune-teacher", "augment-training-data", "distill-tiny-smaller")
    }
    wait_for(browser, lambda d: artifact_titles(d) >= wanted, f"the artifacts {sorted(wanted)}", tmp_path)
    artifacts_shot = tmp_path / "flow-run-artifacts.png"
    browser.save_screenshot(str(artifacts_shot))

    card = (
        "//a[starts-with(@href, '/artifacts/artifact/')]"
        "[.//*[contains(@class, 'artifact-card__title')][normalize-space()='leaderboard']]"
    )
    browser.find_element(By.XPATH, card).click()
    expected = tiny_chain_run.summary["leaderboard"]
    table = wait_for(
        browser, lambda d: len(shown_table(d)) == len(expected) and shown_table(d), "the leaderboard table", tmp_path
    )
    assert [(row["model"], row["role"]) for row in table] == [(row["model"], row["role"]) for row in expected]
    assert [float(row["f1"]) for row in table] == [round(row["f1"], 4) for row in expected]
    leaderboard_shot = tmp_path / "leaderboard.png"
    browser.save_screenshot(str(leaderboard_shot))
    print(f"screenshots: {task_runs_shot}, {artifacts_shot}, {leaderboard_shot}")
