"""`training.devices: 2` through the teacher's Prefect task on the real server: the task launches torchrun, the
stage completes and is cached like any other, and rank 0's progress lines are in the task run's log.

The tiny QA teacher trains with length-grouped batches, so this also runs the QA path on two processes
(tests/distill/test_ddp.py compares weights on classification).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from distill.store.artifacts import StageDirectory
from tasks.stage import bind
from tasks.teacher import FINETUNE_TEACHER, finetune_teacher
from tests import prefect_api
from tests.flows.conftest import tiny_teacher


def test_teacher_task_trains_on_two_processes_and_logs_rank_zero_progress(tmp_path: Path, prefect_server: str) -> None:
    config = tiny_teacher(tmp_path / "artifacts", devices=2, batch_size=8, max_steps=2, logging_steps=1)
    assert FINETUNE_TEACHER.inputs({"config": config}).devices == 2  # the slots run_stage holds
    bound = bind(finetune_teacher, FINETUNE_TEACHER, config)
    states = []

    @flow(name="two-devices")
    def one_stage() -> None:
        states.append(bound(config, return_state=True))

    one_stage()
    (state,) = states
    assert state.is_completed(), state
    result = state.result()
    assert result.metrics["train_devices"] == 2 and result.metrics["train_steps"] == 2
    assert StageDirectory(tmp_path / "artifacts", "finetune_teacher", result.key).verify().ok
    logs = prefect_api.poll(
        lambda: prefect_api.flow_run_logs(state.state_details.flow_run_id),
        lambda messages: any("step 2/2" in m for m in messages),
        15,
    )
    assert any(m.endswith("training on 2 processes: 2 steps, from step 0") for m in logs), logs
    assert any("step 2/2 (100%)" in m and "[rank" not in m for m in logs), logs
