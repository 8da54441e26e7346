"""`training.devices: 2` through the teacher's Prefect task on the real server: the task launches torchrun, the
stage completes and is cached like any other, and rank 0's progress lines are in the task run's log.

The tiny QA teacher trains with length-grouped batches, so this also runs the QA path on two processes
(tests/distill/test_ddp.py compares weights on classification).
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from prefect import flow

from distill.errors import DistillError
from distill.store.artifacts import StageDirectory
from tasks import compute
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


def test_a_two_device_stage_holds_two_gpu_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`compute_slot(devices=2)` holds the locks of two GPUs it sees while the stage runs, and refuses to start
    with fewer (stand-in GPU ids: the machine has none)."""
    monkeypatch.setenv(compute.DEVICE_LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(compute, "visible_devices", lambda: ["gpu-a", "gpu-b"])

    def held(device: str) -> bool:
        with open(tmp_path / f"{device}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False

    with compute.compute_slot(devices=2):
        assert held("gpu-a") and held("gpu-b")
    assert not held("gpu-a") and not held("gpu-b")
    monkeypatch.setattr(compute, "visible_devices", lambda: ["gpu-a"])
    with pytest.raises(DistillError, match="^this stage needs 2 GPUs; this process sees 1$"):
        with compute.compute_slot(devices=2):
            pass
