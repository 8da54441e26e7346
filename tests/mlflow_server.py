"""A real `mlflow server` for the tests that track to MLflow: one per session (it takes ~15 s to start). Outside CI
the tests skip when mlflow is not installed; in CI they fail instead.

Registered in tests/conftest.py, like the Prefect UI server of tests/tiny_chain_run.py, whose helpers it shares.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.tiny_chain_run import free_port, stop, wait_healthy


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free loopback port with a SQLite store and an artifacts folder; yields its URI."""
    if importlib.util.find_spec("mlflow") is None:
        reason = "mlflow is not installed (pip install 'distill[tracking]'; make setup does)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI must run the MLflow tests: {reason}")
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    store = f"sqlite:///{home / 'mlflow.db'}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", store, "--artifacts-destination", str(home / "runs")]  # fmt: skip
    # The server's job runner (LLM evaluation jobs) starts a dozen worker processes these tests have no use for.
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = home / "server.log"
    with log.open("w") as out:
        # Its own process group: teardown ends the server and the uvicorn process it starts.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, f"{url}/health", log, "mlflow server")
        yield url
    finally:
        stop(process)
