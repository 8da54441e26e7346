"""The Prefect UI in headless Chromium: the tiny chain's flow run shows every stage and the leaderboard.

Selenium drives Debian's `chromium` through its `chromium-driver` (same version, installed by
.ci/run). Outside CI the test skips when they are missing; in CI it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_chain_run import TEST_TIMEOUT_S, TinyChainRun

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
UI_TIMEOUT_S = 60  # bound on each wait; the first load and each tab take seconds, 40 s in all beside a benchmark
WINDOW = (1440, 2600)  # tall enough that the 18 task runs fit one screenshot
# The page is read with one JavaScript call at a time: the SPA re-renders as it polls the API,
# which would stale element handles held across calls.

Condition = Callable[[Any], Any]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium; skips (fails in CI) without chromium, chromium-driver or selenium."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [name for name, found in [("chromium", chromium), ("chromium-driver", chromedriver)] if not found]
    missing += [] if webdriver else ["selenium (pip install -e '.[dev]')"]
    if missing:
        reason = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver; .ci/run does)"
        if _in_ci():
            pytest.fail(f"CI must run the UI test: {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)  # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Condition, what: str | Callable[[], str], shots: Path) -> Any:
    """Poll `condition(driver)` until it is truthy; otherwise fail saying what is missing, with a screenshot."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, UI_TIMEOUT_S, 0.25, (StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        shot = shots / "timed-out.png"
        driver.save_screenshot(str(shot))
        text = driver.execute_script(
            "return (document.querySelector('.p-layout-default__content') ?? document.body).innerText"
        )
        pytest.fail(
            f"{what if isinstance(what, str) else what()}: not shown after {UI_TIMEOUT_S} s at "
            f"{driver.current_url} (screenshot {shot}); the page shows:\n{text[:1500]}"
        )


def open_tab(driver: Any, label: str, shots: Path) -> None:
    """Click one of the flow run page's tabs (Logs, Task Runs, Artifacts, ...) as a person would."""
    from selenium.webdriver.common.by import By

    tab = f"//li[contains(@class, 'p-tab')][normalize-space()='{label}']"
    wait_for(driver, lambda d: d.find_element(By.XPATH, tab), f"the '{label}' tab", shots).click()
    wait_for(
        driver,
        lambda d: "p-tab__active" in d.find_element(By.XPATH, tab).get_attribute("class"),
        f"the '{label}' tab selected",
        shots,
    )


def shown_task_runs(driver: Any) -> dict[str, str]:
    """Task run name -> state, as the Task Runs tab lists them."""
    items = driver.execute_script(
        "return [...document.querySelectorAll('.state-list-item')].map(item => "
        "[item.querySelector('.state-list-item__name a')?.textContent.trim(), item.className])"
    )
    return {name: re.search(r"state-list-item--(\w+)", classes).group(1) for name, classes in items if name}


def match_stages(names: list[str]) -> dict[str, str | None]:
    """Each expected task run pattern -> the one shown name it matches (None when none does)."""
    return {pattern: next((n for n in names if re.fullmatch(pattern, n)), None) for pattern in STAGE_TASK_RUNS}


def shown_table(driver: Any) -> list[dict[str, str]]:
    """The table artifact on an artifact page, as header -> cell text per row."""
    header, *rows = driver.execute_script(
        "const table = document.querySelector('table.p-table__table');"
        "if (!table) return [[]];"
        "return [[...table.querySelectorAll('thead th')].map(th => th.textContent.trim()),"
        " ...[...table.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(td => td.textContent.trim()))];"
    )
    return [dict(zip(header, row, strict=False)) for row in rows]


def heading(driver: Any) -> tuple[str, str]:
    """The flow run page's heading text and the state in its badge."""
    return driver.execute_script(
        "const h = document.querySelector('.page-heading-flow-run');"
        "return [h?.innerText ?? '', h?.querySelector('.state-badge')?.innerText.trim() ?? ''];",
    )


def artifact_titles(driver: Any) -> set[str]:
    return set(
        driver.execute_script(
            "return [...document.querySelectorAll('.artifact-card__title')].map(e => e.textContent.trim())"
        )
    )


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
