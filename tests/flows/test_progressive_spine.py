"""The spine on configs/tiny.yaml: full run, cached re-run, recompute after damage (and the logged reason),
kill -9 while training and while writing a stage's files (resume, recompute, same result as an uninterrupted
run). Concurrent runs computing a shared stage once: tests/deployments/test_local_cluster.py (two runs on
two workers at once) and tests/tasks/test_locking.py."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import struct
import termios
from dataclasses import dataclass
from pathlib import Path

import pytest

from distill.config import RunConfig, load_config
from distill.precision import resolve_precision
from distill.stages.identity import stage_ids
from distill.store.artifacts import COMPLETE, MANIFEST, StageDirectory
from distill.training.checkpoints import checkpoint_step, latest_valid_checkpoint, read_resume_point
from flows.progressive import progressive_distillation
from tests.flows.conftest import start_run, tiny_one_stage, write_tiny_variant
from tests.prefect_api import flow_run_artifacts, flow_run_logs, poll


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


def run_and_read_logs(config: RunConfig, expected: str) -> tuple[list[dict], list[str]]:
    """Run the flow; return its stages and the messages the API holds for it, once `expected` is among them."""
    state = progressive_distillation(config, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    messages = poll(lambda: flow_run_logs(flow_run_id), lambda ms: any(expected in m for m in ms), 15)
    return state.result()["stages"], messages


@dataclass(frozen=True)
class FinishedRun:
    """A complete run of tiny_one_stage, and its teacher's manifest as it was when the run finished."""

    config: RunConfig
    stages: list[dict]
    leaderboard: list[dict]
    teacher_manifest: dict
    flow_run_id: object


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> FinishedRun:
    """One uninterrupted run of tiny_one_stage (~35 s), shared: the damage test's first run, the refresh test's
    starting point, the reference the kill -9 test's resumed teacher must equal, and the flow run whose logs and
    artifacts the API must hold. Tests may damage its artifacts but leave them complete again (their last run
    repairs what they broke)."""
    config = tiny_one_stage(tmp_path_factory.mktemp("finished-run") / "artifacts")
    state = progressive_distillation(config, return_state=True)
    outcome = state.result()
    teacher = stage_dir(outcome["stages"], "finetune_teacher")
    manifest = json.loads((teacher / MANIFEST).read_text())
    return FinishedRun(config, outcome["stages"], outcome["leaderboard"], manifest, state.state_details.flow_run_id)


def test_run_rerun_and_recompute_after_damage(finished_run: FinishedRun) -> None:
    config, first = finished_run.config, finished_run.stages
    assert recomputed(first) == ALL
    # Each stage's one name, worked out from the config alone (what --refresh and the CLI check against).
    assert [stage["name"] for stage in first] == [stage.name for stage in stage_ids(config)]
    assert all(stage["metrics"]["stage_seconds"] > 0 for stage in first)  # what each stage's own work took
    teacher_dir, eval_dir = stage_dir(first, "finetune_teacher"), stage_dir(first, "evaluate_teacher")
    assert (teacher_dir / "model" / "model.safetensors").is_file() and (teacher_dir / COMPLETE).is_file()
    assert not (teacher_dir / "checkpoints").exists()  # dropped once the stage is complete
    metrics = next(s["metrics"] for s in first if s["name"] == "evaluate_teacher")
    assert {"exact", "f1", "HasAns_f1", "NoAns_f1", "parameters", "latency_p50_ms", "throughput_per_s"} <= set(metrics)
    assert [row["model"] for row in finished_run.leaderboard] == ["teacher", "tiny-small", "tiny-small-baseline"]
    assert all(row["f1"] is not None and row["parameters"] for row in finished_run.leaderboard)

    # Identical re-run: every stage Cached, nothing rebuilt.
    second = progressive_distillation(config)["stages"]
    assert recomputed(second) == set()
    assert build_id(teacher_dir) == build_id(stage_dir(second, "finetune_teacher"))

    # The teacher evaluation's directory deleted: only that evaluation recomputes.
    shutil.rmtree(eval_dir)
    assert recomputed(progressive_distillation(config)["stages"]) == {"evaluate_teacher"}

    # The teacher's _COMPLETE deleted: the teacher recomputes, from scratch, to the same bytes; what follows is
    # keyed by those bytes, so it stays cached (tests/flows/test_cache_keys.py has the case on its own).
    (teacher_dir / COMPLETE).unlink()
    fourth = progressive_distillation(config)["stages"]
    assert recomputed(fourth) == {"finetune_teacher"}

    # One flipped byte in a finished stage's weights (same size): the manifest's hash check catches it on the
    # next run, which recomputes that stage, never serves it, and says why in the run's logs. The recomputed
    # weights are the original bytes again, so the evaluation keyed by them stays cached.
    student = stage_dir(fourth, "distill_tiny-small")
    weights = student / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    why = "model/model.safetensors fails its sha256 check"
    fifth, logs = run_and_read_logs(config, why)
    assert recomputed(fifth) == {"distill_tiny-small"}
    assert any(m.startswith(f"distill_prediction_layer: {student} is not usable") and why in m for m in logs), logs
    assert stage_dir(fifth, "distill_tiny-small") == student
    assert StageDirectory(student.parent.parent, "distill_prediction_layer", student.name).verify().ok


