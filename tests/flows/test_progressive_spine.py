"""The spine on configs/tiny.yaml: full run, cached re-run, recompute after damage, resume after kill -9,
and two concurrent runs that train each stage once."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

from distill.artifacts import COMPLETE, StageDirectory
from flows.progressive import progressive_distillation
from tests.flows.conftest import start_run, tiny_one_stage, write_tiny_variant


def statuses(stages: list[dict]) -> dict[str, str]:
    return {stage["name"]: stage["status"] for stage in stages}


def stage_dir(stages: list[dict], name: str) -> Path:
    return Path(next(stage["uri"] for stage in stages if stage["name"] == name))


def build_id(directory: Path) -> str:
    return json.loads((directory / "manifest.json").read_text())["build_id"]


ALL = {
    "finetune_teacher",
    "evaluate_teacher",
    "intermediate_tiny-small",
    "distill_tiny-small",
    "evaluate_tiny-small",
    "baseline_tiny-small",
    "evaluate_tiny-small-baseline",
}


def recomputed(stages: list[dict]) -> set[str]:
    assert set(statuses(stages)) == ALL
    return {name for name, status in statuses(stages).items() if status == "completed"}


def test_run_rerun_and_recompute_after_damage(tmp_path: Path) -> None:
    config = tiny_one_stage(tmp_path / "artifacts")
    outcome = progressive_distillation(config)
    first = outcome["stages"]
    assert recomputed(first) == ALL
    teacher_dir, eval_dir = stage_dir(first, "finetune_teacher"), stage_dir(first, "evaluate_teacher")
    assert (teacher_dir / "model" / "model.safetensors").is_file() and (teacher_dir / COMPLETE).is_file()
    assert not (teacher_dir / "checkpoints").exists()  # dropped once the stage is complete
    metrics = next(s["metrics"] for s in first if s["name"] == "evaluate_teacher")
    assert {"exact", "f1", "HasAns_f1", "NoAns_f1", "parameters", "latency_p50_ms", "throughput_per_s"} <= set(metrics)
    assert [row["model"] for row in outcome["leaderboard"]] == ["teacher", "tiny-small", "tiny-small-baseline"]
    assert all(row["f1"] is not None and row["parameters"] for row in outcome["leaderboard"])

    # Identical re-run: every stage Cached, nothing rebuilt.
    second = progressive_distillation(config)["stages"]
    assert recomputed(second) == set()
    assert build_id(teacher_dir) == build_id(stage_dir(second, "finetune_teacher"))

    # The teacher evaluation's directory deleted: only that evaluation recomputes.
    shutil.rmtree(eval_dir)
    assert recomputed(progressive_distillation(config)["stages"]) == {"evaluate_teacher"}

    # The teacher's _COMPLETE deleted: the teacher recomputes, and so does everything after it.
    (teacher_dir / COMPLETE).unlink()
    fourth = progressive_distillation(config)["stages"]
    assert recomputed(fourth) == ALL

    # A corrupted weight file fails the manifest check: recomputed, never served.
    weights = stage_dir(fourth, "distill_tiny-small") / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    fifth = progressive_distillation(config)["stages"]
    assert recomputed(fifth) == {"distill_tiny-small", "evaluate_tiny-small"}
    student = stage_dir(fifth, "distill_tiny-small")
    assert StageDirectory(student.parent.parent, "distill_prediction_layer", student.name).verify().ok


def test_refresh_recomputes_the_named_stage(tmp_path: Path) -> None:
    config = tiny_one_stage(tmp_path / "artifacts")
    before = progressive_distillation(config)["stages"]
    builds = {name: build_id(stage_dir(before, name)) for name in ("evaluate_teacher", "distill_tiny-small")}
    again = progressive_distillation(config, refresh=["evaluate"])["stages"]
    assert recomputed(again) == {"evaluate_teacher", "evaluate_tiny-small", "evaluate_tiny-small-baseline"}
    # Really rebuilt (a new build in the same directory), not the intact directory handed back again.
    assert build_id(stage_dir(again, "evaluate_teacher")) != builds["evaluate_teacher"]
    assert build_id(stage_dir(again, "distill_tiny-small")) == builds["distill_tiny-small"]


def wait_for(predicate, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_kill_9_during_training_resumes_from_checkpoint(tmp_path: Path, prefect_server: str) -> None:
    artifacts = tmp_path / "artifacts"
    config = write_tiny_variant(tmp_path / "long.yaml", artifacts, max_steps=240, save_steps=20)
    run = start_run(config, prefect_server)
    checkpoints = lambda: list(artifacts.glob("finetune_teacher/*/checkpoints/checkpoint-*/trainer_state.json"))  # noqa: E731
    assert wait_for(lambda: len(checkpoints()) > 0, timeout=180), run.communicate(timeout=60)[0]
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    killed_at = max(int(p.parent.name.split("-")[1]) for p in checkpoints())
    assert killed_at < 240

    summary = tmp_path / "summary.json"
    rerun = start_run(config, prefect_server, "--summary-json", str(summary))
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    assert "resuming from checkpoint checkpoint-" in output
    teacher = json.loads(summary.read_text())["stages"][0]
    assert teacher["status"] == "completed" and teacher["metrics"]["train_steps"] == 240
    resumed = int(teacher["metrics"]["resumed_from"].split("-")[1])
    assert 0 < resumed and resumed >= killed_at - 20  # the newest valid checkpoint, or the one before a torn write


def test_two_concurrent_runs_train_each_stage_once(tmp_path: Path, prefect_server: str) -> None:
    artifacts = tmp_path / "artifacts"
    config = write_tiny_variant(tmp_path / "shared.yaml", artifacts)
    summaries = [tmp_path / "a.json", tmp_path / "b.json"]
    runs = [start_run(config, prefect_server, "--summary-json", str(s)) for s in summaries]
    outputs = [run.communicate(timeout=400)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    for stage in ALL:
        seen = sorted(statuses(json.loads(s.read_text())["stages"])[stage] for s in summaries)
        # On failure show each run's task-level lines (states, retries, cache decisions), not 2 x 30 kB of logs.
        trail = ["\n".join(line for line in out.splitlines() if "task_runs" in line) for out in outputs]
        assert seen == ["cached", "completed"], (stage, trail)
    # teacher, intermediate, prediction, baseline: each trained once across both runs
    assert sum(output.count("training: ") for output in outputs) == 4


def test_logs_and_artifacts_reach_the_prefect_api(tmp_path: Path) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    config = tiny_one_stage(tmp_path / "artifacts").model_copy(update={"stages": []})
    state = progressive_distillation(config, return_state=True)
    flow_run_id = state.state_details.flow_run_id

    async def read() -> tuple[list, list]:
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return logs, artifacts

    logs, artifacts = asyncio.run(read())
    messages = [log.message for log in logs]
    assert any(m.startswith("step ") and '"loss"' in m for m in messages), messages[:20]
    assert any(m.startswith("training: ") for m in messages)
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert {
        "finetune-teacher-metrics",
        "finetune-teacher-summary",
        "finetune-teacher-progress",
        "evaluate-teacher-metrics",
        "evaluate-teacher-summary",
    } <= set(by_key)
    assert by_key["finetune-teacher-progress"].data == 100.0
    assert (
        by_key["finetune-teacher-metrics"].type == "table" and "train_loss" in by_key["finetune-teacher-metrics"].data
    )
    assert "Evaluation: teacher" in by_key["evaluate-teacher-summary"].data
    assert by_key["leaderboard"].type == "table" and '"role": "teacher"' in by_key["leaderboard"].data


def test_config_file_flow_reads_the_yaml_at_run_time(tmp_path: Path) -> None:
    import yaml

    from flows.progressive import distill_config_file

    config = write_tiny_variant(tmp_path / "teacher-only.yaml", tmp_path / "ignored")
    raw = yaml.safe_load(config.read_text())
    raw["stages"] = []  # teacher and its evaluation only: the flow mechanics, quickly
    config.write_text(yaml.safe_dump(raw))
    outcome = distill_config_file(str(config), artifact_root=str(tmp_path / "artifacts"))
    assert [s["name"] for s in outcome["stages"]] == ["finetune_teacher", "evaluate_teacher"]
    assert all(s["uri"].startswith(str(tmp_path / "artifacts")) for s in outcome["stages"])
