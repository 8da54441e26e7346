"""A run as a new user meets it: watched live from the URL it prints, killed with `kill -9`, shown Crashed, resumed.

One scenario, on a fresh PREFECT_HOME and without PREFECT_API_URL, because each step needs the one
before it (and a server start is the slow part):
1. `distill run` on a terminal (a pseudo-terminal: the bars are drawn only there) starts its own server
   with the UI and prints the run's URL; headless Chromium opens it and sees the flow run Running, its
   teacher training task running, and readable progress lines (step, epoch, loss, samples/s, ETA).
   The terminal shows a bar for the running stage and not the per-step log lines.
2. `kill -9` of that process: its server is gone within seconds (no orphan), the run leaves a checkpoint.
3. `distill ui` on the same PREFECT_HOME: the automation marks the dead run Crashed (the window is
   shortened to 45 s here through DISTILL_CRASH_AFTER_SECONDS; the default is 90 s), and the page says so.
4. `distill run` again finds the `distill ui` server by itself and resumes from the checkpoint. Every
   run is killed once it has shown what it should, so the test takes as long on a fast machine as on a
   slow one, whatever the training's length.

The page's screenshots are kept in DISTILL_SCREENSHOT_DIR when it is set (`make screenshots` does, for the
README).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from distill.training.checkpoints import latest_valid_checkpoint
from tests.flows.conftest import REPO_ROOT, write_tiny_variant
from tests.prefect_api import poll
from tests.tiny_chain_run import free_port
from tests.ui.pages import WINDOW, heading, open_tab, shown_task_runs, wait_for

pytestmark = pytest.mark.timeout(1500)

CRASH_AFTER_S = 45  # > the 30 s heartbeat; the default, 90 s, would make the test wait twice as long
SCREEN = (1280, 1150)  # the README's screenshots: the run's graph and its first log lines
STARTUP_S = 240  # a fresh database is migrated first; beside other work a start has taken minutes
STEP_LINE = re.compile(r"finetune-teacher: step \d+/\d+ \(\d+%\) \| epoch [\d.]+ \| loss [\d.]+ .*samples/s \| ETA \w+")


class TerminalRun:
    """A command on a pseudo-terminal (160 columns), its output collected by a thread."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=REPO_ROOT
        )
        os.close(slave)
        self._master, self._chunks = master, []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # the terminal closed: every process on it has exited
                return
            if not data:
                return
            self._chunks.append(data)

    @property
    def output(self) -> str:
        """What the terminal received, escape sequences removed."""
        text = b"".join(self._chunks).decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n")

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        pytest.fail(f"{pattern!r} not printed within {timeout:.0f} s; the terminal shows:\n{self.output[-3000:]}")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # exited, not yet reaped


def _flow_run(api_url: str, flow_run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api_url}/flow_runs/{flow_run_id}", timeout=10)
    response.raise_for_status()
    return response.json()


def _page_text(driver: Any) -> str:
    return driver.execute_script(
        "return (document.querySelector('.p-layout-default__content') ?? document.body).innerText"
    )