def test_refresh_recomputes_the_named_stage(finished_run: FinishedRun) -> None:
    config = finished_run.config
    before = progressive_distillation(config)["stages"]  # complete already: all cached, quickly
    builds = {name: build_id(stage_dir(before, name)) for name in ("evaluate_teacher", "distill_tiny-small")}
    again = progressive_distillation(config, refresh=["evaluate"])["stages"]
    assert recomputed(again) == {"evaluate_teacher", "evaluate_tiny-small", "evaluate_tiny-small-baseline"}
    # Really rebuilt (a new build in the same directory), not the intact directory handed back again.
    assert build_id(stage_dir(again, "evaluate_teacher")) != builds["evaluate_teacher"]
    assert build_id(stage_dir(again, "distill_tiny-small")) == builds["distill_tiny-small"]
    # By name: that stage alone.
    named = progressive_distillation(config, refresh=["evaluate_teacher"])["stages"]
    assert recomputed(named) == {"evaluate_teacher"}


def bytes_waiting(fd: int) -> int:
    """Bytes written into a pipe and not yet read."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


def test_kill_9_while_training_then_while_writing_files(
    tmp_path: Path, prefect_server: str, finished_run: FinishedRun
) -> None:
    """Three `distill run`s of the teacher: killed while training, killed while writing its files, then complete.

    The result must equal the uninterrupted reference run's (same config, same seed), and nothing half-written
    may ever be served.
    """
    reference = next(s for s in finished_run.stages if s["name"] == "finetune_teacher")
    total_steps = reference["metrics"]["train_steps"]
    artifacts = tmp_path / "artifacts"
    config = write_tiny_variant(tmp_path / "teacher.yaml", artifacts, stages=0)  # the reference's teacher, no students
    teacher = artifacts / "finetune_teacher" / Path(reference["uri"]).name  # same config and seed: same key
    checkpoints = teacher / "checkpoints"

    # 1. kill -9 during training, once a checkpoint is complete.
    first = start_run(config, prefect_server, log=tmp_path / "first.log")
    found = poll(lambda: latest_valid_checkpoint(checkpoints) is not None or first.poll() is not None, bool, 540, 0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert found and first.returncode == -signal.SIGKILL, (
        list(artifacts.glob("finetune_teacher/*")),
        (tmp_path / "first.log").read_text()[-3000:],
    )
    killed_at = checkpoint_step(latest_valid_checkpoint(checkpoints))
    assert killed_at < total_steps and not (teacher / COMPLETE).exists()

    # 2. The re-run resumes from that checkpoint, trains to the end and is killed while it writes the stage's
    # final files. To catch it inside a write, not a moment before or after, tokenizer.json (the last file
    # save_pretrained writes) is made a FIFO whose buffer (one page) is smaller than the file: the run blocks
    # in that write with its first page written, the other model files already there, and is killed there.
    # The product code is untouched: it opens and writes that path as always. (Polling for files and killing
    # "soon" races with writes that take milliseconds; a test-only pause hook would change the product.)
    tokenizer_json = teacher / "model" / "tokenizer.json"
    tokenizer_json.parent.mkdir()
    os.mkfifo(tokenizer_json)
    reader = os.open(tokenizer_json, os.O_RDONLY | os.O_NONBLOCK)
    try:
        pipe_bytes = fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, 4096)
        assert finished_run.teacher_manifest["files"]["model/tokenizer.json"]["size"] > pipe_bytes
        second = start_run(config, prefect_server, log=tmp_path / "second.log")
        poll(lambda: bytes_waiting(reader) >= pipe_bytes or second.poll() is not None, bool, 540, 0.1)
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=30)
        torn = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    output = (tmp_path / "second.log").read_text()
    assert second.returncode == -signal.SIGKILL and len(torn) == pipe_bytes, output[-3000:]
    assert f"resuming from checkpoint checkpoint-{killed_at}" in output  # the newest complete one
    tokenizer_json.unlink()
    tokenizer_json.write_bytes(torn)  # what the killed writer leaves behind: the file's first page
    assert (teacher / "model" / "model.safetensors").is_file()
    assert not (teacher / COMPLETE).exists() and not (teacher / MANIFEST).exists()
    assert not (artifacts / "_prefect" / "cache").exists()  # no cache beside the artifacts: nothing to serve them

    # 3. The next run recomputes the stage (resuming from its final checkpoint) instead of serving the torn files.
    trained_seconds = read_resume_point(latest_valid_checkpoint(checkpoints)).train_seconds
    summary = tmp_path / "summary.json"
    third = start_run(config, prefect_server, "--summary-json", str(summary), log=tmp_path / "third.log")
    third.wait(timeout=540)
    output = (tmp_path / "third.log").read_text()
    assert third.returncode == 0, output[-3000:]
    assert f"{teacher.name} is not usable ({COMPLETE} marker is missing" in output  # and says why
    assert f"resuming from checkpoint checkpoint-{total_steps}" in output
    stages = json.loads(summary.read_text())["stages"]
    assert statuses(stages) == {"finetune_teacher": "completed", "evaluate_teacher": "completed"}
    assert stage_dir(stages, "finetune_teacher").name == teacher.name
    assert StageDirectory(artifacts, "finetune_teacher", teacher.name).verify().ok

    # Interrupted twice, the teacher ends as the uninterrupted run's: HF Trainer checkpoints hold the
    # optimizer, scheduler, RNG states and data position, and on CPU the resumed steps are bit-identical,
    # so every file matches (weights, tokenizer, loss curve), and so do the metrics and the evaluation.
    manifest = json.loads((teacher / MANIFEST).read_text())
    assert manifest["files"] == finished_run.teacher_manifest["files"]
    metrics = stages[0]["metrics"]
    assert metrics["train_steps"] == total_steps and metrics["resumed_from"] == f"checkpoint-{total_steps}"
    assert metrics["train_loss"] == pytest.approx(reference["metrics"]["train_loss"], rel=1e-9)
    # Its time covers all three attempts: training time of every step (not the 0 s of the last attempt), and
    # the wall time of the two killed attempts too.
    assert metrics["train_runtime_seconds"] >= round(trained_seconds, 3) > 0
    assert metrics["stage_attempts"] == 3 and metrics["stage_seconds_all_attempts"] > metrics["stage_seconds"]
    evaluation = next(s for s in finished_run.stages if s["name"] == "evaluate_teacher")["metrics"]
    for name in ("exact", "f1", "HasAns_f1", "NoAns_f1"):
        assert stages[1]["metrics"][name] == evaluation[name], name
    # Latency is reported for the precision the run uses, timed in the measuring process at its threads.
    assert stages[1]["metrics"]["latency_precision"] == resolve_precision(load_config(config).precision)
    assert stages[1]["metrics"]["latency_threads"] == 1 and stages[1]["metrics"]["latency_p50_ms"] > 0


def test_logs_and_artifacts_reach_the_prefect_api(finished_run: FinishedRun) -> None:
    """The run that trained everything: its training logs and each stage's artifacts are on the server."""
    messages = poll(
        lambda: flow_run_logs(finished_run.flow_run_id), lambda ms: any(m.startswith("training: ") for m in ms), 15
    )
    # One readable line per Trainer log step (distill.training.progress), not a JSON dump.
    step_line = re.compile(r"finetune-teacher: step \d+/\d+ \(\d+%\) \| epoch .* \| loss ")
    assert any(step_line.match(m) for m in messages), messages[:20]
    assert any(m.startswith("training: ") for m in messages)
    by_key = flow_run_artifacts(finished_run.flow_run_id)
    assert {
        "finetune-teacher-metrics",
        "finetune-teacher-summary",
        "finetune-teacher-progress",
        "evaluate-teacher-metrics",
        "evaluate-teacher-summary",
    } <= set(by_key), sorted(by_key)
    assert by_key["finetune-teacher-progress"].data == 100.0
    assert (
        by_key["finetune-teacher-metrics"].type == "table" and "train_loss" in by_key["finetune-teacher-metrics"].data
    )
    assert "Evaluation: teacher" in by_key["evaluate-teacher-summary"].data
    assert by_key["leaderboard"].type == "table" and '"role": "teacher"' in by_key["leaderboard"].data


def test_config_file_flow_reads_the_yaml_at_run_time(tmp_path: Path, finished_run: FinishedRun) -> None:
    import yaml

    from flows.progressive import distill_config_file

    config = write_tiny_variant(tmp_path / "teacher-only.yaml", tmp_path / "ignored")
    raw = yaml.safe_load(config.read_text())
    raw["stages"] = []  # teacher and its evaluation only: the flow mechanics, quickly
    config.write_text(yaml.safe_dump(raw))
    # The finished run's root: its teacher has this config's key, so both stages come back from the cache,
    # which shows the file was read and the artifact_root parameter won over the file's.
    root = finished_run.config.artifact_root
    outcome = distill_config_file(str(config), artifact_root=root)
    assert statuses(outcome["stages"]) == {"finetune_teacher": "cached", "evaluate_teacher": "cached"}
    assert all(s["uri"].startswith(root) for s in outcome["stages"])
