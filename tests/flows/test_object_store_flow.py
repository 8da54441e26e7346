"""The flow with `artifact_root: s3://...` (moto's S3 server, an emulator: tests/s3_server.py) on the real Prefect
server: a second run on another node (an empty local cache) finds the stages Cached and recomputes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest

from distill.stages.inputs import StageInput
from distill.store.artifacts import StageDirectory, remote_store, resolve_root, stage_directory
from flows.progressive import progressive_distillation
from tests import prefect_api
from tests.flows.conftest import tiny_teacher


def test_a_run_on_another_node_finds_the_stages_cached(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checkpoints at steps 2 and 4: copied to the store while training, removed there once the stage completes.
    config = tiny_teacher(tmp_path / "unused", save_steps=2).model_copy(update={"artifact_root": s3_root})
    store = remote_store(s3_root)
    bucket, _, prefix = store.prefix.partition("/")
    objects = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    # A versioned bucket keeps what was deleted: the checkpoints mirrored while training outlive their removal.
    objects.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "node-a"))
    first = progressive_distillation(config, return_state=True)
    outcome = first.result()
    assert {stage["name"]: stage["status"] for stage in outcome["stages"]} == {
        "finetune_teacher": "completed",
        "evaluate_teacher": "completed",
    }
    teacher_a = stage_dir(outcome["stages"], "finetune_teacher")
    key = teacher_a.name
    committed = store.read_manifest("finetune_teacher", key)
    assert committed == (teacher_a / "manifest.json").read_bytes()
    assert teacher_a.is_relative_to(tmp_path / "node-a")  # the body wrote into node A's cache
    checkpoints = f"{prefix}/finetune_teacher/{key}/checkpoints/"
    assert objects.list_objects_v2(Bucket=bucket, Prefix=checkpoints)["KeyCount"] == 0  # dropped at finalize
    # ... after being mirrored while training: every checkpoint, its marker last, under the attempt's prefix.
    versions = objects.list_object_versions(Bucket=bucket, Prefix=checkpoints).get("Versions", [])
    markers = {v["Key"][len(checkpoints) :] for v in versions if v["Key"].endswith("/_COMPLETE")}
    assert len({marker.split("/")[0] for marker in markers}) == 1, markers  # one attempt
    assert {marker.split("/")[1] for marker in markers} == {"checkpoint-2", "checkpoint-4"}, markers
    run_name = Path(outcome["report_dir"]).name
    assert store.fs.exists(f"{store.prefix}/runs/{run_name}/leaderboard.csv")  # the report, shared

    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "node-b"))
    assert not resolve_root(s3_root).exists()  # node B holds nothing yet
    second = progressive_distillation(config, return_state=True)
    again = second.result()
    assert {stage["status"] for stage in again["stages"]} == {"cached"}
    states = {run.name: run.state.name for run in prefect_api.task_runs(second.state_details.flow_run_id)}
    assert states["finetune-teacher"] == states["evaluate-teacher"] == "Cached", states
    teacher_b = stage_dir(again["stages"], "finetune_teacher")
    assert teacher_b.is_relative_to(tmp_path / "node-b") and teacher_b.name == key  # fetched into node B's cache
    # The same build, byte for byte (its build_id included): nothing was retrained.
    assert (teacher_b / "manifest.json").read_bytes() == committed
    assert (teacher_b / "model" / "model.safetensors").read_bytes() == (
        teacher_a / "model" / "model.safetensors"
    ).read_bytes()


def stage_dir(stages: list[dict], name: str) -> Path:
    return Path(next(stage["uri"] for stage in stages if stage["name"] == name))


class RefreshProbeInput(StageInput):
    """A stage that trains nothing: enough for tasks.stage to key, run and finalize it."""

    kind: ClassVar[str] = "refresh_probe"
    modules: ClassVar[tuple[str, ...]] = ("tasks.stage",)
    n: int = 1


def test_a_refresh_never_resumes_from_a_remote_checkpoint(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt elsewhere may upload a checkpoint just after a refresh discarded the stage: the refresh must
    start from scratch all the same."""
    from prefect import flow, task

    from tasks.stage import run_stage, stage_key

    inputs = RefreshProbeInput()
    key = stage_key(inputs)
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "elsewhere"))
    elsewhere = stage_directory(s3_root, inputs.kind, key)
    saved = elsewhere.checkpoints / "checkpoint-8"
    saved.mkdir(parents=True)
    (saved / "trainer_state.json").write_text('{"global_step": 8}')
    discard = StageDirectory.discard

    def discard_then_an_upload_elsewhere(directory: StageDirectory) -> None:
        discard(directory)
        elsewhere.checkpoint_saved(saved)  # the in-flight attempt's next checkpoint, after the discard

    monkeypatch.setattr(StageDirectory, "discard", discard_then_an_upload_elsewhere)
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "here"))
    found: list[str] = []

    def body(directory: StageDirectory) -> dict[str, Any]:
        found.extend(p.name for p in directory.checkpoints.glob("*"))
        (directory.path / "out.txt").write_text("recomputed")
        return {}

    @task(refresh_cache=True)
    def refreshed() -> Any:
        return run_stage(inputs, s3_root, body)

    @flow
    def refresh_flow() -> Any:
        return refreshed()

    result = refresh_flow()
    assert found == [] and result.key == key  # recomputed from scratch, though the store held checkpoint-8
