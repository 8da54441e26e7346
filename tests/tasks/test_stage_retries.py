"""Retries on a real stage task against the real Prefect server: a transient failure is retried; a user
error (DistillError) and a bug fail at once, the bug with its traceback in the run's logs.

Only the stage body (the `distill` training function) is replaced, by one that fails as told; the task,
its retry options and condition, its caching and its stage directory are the product's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.runtime import task_run

import distill.stages.teacher
from distill.errors import DataError
from distill.store.artifacts import StageDirectory
from tasks.stage import STAGE_TASK_OPTIONS, bind
from tasks.teacher import FINETUNE_TEACHER, finetune_teacher
from tests import prefect_api
from tests.flows.conftest import tiny_config


def failing_body(failures: int, error: Exception) -> tuple[Callable[..., dict[str, Any]], list[int]]:
    """A stage body that raises `error` on its first `failures` attempts, then writes a file and succeeds."""
    attempts: list[int] = []

    def body(config: Any, stage: StageDirectory, **kwargs: Any) -> dict[str, Any]:
        attempts.append(task_run.run_count)  # Prefect's attempt number
        if len(attempts) <= failures:
            raise error
        (stage.path / "weights.bin").write_bytes(b"trained")
        return {"train_loss": 0.5}

    return body, attempts


def server_task_run(task_run_id: Any) -> Any:
    """The task run as the server records it, once it has reached a final state (states arrive as events)."""
    return prefect_api.poll(
        lambda: prefect_api.task_run(task_run_id), lambda run: run.state is not None and run.state.is_final(), 30
    )


def run_teacher_stage(config: Any) -> Any:
    """The teacher stage, bound as the flow binds it, run in a flow; its final state.

    Only the wait between attempts is dropped; the retry count and the product's retry rule stay.
    """
    bound = bind(finetune_teacher, FINETUNE_TEACHER, config).with_options(retry_delay_seconds=0)
    assert bound.retries == STAGE_TASK_OPTIONS["retries"] == 2
    assert bound.retry_condition_fn is STAGE_TASK_OPTIONS["retry_condition_fn"]
    states: list[Any] = []

    @flow(name="stage-retries")
    def one_stage() -> None:
        states.append(bound(config, return_state=True))  # a failed stage fails its state, not this flow

    one_stage()
    return states[0]


def test_transient_failures_are_retried_until_the_stage_succeeds(
    tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, attempts = failing_body(2, ConnectionResetError(104, "Connection reset by peer"))
    monkeypatch.setattr(distill.stages.teacher, "finetune_teacher", body)
    config = tiny_config(tmp_path / "artifacts")
    state = run_teacher_stage(config)
    assert state.is_completed() and attempts == [1, 2, 3]
    result = state.result()
    assert result.metrics["train_loss"] == 0.5 and result.metrics["stage_seconds"] >= 0
    # The manifest accounts for the failed attempts too; their log goes once the stage is complete.
    assert result.metrics["stage_attempts"] == 3
    assert result.metrics["stage_seconds_all_attempts"] >= result.metrics["stage_seconds"]
    directory = StageDirectory(tmp_path / "artifacts", "finetune_teacher", result.key)
    assert directory.verify().ok and not directory.attempts.exists()
    recorded = server_task_run(state.state_details.task_run_id)
    assert recorded.state.is_completed() and recorded.run_count == 3


def test_a_user_error_is_not_retried(tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body, attempts = failing_body(3, DataError("train.json: malformed JSON at line 3 column 1"))
    monkeypatch.setattr(distill.stages.teacher, "finetune_teacher", body)
    config = tiny_config(tmp_path / "artifacts")
    state = run_teacher_stage(config)
    assert state.is_failed() and attempts == [1]
    assert isinstance(state.result(raise_on_failure=False), DataError)
    assert not list((tmp_path / "artifacts" / "finetune_teacher").glob("*/_COMPLETE"))
    recorded = server_task_run(state.state_details.task_run_id)
    assert recorded.state.is_failed() and recorded.run_count == 1


def test_a_bug_is_not_retried_and_its_traceback_is_logged(
    tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, attempts = failing_body(3, ValueError("no training features"))
    monkeypatch.setattr(distill.stages.teacher, "finetune_teacher", body)
    state = run_teacher_stage(tiny_config(tmp_path / "artifacts"))
    assert state.is_failed() and attempts == [1]
    recorded = server_task_run(state.state_details.task_run_id)
    assert recorded.run_count == 1
    logs = prefect_api.poll(
        lambda: prefect_api.flow_run_logs(state.state_details.flow_run_id),
        lambda messages: any("Traceback" in m and "no training features" in m for m in messages),
        15,
    )
    assert any("Traceback" in m and "ValueError: no training features" in m for m in logs), logs
