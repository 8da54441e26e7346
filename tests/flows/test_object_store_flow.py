"""The flow with `artifact_root: s3://...` (moto's S3 server, an emulator: tests/s3_server.py) on the real Prefect
server: a second run on another node (an empty local cache) finds the stages Cached and recomputes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from distill.store.artifacts import remote_store, resolve_root
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