def _keep(driver: Any, name: str, shots: Path) -> None:
    """A screenshot in the test's folder, and in DISTILL_SCREENSHOT_DIR (the README's) when that is set."""
    driver.save_screenshot(str(shots / name))
    if os.environ.get("DISTILL_SCREENSHOT_DIR"):
        target = Path(os.environ["DISTILL_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / name, target / name)


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A new user's environment: no Prefect server configured, a PREFECT_HOME of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DISTILL_CRASH_AFTER_SECONDS=str(CRASH_AFTER_S),
        HF_HUB_OFFLINE="1",
        TERM="xterm-256color",
    )
    return env


def test_a_run_is_watched_live_then_killed_shown_crashed_and_resumed(
    browser: Any, user_env: dict[str, str], tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    # The teacher alone, for 2,200 steps (far more than the test waits for on any machine: each run is killed),
    # a checkpoint every 20 steps.
    config = write_tiny_variant(tmp_path / "live.yaml", artifacts, stages=0, epochs=100, save_steps=20)
    distill = [sys.executable, "-m", "distill_cli.main"]

    # 1. The first run starts a server with the UI and says where to watch it.
    run = TerminalRun([*distill, "run", str(config)], user_env)
    ui_server = None
    browser.set_window_size(*SCREEN)
    try:
        page = run.wait_for(r"View at (http://127\.0\.0\.1:(\d+)/runs/flow-run/([0-9a-f-]{36}))", STARTUP_S)
        url, port, flow_run_id = page.group(1), int(page.group(2)), page.group(3)
        api_url = f"http://127.0.0.1:{port}/api"
        assert f"Prefect UI: http://127.0.0.1:{port} (a temporary server" in run.output
        [server_pid] = _children(run.process.pid)

        browser.get(url)
        wait_for(browser, lambda d: heading(d)[1] == "Running", f"the running flow run at {url}", tmp_path)
        open_tab(browser, "Task Runs", tmp_path)
        wait_for(
            browser,
            lambda d: shown_task_runs(d).get("finetune-teacher") == "running",
            lambda: f"finetune-teacher running (shown: {shown_task_runs(browser)})",
            tmp_path,
        )
        open_tab(browser, "Logs", tmp_path)
        wait_for(browser, lambda d: STEP_LINE.search(_page_text(d)), "a training progress line in the logs", tmp_path)
        _keep(browser, "live-run-logs.png", tmp_path)

        # The stage's progress artifact: its percentage, and the same figures in its description.
        def progress() -> list[dict[str, Any]]:
            query = {"artifacts": {"key": {"any_": ["finetune-teacher-progress"]}}}
            return httpx.post(f"{api_url}/artifacts/latest/filter", json=query, timeout=10).json()

        shown = poll(progress, lambda found: bool(found) and found[0]["data"] > 0, timeout=120)
        assert len(shown) == 1 and shown[0]["type"] == "progress", shown
        assert 0 < shown[0]["data"] < 100 and STEP_LINE.search(shown[0]["description"]), shown

        # The terminal: a bar for the running stage, its figures, and none of the per-step lines.
        run.wait_for(r"finetune-teacher\s+━+.*step \d+/\d+ .*samples/s .*ETA", 60)
        assert not re.search(r"INFO prefect\.task_runs: finetune-teacher: step", run.output), run.output[-2000:]

        # 2. kill -9 once a whole checkpoint is on disk (one being written is ignored on resume, rightly): the
        # server goes with the run.
        def checkpoint() -> Path | None:
            return latest_valid_checkpoint(next(artifacts.glob("finetune_teacher/*/checkpoints"), tmp_path / "none"))

        deadline = time.monotonic() + 300
        while checkpoint() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert checkpoint() is not None, "no complete checkpoint within 5 minutes"
        run.process.send_signal(signal.SIGKILL)
        run.process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while not _gone(server_pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _gone(server_pid), f"the run's server (pid {server_pid}) outlived the run"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{api_url}/health", timeout=2)

        # 3. A `distill ui` server on the same database marks the dead run Crashed.
        ui_port = free_port()
        ui_log = tmp_path / "distill-ui.log"
        with ui_log.open("w") as out:
            command = [*distill, "ui", "--port", str(ui_port)]
            ui_server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=user_env, cwd=REPO_ROOT)
        ui_api = f"http://127.0.0.1:{ui_port}/api"
        discovery = Path(user_env["PREFECT_HOME"]) / "distill-ui.json"
        deadline = time.monotonic() + STARTUP_S
        while not discovery.exists() and ui_server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert discovery.exists(), f"distill ui did not come up:\n{ui_log.read_text()[-2000:]}"
        assert f"Prefect UI: http://127.0.0.1:{ui_port}" in ui_log.read_text()
        killed = time.monotonic()
        state = _flow_run(ui_api, flow_run_id)["state"]
        while state["type"] != "CRASHED" and time.monotonic() - killed < CRASH_AFTER_S + 120:
            time.sleep(2)
            state = _flow_run(ui_api, flow_run_id)["state"]
        assert state["type"] == "CRASHED", state
        assert "heartbeat" in state["message"]
        crashed_page = f"http://127.0.0.1:{ui_port}/runs/flow-run/{flow_run_id}"
        browser.get(crashed_page)
        wait_for(browser, lambda d: heading(d)[1] == "Crashed", f"Crashed on {crashed_page}", tmp_path)
        wait_for(browser, lambda d: STEP_LINE.search(_page_text(d)), "the dead run's progress lines", tmp_path)
        _keep(browser, "crashed-run.png", tmp_path)

        # 4. Running it again reports to the `distill ui` server by itself and resumes the teacher from its checkpoint.
        rerun_log = tmp_path / "rerun.log"
        with rerun_log.open("w") as out:
            command = [*distill, "run", str(config)]
            rerun = subprocess.Popen(command, stdout=out, stderr=out, env=user_env, cwd=REPO_ROOT)
        resumed = re.compile(r"training: \d+ steps, resumed at step (\d+)")
        deadline = time.monotonic() + STARTUP_S + 120
        while not (found := resumed.search(rerun_log.read_text())) and time.monotonic() < deadline:
            assert rerun.poll() is None, rerun_log.read_text()[-3000:]
            time.sleep(0.5)
        assert found, rerun_log.read_text()[-3000:]
        assert int(found.group(1)) >= int(checkpoint().name.split("-")[1])
        assert f"Prefect UI: http://127.0.0.1:{ui_port} (`distill ui`)" in rerun_log.read_text()
        after = re.compile(r"finetune-teacher: step (\d+)/")
        while rerun.poll() is None and not any(
            int(step) > int(found.group(1)) for step in after.findall(rerun_log.read_text())
        ):
            time.sleep(0.5)
        rerun.kill()  # the resume is what this step shows; the rest of the training is not waited for
        rerun.wait(timeout=30)
        output = rerun_log.read_text()
        assert STEP_LINE.search(output) and "━" not in output  # not a terminal: readable lines, no bars
        runs = {r["id"]: r for r in httpx.post(f"{ui_api}/flow_runs/filter", json={"limit": 10}, timeout=10).json()}
        assert len(runs) == 2 and runs[flow_run_id]["state_type"] == "CRASHED", runs
    finally:
        browser.set_window_size(*WINDOW)
        if run.process.poll() is None:
            run.process.kill()
        if ui_server is not None:
            ui_server.send_signal(signal.SIGINT)  # Ctrl-C: the way a user stops it
            ui_server.wait(timeout=90)
    assert ui_server.returncode == 0
    assert not discovery.exists(), json.loads(discovery.read_text())
