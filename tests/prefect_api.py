"""What a real Prefect server recorded, read through its API: shared by the flow, task and deployment tests.

Reads go to the server the current settings point at (PREFECT_API_URL, or the session's harness).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)

T = TypeVar("T")


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float = 0.5) -> T:
    """Call `read` until `done` holds for what it returned or `timeout` seconds pass; the last value read.

    Logs and states reach the API shortly after they happen (in batches, as events), so tests wait for them.
    """
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(interval)
        value = read()
    return value


def flow_run(flow_run_id: Any) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def task_run(task_run_id: Any) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_task_run(task_run_id)


def flow_run_logs(flow_run_id: Any) -> list[str]:
    """The messages of a flow run and its task runs."""
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def flow_run_artifacts(flow_run_id: Any) -> dict[str, Any]:
    """A flow run's artifacts by key."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact for artifact in artifacts}


def child_flow_runs(parent_flow_run_id: Any) -> list[Any]:
    """The subflow runs a flow run started."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_flow_run_id]))
        )


def task_runs(flow_run_id: Any) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def deployments() -> dict[str, Any]:
    """Every deployment on the server, by name."""
    with get_client(sync_client=True) as client:
        return {deployment.name: deployment for deployment in client.read_deployments()}
