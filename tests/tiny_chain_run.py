"""End to end as a user runs it: `prefect server start`, `distill run configs/tiny.yaml` against it.

The tiny chain takes about a minute, so it runs once per session (`tiny_chain_run`, registered in
tests/conftest.py) and every test that needs a filled tiny chain reads that one run: its summary and
artifacts (ui/test_tiny_chain.py), the server's UI in headless Chromium (ui/test_flow_run_page.py) and
a fully cached re-run of its artifact root through a deployment and a worker (deployments/).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from distill_cli.server import free_port
from tests.flows.conftest import TINY, start_run

FLOW_NAME = "progressive-distillation"
# Bounds, not estimates: on 2 idle cores the server is healthy in ~15 s (a fresh SQLite database is
# migrated first) and the chain takes ~65 s; beside other work both have taken many times as long.
SERVER_STARTUP_TIMEOUT_S = 180
CHAIN_TIMEOUT_S = 1200
# Each test's pytest timeout: whichever test comes first also starts the server and runs the chain.
TEST_TIMEOUT_S = SERVER_STARTUP_TIMEOUT_S + CHAIN_TIMEOUT_S + 300


@dataclass(frozen=True)
class PrefectServer:
    url: str  # the UI, e.g. http://127.0.0.1:PORT

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


@dataclass(frozen=True)
class TinyChainRun:
    """One finished `distill run configs/tiny.yaml`: where it wrote, what it printed, its flow run id."""

    server: PrefectServer
    artifact_root: Path
    summary: dict
    flow_run_id: str


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_healthy(process: subprocess.Popen, health_url: str, log: Path, name: str = "prefect server") -> None:
    """Until `health_url` answers 200; a server that exits or stays unhealthy fails the test with its log's tail."""
    deadline = time.monotonic() + SERVER_STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode} before it was healthy:\n{tail(log)}")
        try:
            if httpx.get(health_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{name} not healthy at {health_url} after {SERVER_STARTUP_TIMEOUT_S} s:\n{tail(log)}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's whole process group, SIGKILL what is left after 20 s."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def prefect_ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """`prefect server start` on a free local port, with its own PREFECT_HOME and SQLite database."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_API_URL=f"{url}/api",  # what the browser calls; never an API URL from the caller's environment
    )
    log = home / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: teardown ends the server and anything it started
        )
    try:
        wait_healthy(process, f"{url}/api/health", log)
        yield PrefectServer(url)
    finally:
        stop(process)


def flow_run_ids(api_url: str, flow_name: str) -> list[str]:
    response = httpx.post(
        f"{api_url}/flow_runs/filter", json={"flows": {"name": {"any_": [flow_name]}}, "limit": 10}, timeout=30
    )
    response.raise_for_status()
    return [run["id"] for run in response.json()]


@pytest.fixture(scope="session")
def tiny_chain_run(tmp_path_factory: pytest.TempPathFactory, prefect_ui_server: PrefectServer) -> TinyChainRun:
    """`distill run configs/tiny.yaml --artifacts ... --summary-json ...`, reporting to the UI server."""
    out = tmp_path_factory.mktemp("tiny-chain")
    artifact_root, summary = out / "artifacts", out / "summary.json"
    process = start_run(
        TINY, prefect_ui_server.api_url, "--artifacts", str(artifact_root), "--summary-json", str(summary)
    )
    try:
        output, _ = process.communicate(timeout=CHAIN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"distill run did not finish in {CHAIN_TIMEOUT_S} s (its output is printed below)")
    finally:
        if process.poll() is None:  # timed out, or interrupted (pytest-timeout): end it, show how far it got
            process.kill()
            print(process.communicate()[0][-4000:])
    assert process.returncode == 0, f"distill run exited with {process.returncode}:\n{output[-4000:]}"
    [flow_run_id] = flow_run_ids(prefect_ui_server.api_url, FLOW_NAME)
    return TinyChainRun(prefect_ui_server, artifact_root, json.loads(summary.read_text()), flow_run_id)
