"""deployments/prefect.yaml registers against a real Prefect server with the intended entrypoints and schedules."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")


def test_deployments_register(prefect_server: str) -> None:
    env = dict(os.environ, PREFECT_API_URL=prefect_server, DISTILL_REPO=str(ROOT))
    pool = subprocess.run(
        [PREFECT, "work-pool", "create", "distill-cpu", "--type", "process"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pool.returncode == 0 or "already exists" in pool.stdout + pool.stderr, pool.stdout + pool.stderr
    deploy = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr

    from prefect.client.orchestration import get_client

    async def read() -> dict:
        async with get_client() as client:
            return {d.name: d for d in await client.read_deployments()}

    deployments = asyncio.run(read())
    assert {"tiny", "quickstart-nightly"} <= set(deployments)
    tiny, nightly = deployments["tiny"], deployments["quickstart-nightly"]
    assert tiny.entrypoint == "flows/progressive.py:distill_config_file"
    assert tiny.parameters == {"config_path": "configs/tiny.yaml"} and tiny.work_pool_name == "distill-cpu"
    assert nightly.parameters == {"config_path": "configs/quickstart.yaml"}
    [schedule] = nightly.schedules
    assert schedule.schedule.cron == "0 2 * * *" and schedule.active is False
    assert tiny.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)
