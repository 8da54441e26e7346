"""`artifact_root: s3://...` against moto's S3 server (an emulator: tests/s3_server.py): racing writers, a stage
read on another node, checkpoints resumed on another node, and the preflight's one-line errors.

"Nodes" are cache folders (DISTILL_CACHE_DIR): what one machine holds locally.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from distill.errors import ConfigError
from distill.store.artifacts import COMPLETE, MANIFEST, check_artifact_root, remote_store, resolve_root, stage_directory
from distill.store.remote_checkpoints import list_checkpoints

STAGE, KEY = "finetune_teacher", "finetune-teacher-0123456789abcdef01234567"
WRITERS = 8


def on_node(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(cache))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative name, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_outputs(folder: Path, writer: int) -> None:
    """A stage's outputs, different for each writer, plus a file only this writer has."""
    model = folder / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "model.safetensors").write_bytes(hashlib.sha256(str(writer).encode()).digest() * 8192)  # 256 KiB
    (model / "config.json").write_text(json.dumps({"writer": writer}))
    (folder / f"only-writer-{writer}.txt").write_text(str(writer))


def build(root: str, writer: int, *, discard: bool = False) -> Any:
    """Compute the stage on the current node (after a refresh's discard, if asked) with `writer`'s outputs."""
    directory = stage_directory(root, STAGE, KEY)
    if discard:
        directory.discard()
    directory.prepare()
    write_outputs(directory.path, writer)
    return directory.finalize(config={}, metrics={"writer": writer}, upstream={}, code_version="test")


def _race_writer(writer: int, root: str, cache: str, barrier: Any, results: Any) -> None:
    """One racing writer, in its own process and on its own node: outputs written, then all finalize at once."""
    os.environ["DISTILL_CACHE_DIR"] = cache
    directory = stage_directory(root, STAGE, KEY)
    directory.prepare()
    write_outputs(directory.path, writer)
    barrier.wait(timeout=300)  # all 8 started and ready (spawned processes import for seconds on a busy machine)
    result = directory.finalize(config={}, metrics={"writer": writer}, upstream={}, code_version="test")
    results.put((writer, result.model_dump(), str(directory.path)))


def test_racing_writers_agree_on_one_build(s3_root: str, tmp_path: Path) -> None:
    import boto3

    store = remote_store(s3_root)
    bucket, _, prefix = store.prefix.partition("/")
    plain = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])  # a second client, to check the first
    seen_missing: list[str] = []
    manifests_seen: set[bytes] = set()
    done = threading.Event()

    def watch() -> None:
        """A reader polling during the race: whenever a manifest is there, every blob it names is there."""
        while not done.is_set():
            data = store.read_manifest(STAGE, KEY)
            if data is not None:
                manifests_seen.add(data)
                for entry in json.loads(data)["files"].values():
                    listed = plain.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/blobs/sha256/{entry['sha256']}")
                    if listed.get("KeyCount", 0) != 1:
                        seen_missing.append(entry["sha256"])

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WRITERS), context.Queue()
    caches = [tmp_path / f"node-{writer}" for writer in range(WRITERS)]
    processes = [
        context.Process(target=_race_writer, args=(writer, s3_root, str(caches[writer]), barrier, results))
        for writer in range(WRITERS)
    ]
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=360) for _ in processes]
        for process in processes:
            process.join(timeout=30)
            assert process.exitcode == 0
    finally:
        done.set()
        watcher.join()
        for process in processes:  # only after a failure: none is left hanging at the barrier
            if process.is_alive():
                process.kill()

    committed = store.read_manifest(STAGE, KEY)
    manifest = json.loads(committed)
    winner = manifest["metrics"]["writer"]
    assert manifests_seen == {committed} and not seen_missing  # one manifest, never ahead of its blobs
    # Every racer returns the winner's result; only the cache folder (node-local) differs in its paths.
    for _, result, path in outcomes:
        assert result["manifest_sha256"] == hashlib.sha256(committed).hexdigest()
        assert result["metrics"] == {"writer": winner} and result["key"] == KEY
        assert result["uri"] == path
    assert len({r["content_sha256"] for _, r, _ in outcomes}) == 1
    # The manifest's blobs are in the store, with the bytes its sha256s name.
    for entry in manifest["files"].values():
        blob = plain.get_object(Bucket=bucket, Key=f"{prefix}/blobs/sha256/{entry['sha256']}")["Body"].read()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"] and len(blob) == entry["size"]
    assert sorted(manifest["files"]) == ["model/config.json", "model/model.safetensors", f"only-writer-{winner}.txt"]
    # Each writer's cache now holds the winner's build, byte for byte (its own outputs replaced or removed).
    expected = tree(Path(outcomes[0][2]))
    assert expected[MANIFEST] == committed
    for _, _, path in outcomes:
        assert tree(Path(path)) == expected
    # Losers' blobs stay (no garbage collection yet): one per writer's weights, config and own file.
    blobs = plain.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/blobs/sha256/")["KeyCount"]
    assert blobs == 3 * WRITERS


