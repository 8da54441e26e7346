"""Remote checkpoints (distill/store/remote_checkpoints.py) against moto's S3 server (tests/s3_server.py): writers
of one key on several nodes keep their own checkpoints, and a fetch racing a removal never installs a partial one.

Each `StageDirectory` object is one attempt, with its own prefix under `<stage>/<key>/checkpoints/`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from distill.store.artifacts import StageDirectory, remote_store, stage_directory
from distill.store.remote_checkpoints import CHECKPOINT_DONE, list_checkpoints

STAGE, KEY = "finetune_teacher", "finetune-teacher-89abcdef0123456789abcdef"


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def expected_files(writer: str, step: int) -> dict[str, bytes]:
    """A checkpoint's files, different for each writer and step (weights large enough to take several reads)."""
    return {
        "trainer_state.json": json.dumps({"global_step": step, "writer": writer}).encode(),
        "model.safetensors": f"{writer}-{step}".encode() * 20_000,
        "optimizer.pt": f"optimizer {writer} {step}".encode(),
    }


def save(directory: StageDirectory, writer: str, step: int, *, keep: int = 1) -> None:
    """What the Trainer and MirrorCheckpoints do: write checkpoint-<step>, rotate old ones out locally, mirror."""
    folder = directory.checkpoints / f"checkpoint-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in expected_files(writer, step).items():
        (folder / name).write_bytes(data)
    local = sorted(directory.checkpoints.glob("checkpoint-*"), key=lambda f: int(f.name.split("-")[1]))
    for old in local[:-keep]:
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    directory.checkpoint_saved(folder)


def node(root: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> StageDirectory:
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(cache))
    directory = stage_directory(root, STAGE, KEY)
    directory.prepare()
    return directory


def test_concurrent_writers_of_one_key_keep_their_own_checkpoints(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two attempts train one key at once on two nodes, saving the same step numbers: neither's rotation deletes
    the other's checkpoints, no checkpoint mixes their files, and a resume takes the newest of either."""
    store = remote_store(s3_root)
    writers = {
        "c": node(s3_root, tmp_path / "node-c", monkeypatch),
        "d": node(s3_root, tmp_path / "node-d", monkeypatch),
    }
    last = {"c": 10, "d": 6}
    errors: list[BaseException] = []

    def train(name: str) -> None:
        try:
            for step in range(2, last[name] + 1, 2):
                save(writers[name], name, step)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(name,)) for name in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors

    found = {(c.attempt, c.step) for c in list_checkpoints(store, STAGE, KEY)}
    assert found == {(writers["c"].attempt, 10), (writers["d"].attempt, 6)}  # each kept its newest; pruned its own
    for name, directory in writers.items():  # each remote checkpoint holds exactly its writer's files
        prefix = f"{store.checkpoints(STAGE, KEY)}/{directory.attempt}/checkpoint-{last[name]}"
        remote = {path.rsplit("/", 1)[1]: store.fs.cat_file(path) for path in store.fs.find(prefix)}
        marker = json.loads(remote.pop(CHECKPOINT_DONE))
        assert remote == expected_files(name, last[name]) and sorted(marker["files"]) == sorted(remote)

    fresh = node(s3_root, tmp_path / "node-e", monkeypatch)  # a retry elsewhere resumes from the newest of all
    fetched = fresh.fetch_checkpoint(None)
    assert fetched == fresh.checkpoints / "checkpoint-10" and tree(fetched) == expected_files("c", 10)
    assert fresh.fetch_checkpoint(10) is None  # nothing newer than what it holds


def test_a_vanished_or_damaged_checkpoint_is_skipped_never_installed(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = remote_store(s3_root)
    older = node(s3_root, tmp_path / "node-c", monkeypatch)
    save(older, "c", 2)
    newer = node(s3_root, tmp_path / "node-d", monkeypatch)
    save(newer, "d", 4)
    prefix = store.checkpoints(STAGE, KEY)

    # Half-removed (its attempt pruned it, or the stage finalized, while this node listed): the next newest.
    store.fs.rm_file(f"{prefix}/{newer.attempt}/checkpoint-4/model.safetensors")
    reader = node(s3_root, tmp_path / "node-e", monkeypatch)
    fetched = reader.fetch_checkpoint(None)
    assert fetched == reader.checkpoints / "checkpoint-2" and tree(fetched) == expected_files("c", 2)

    # A file that is not what the marker lists: not used either; nothing left installed or half-written.
    store.fs.pipe_file(f"{prefix}/{older.attempt}/checkpoint-2/optimizer.pt", b"another training's optimizer")
    other = node(s3_root, tmp_path / "node-f", monkeypatch)
    assert other.fetch_checkpoint(None) is None
    assert list(other.checkpoints.iterdir()) == []


def test_a_fetch_racing_removals_never_crashes_or_installs_a_partial_checkpoint(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One node saves checkpoints and the stage's checkpoints are removed (a finalize) over and over, while another
    node fetches: every fetch returns None or a whole checkpoint, byte for byte."""
    store = remote_store(s3_root)
    writer = node(s3_root, tmp_path / "node-c", monkeypatch)
    reader = node(s3_root, tmp_path / "node-d", monkeypatch)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        step = 0
        try:
            while not stop.is_set():
                step += 2
                save(writer, "c", step)
                if step % 6 == 0:  # a stage finalized: every attempt's checkpoints go
                    store.remove_checkpoints(STAGE, KEY)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=churn)
    thread.start()
    fetched_any, deadline = 0, time.monotonic() + 4
    try:
        while time.monotonic() < deadline:
            fetched = reader.fetch_checkpoint(None)
            if fetched is not None:
                step = int(fetched.name.split("-")[1])
                assert tree(fetched) == expected_files("c", step)
                fetched_any += 1
                for file in fetched.iterdir():
                    file.unlink()
                fetched.rmdir()
            assert [p.name for p in reader.checkpoints.iterdir()] == []  # no partial folder left behind
    finally:
        stop.set()
        thread.join()
    assert not errors
    print(f"{fetched_any} whole checkpoints fetched during the churn")
