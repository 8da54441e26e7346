"""Stage directories: manifest, completion marker, and every way a finished stage can be damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.store.artifacts import COMPLETE, MANIFEST, StageDirectory, check_writable, resolve_root


def finished(tmp_path: Path) -> StageDirectory:
    stage = StageDirectory(tmp_path, "finetune_teacher", "finetune-teacher-abc")
    stage.prepare()
    (stage.model_dir).mkdir()
    (stage.model_dir / "model.safetensors").write_bytes(b"\x01" * 64)
    (stage.model_dir / "config.json").write_text("{}")
    (stage.checkpoints / "checkpoint-5").mkdir(parents=True)
    (stage.checkpoints / "checkpoint-5" / "optimizer.pt").write_bytes(b"x")
    stage.finalize(config={"lr": 1}, metrics={"loss": 0.5}, upstream={"data": "d"}, code_version="c")
    return stage


def test_finalize_writes_manifest_then_marker(tmp_path: Path) -> None:
    stage = finished(tmp_path)
    manifest = json.loads((stage.path / MANIFEST).read_text())
    assert set(manifest["files"]) == {"model/model.safetensors", "model/config.json"}
    assert manifest["files"]["model/model.safetensors"]["size"] == 64
    assert manifest["config"] == {"lr": 1} and manifest["upstream"] == {"data": "d"}
    assert not stage.checkpoints.exists()
    result = stage.result()
    assert stage.verify().ok and result.metrics == {"loss": 0.5}
    assert result.model_path == str(stage.model_dir) and len(result.manifest_sha256) == 64
    assert len(result.model_dump_json()) < 1000  # what travels between tasks stays small


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda s: (s.path / COMPLETE).unlink(), "marker is missing"),
        (lambda s: (s.model_dir / "config.json").unlink(), "model/config.json is missing"),
        (lambda s: (s.model_dir / "model.safetensors").write_bytes(b"\x01" * 63), "has size 63"),
        (lambda s: (s.model_dir / "model.safetensors").write_bytes(b"\x02" * 64), "fails its sha256 check"),
        (
            lambda s: (s.path / MANIFEST).write_text((s.path / MANIFEST).read_text().replace("0.5", "0.9")),
            "does not match",
        ),
    ],
)
def test_damage_is_detected(tmp_path: Path, damage, reason: str) -> None:  # noqa: ANN001
    stage = finished(tmp_path)
    damage(stage)
    check = stage.verify()
    assert not check.ok and reason in check.reason


def test_prepare_withdraws_completion_but_keeps_checkpoints(tmp_path: Path) -> None:
    stage = StageDirectory(tmp_path, "s", "k")
    stage.prepare()
    (stage.checkpoints / "checkpoint-3").mkdir(parents=True)
    (stage.path / COMPLETE).write_text("x")
    stage.prepare()
    assert not (stage.path / COMPLETE).exists() and (stage.checkpoints / "checkpoint-3").is_dir()


def test_roots(tmp_path: Path) -> None:
    assert resolve_root(f"file://{tmp_path}") == tmp_path
    with pytest.raises(ConfigError, match="only local paths, file:// and s3:// URLs"):
        resolve_root("gs://bucket/x")
    # An object store's local root is this node's cache, one folder per root URL (trailing slash or not).
    assert resolve_root("s3://bucket/x") == resolve_root("s3://bucket/x/") != resolve_root("s3://bucket/y")
    blocked = tmp_path / "ro"
    blocked.mkdir()
    blocked.chmod(0o500)
    try:
        if not __import__("os").access(blocked, __import__("os").W_OK):  # root ignores permissions
            with pytest.raises(ConfigError, match="is not writable"):
                check_writable(blocked / "sub")
    finally:
        blocked.chmod(0o700)
    with pytest.raises(ConfigError, match="is not writable"):
        check_writable(Path("/proc/distill-artifacts"))


def test_check_writable_can_leave_no_trace(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "artifacts"
    check_writable(root, keep_created=False)
    assert list(tmp_path.iterdir()) == []  # the folders it made to find out are gone again
    check_writable(root)
    assert root.is_dir() and list(root.iterdir()) == []  # the flow's call keeps them
    check_writable(root, keep_created=False)
    assert root.is_dir()  # a folder that was there before is never removed