def test_a_stage_written_on_one_node_is_read_on_another(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_node(monkeypatch, tmp_path / "node-a")
    result_a = build(s3_root, 1)
    written = stage_directory(s3_root, STAGE, KEY)

    on_node(monkeypatch, tmp_path / "node-b")
    read = stage_directory(s3_root, STAGE, KEY)
    assert read.root == resolve_root(s3_root) != written.root and not read.path.exists()
    assert read.verify().ok  # fetched from the store: nothing was on node B
    result_b = read.result()
    assert (result_b.manifest_sha256, result_b.content_sha256) == (result_a.manifest_sha256, result_a.content_sha256)
    assert tree(read.path) == tree(written.path)
    assert (read.path / MANIFEST).read_bytes() == remote_store(s3_root).read_manifest(STAGE, KEY)
    assert result_b.model_path == str(read.path / "model")  # the Hugging Face folder, in node B's cache

    # Damage on node B is repaired from the store, never served.
    weights = read.path / "model" / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(b"\0" + original[1:])
    (read.path / "model" / "config.json").unlink()
    assert read.verify().ok
    assert weights.read_bytes() == original and tree(read.path) == tree(written.path)
    # A stage nobody committed stays missing.
    assert not stage_directory(s3_root, STAGE, "finetune-teacher-" + "f" * 24).verify().ok


def test_a_node_serves_the_committed_build_not_its_stale_copy(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node A commits X, node B adopts X, node A refreshes and commits Y: node B now serves Y (one content hash
    for every node, so downstream keys agree); once the build is withdrawn from the store, node B serves nothing."""
    on_node(monkeypatch, tmp_path / "node-a")
    x = build(s3_root, 1)
    on_node(monkeypatch, tmp_path / "node-b")
    on_b = stage_directory(s3_root, STAGE, KEY)
    assert on_b.verify().ok and on_b.result().content_sha256 == x.content_sha256

    on_node(monkeypatch, tmp_path / "node-a")
    y = build(s3_root, 2, discard=True)
    assert y.content_sha256 != x.content_sha256
    on_node(monkeypatch, tmp_path / "node-b")
    assert on_b.verify().ok
    assert (on_b.result().content_sha256, on_b.result().manifest_sha256) == (y.content_sha256, y.manifest_sha256)
    assert not (on_b.path / "only-writer-1.txt").exists() and (on_b.path / "only-writer-2.txt").is_file()

    remote_store(s3_root).discard(STAGE, KEY)  # a refresh elsewhere withdrew it, and has not committed yet
    check = on_b.verify()
    assert not check.ok and "committed" in check.reason
    assert not (on_b.path / COMPLETE).exists()  # withdrawn locally too: the stage recomputes or resumes


def test_a_worker_on_another_node_reads_the_prefect_record(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records block holds the root URL, which each node resolves to its own cache."""
    from prefect.results import ResultRecord

    from tasks.records import StageDirectoryRecords

    on_node(monkeypatch, tmp_path / "node-a")
    result = build(s3_root, 1)
    on_node(monkeypatch, tmp_path / "node-c")
    records = StageDirectoryRecords(root=s3_root)
    record = ResultRecord.deserialize(records.read_path(KEY))
    assert record.result.manifest_sha256 == result.manifest_sha256
    assert record.result.uri == str(resolve_root(s3_root) / STAGE / KEY)
    assert records.read_path("finetune-teacher-" + "e" * 24) is None

    # A store that does not answer is no record (the task then runs, and its retries handle the outage).
    from distill_cli.server import free_port

    on_node(monkeypatch, tmp_path / "node-d")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries: seconds this test need not wait
    assert records.read_path(KEY) is None


def test_training_killed_on_one_node_resumes_on_another(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path
) -> None:

    from distill.training.checkpoints import MirrorCheckpoints
    from tasks.stage import resume_from_store
    from tests.distill.test_checkpoints import CrashAfterCheckpoint, Interrupted
    from tests.distill.tiny_training import tiny_classifier_run

    # 12 steps, a checkpoint every 2, one kept: the store must drop rotated ones too.
    run = tiny_classifier_run(tiny_classifier)
    reference = run(tmp_path / "uninterrupted" / "checkpoints")
    store = remote_store(s3_root)

    on_node(monkeypatch, tmp_path / "node-a")
    node_a = stage_directory(s3_root, STAGE, KEY)
    node_a.prepare()
    with pytest.raises(Interrupted):
        run(node_a.checkpoints, MirrorCheckpoints(node_a.checkpoint_saved), CrashAfterCheckpoint(4))
    assert steps(store) == [4]  # checkpoint-2 was rotated out, locally and in the store

    on_node(monkeypatch, tmp_path / "node-b")  # the retry lands on another machine: an empty cache
    node_b = stage_directory(s3_root, STAGE, KEY)
    node_b.prepare()
    fetched = resume_from_store(node_b)
    assert fetched == node_b.checkpoints / "checkpoint-4"
    assert tree(fetched) == tree(node_a.checkpoints / "checkpoint-4")
    resumed = run(node_b.checkpoints, MirrorCheckpoints(node_b.checkpoint_saved))
    assert resumed.resumed_from == "checkpoint-4" and resumed.global_step == reference.global_step == 12
    assert resumed.train_loss == pytest.approx(reference.train_loss, rel=1e-9)
    # Node B's attempt keeps its newest under its own prefix; node A's stays its own until the stage finalizes.
    assert {(c.attempt, c.step) for c in list_checkpoints(store, STAGE, KEY)} == {
        (node_a.attempt, 4),
        (node_b.attempt, 12),
    }
    assert resume_from_store(node_b) is None  # nothing newer in the store than what node B has
    node_b.finalize(config={}, metrics={}, upstream={}, code_version="test")
    assert steps(store) == [] and not store.fs.exists(store.checkpoints(STAGE, KEY))


def steps(store: Any) -> list[int]:
    """The complete remote checkpoints' steps, over all attempts, newest first."""
    return [checkpoint.step for checkpoint in list_checkpoints(store, STAGE, KEY)]


def test_the_preflight_names_artifact_root_when_the_store_is_unusable(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_node(monkeypatch, tmp_path / "cache")
    check_artifact_root(s3_root, keep_created=False)  # a probe put and deleted
    bucket = s3_root.split("/")[2]
    assert remote_store(s3_root).fs.ls(bucket) == []  # the probe left nothing, nor did it create the cache
    assert not (tmp_path / "cache").exists()

    missing = f"s3://{bucket}-missing/artifacts"
    with pytest.raises(ConfigError, match=rf"^artifact_root: {missing}: cannot write .*bucket does not exist") as exc:
        check_artifact_root(missing, keep_created=False)
    assert "\n" not in str(exc.value)

    with monkeypatch.context() as no_credentials:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            no_credentials.delenv(name, raising=False)
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            no_credentials.setenv(name, str(tmp_path / "none"))
        no_credentials.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata to ask, here
        with pytest.raises(ConfigError, match=rf"^artifact_root: {s3_root}: .*Unable to locate credentials"):
            check_artifact_root(s3_root, keep_created=False)

    from distill_cli.server import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(ConfigError, match=rf"^artifact_root: {s3_root}: cannot write .*Could not connect"):
        check_artifact_root(s3_root, keep_created=False)
    assert not (tmp_path / "cache").exists()


def test_other_schemes_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^artifact_root: 'gs://bucket/x': only local paths, file:// and s3://"):
        check_artifact_root("gs://bucket/x")


def test_a_refresh_withdraws_the_committed_stage(s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit recompute must not lose to the build it replaces: discarding removes the remote manifest."""
    on_node(monkeypatch, tmp_path / "node")
    first = build(s3_root, 1)
    directory = stage_directory(s3_root, STAGE, KEY)
    directory.discard()
    assert remote_store(s3_root).read_manifest(STAGE, KEY) is None and not directory.verify().ok
    second = build(s3_root, 2)
    assert second.content_sha256 != first.content_sha256
    assert hashlib.sha256(remote_store(s3_root).read_manifest(STAGE, KEY)).hexdigest() == second.manifest_sha256


def test_complete_marker_is_the_manifest_hash(s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local protocol is unchanged for a remote root: `_COMPLETE` holds the sha256 of the manifest's bytes."""
    on_node(monkeypatch, tmp_path / "node")
    build(s3_root, 3)
    directory = stage_directory(s3_root, STAGE, KEY)
    marker = (directory.path / COMPLETE).read_text().strip()
    assert marker == hashlib.sha256((directory.path / MANIFEST).read_bytes()).hexdigest()


def test_a_checkpoint_gone_before_it_is_copied_is_skipped_and_training_goes_on(
    s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The Trainer may rotate a checkpoint out before it is copied (uploads slower than save_steps): copying is
    best effort, so the training that saved it must not fail, and nothing half-copied is listed in the store."""
    from distill.training.checkpoints import checkpoint_is_valid

    on_node(monkeypatch, tmp_path / "node")
    directory = stage_directory(s3_root, STAGE, KEY)
    directory.prepare()
    gone = directory.checkpoints / "checkpoint-7"
    assert not checkpoint_is_valid(gone, 2)  # a missing folder is not a valid checkpoint, for any world size
    directory.checkpoint_saved(gone)  # does not raise
    assert "checkpoint-7: not copied to the artifact store" in caplog.text
    assert list_checkpoints(remote_store(s3_root), STAGE, KEY) == []
