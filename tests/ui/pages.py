"""Reading the Prefect UI in headless Chromium: waits that fail with a screenshot, tabs, headings, tables.

The page is read with one JavaScript call at a time: the SPA re-renders as it polls the API, which
would stale element handles held across calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

UI_TIMEOUT_S = 60  # bound on each wait; the first load and each tab take seconds, 40 s in all beside a benchmark
WINDOW = (1440, 2600)  # tall enough that the 18 task runs fit one screenshot

Condition = Callable[[Any], Any]


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
