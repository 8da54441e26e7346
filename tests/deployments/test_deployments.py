"""The documented operator path, for real: deploy prefect.yaml (checking what registered), start a process
worker, trigger the tiny chain, watch it complete; and `distill serve`'s deployments.

The deployment runs on the artifact root of the session's finished tiny chain (tests/tiny_chain_run.py), as
a nightly re-run of an unchanged config does: the worker's flow run must find every stage in the cache that
another process, reporting to another server, filled. Computing the chain is tested there and in tests/flows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from distill.reporting.files import LEADERBOARD_CSV
from tests import prefect_api
from tests.tiny_chain_run import TEST_TIMEOUT_S, TinyChainRun

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")


def _prefect(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _state(flow_run_id: str) -> str:
    return prefect_api.flow_run(flow_run_id).state.type.value


def _stage_task_runs(flow_run_id: str) -> tuple[str, dict[str, str]]:
    """The deployment's flow run calls progressive_distillation as a subflow: that subflow run's name and its
    task runs (one per stage, and the report), each with its state's name (Completed, Cached, ...)."""
    [chain] = prefect_api.child_flow_runs(flow_run_id)
    return chain.name, {run.name: run.state.name for run in prefect_api.task_runs(chain.id)}


def _check_registered() -> None:
    """The deployments carry the intended entrypoint, parameters, pool, schedule and pull step."""
    deployments = prefect_api.deployments()
    assert {"tiny", "quickstart-nightly"} <= set(deployments)
    tiny, nightly = deployments["tiny"], deployments["quickstart-nightly"]
    assert tiny.entrypoint == "flows/progressive.py:distill_config_file"
    assert tiny.parameters == {"config_path": "configs/tiny.yaml"} and tiny.work_pool_name == "distill-cpu"
    assert nightly.parameters == {"config_path": "configs/quickstart.yaml"}
    [schedule] = nightly.schedules
    assert schedule.schedule.cron == "0 2 * * *" and schedule.active is False
    assert tiny.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)


@pytest.mark.timeout(TEST_TIMEOUT_S)  # the first user of tiny_chain_run starts its server and runs the chain
def test_deploy_worker_and_run_the_tiny_chain(
    prefect_server: str, tmp_path: Path, tiny_chain_run: TinyChainRun
) -> None:
    env = dict(
        os.environ,
        PREFECT_API_URL=prefect_server,
        DISTILL_REPO=str(ROOT),
        PREFECT_WORKER_QUERY_SECONDS="2",  # poll often: the test waits on it
        HF_HUB_OFFLINE="1",
    )
    pool = _prefect("work-pool", "create", "distill-cpu", "--type", "process", env=env)
    assert pool.returncode == 0 or "already exists" in pool.stdout + pool.stderr, pool.stdout + pool.stderr
    deploy = _prefect("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all", env=env)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    _check_registered()
    artifacts = tiny_chain_run.artifact_root
    triggered = _prefect(
        "deployment", "run", "distill-config-file/tiny", "--param", f"artifact_root={artifacts}", env=env
    )
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", triggered.stdout).group(1)

    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "distill-cpu"],
        env=env,
        cwd=tmp_path,  # the deployment's pull step must bring the run to the repository itself
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        state = prefect_api.poll(lambda: _state(flow_run_id), lambda s: s in final, 420, interval=3)
    finally:
        worker.terminate()
        try:
            output = worker.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:  # a worker that ignores SIGTERM must not hide why the run did not finish
            worker.kill()
            output = worker.communicate()[0]
    assert state == "COMPLETED", output[-4000:]
    # Every stage came from the cache; only the report (a new one, named after this flow run) was written.
    chain_run_name, states = _stage_task_runs(flow_run_id)
    assert len(states) == len(tiny_chain_run.summary["stages"]) + 1, states
    stages = {name: state for name, state in states.items() if not name.startswith("report-")}
    assert stages == dict.fromkeys(stages, "Cached"), states
    report_dir = artifacts / "runs" / chain_run_name
    rows = len(tiny_chain_run.summary["leaderboard"])  # 5 models and the final student's 2 exports
    assert len((report_dir / LEADERBOARD_CSV).read_text().splitlines()) == 1 + rows


def test_serve_builds_one_deployment_per_config_with_its_schedule() -> None:
    from deployments.serve import build_deployments

    tiny, quickstart = build_deployments([ROOT / "configs/tiny.yaml", ROOT / "configs/quickstart.yaml"], "0 2 * * *")
    assert (tiny.name, quickstart.name) == ("tiny", "quickstart")
    assert tiny.parameters == {"config_path": str(ROOT / "configs/tiny.yaml")}
    assert tiny.schedules[0].schedule.cron == "0 2 * * *"
