"""The artifact store: one directory per stage and cache key, a manifest, and a completion marker.

Layout: `<artifact_root>/<stage>/<key>/` holds the stage's outputs (e.g. `model/` with
safetensors, config and tokenizer), `checkpoints/` while training, `.attempts/` while
unfinished (the wall time of each attempt, see `distill.store.attempts`), `manifest.json` (every
output file's size and sha256, the stage config, code version, metrics, upstream keys)
and `_COMPLETE`, written last and holding the manifest's sha256. A directory without a
valid `_COMPLETE` is unfinished: it is never served as a result, only resumed or redone.

What travels between stages is a `StageResult` (uri, manifest hash, metrics): a few
hundred bytes, never a model or tensor.

An artifact root may also be an object store (`s3://bucket/prefix`, see `distill.store.remote`): the
directories then live in a per-node cache, a stage is complete once its manifest is committed to the
store, and verifying a directory reads the committed manifest: the cached copy is served only when it is that
build; otherwise the committed build is fetched, or, with none committed, the copy is not complete.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, Field

import distill
from distill.errors import ConfigError, TransientError
from distill.io import atomic_write_bytes, atomic_write_text
from distill.store.attempts import ATTEMPTS, clear_attempts
from distill.store.fingerprint import hash_object, sha256_bytes, sha256_file
from distill.store.remote import ObjectStore, cache_root, is_remote, manifest_files, open_store
from distill.store.remote_checkpoints import (
    fetch_newest_checkpoint,
    new_attempt_id,
    prune_checkpoints,
    upload_checkpoint,
)

log = logging.getLogger("distill")

MANIFEST = "manifest.json"
COMPLETE = "_COMPLETE"
CHECKPOINTS = "checkpoints"
LOSS_CURVE = "loss_curve.json"  # training stages: [{"step", "loss"}, ...] for the report's plots


class StageResult(BaseModel):
    """What a stage hands to the next one and to the flow: small and JSON-serialisable."""

    name: str = Field(description="Stage name, e.g. 'finetune_teacher'.")
    key: str = Field(description="Cache key; the stage directory's name.")
    uri: str = Field(description="Stage directory (or, for a model used as is, the model reference).")
    manifest_sha256: str = Field(description="sha256 of manifest.json (the completion marker's check).")
    content_sha256: str = Field(
        description="sha256 over the output files' names and bytes: what later stages' keys hold, so a recompute "
        "that writes identical bytes leaves them cached."
    )
    metrics: dict[str, Any] = Field(default_factory=dict)
    model_path: str | None = Field(default=None, description="Folder of the stage's model, if it produced one.")


def resolve_root(artifact_root: str) -> Path:
    """Local directory for an artifact root given as a path or `file://` URL; for an `s3://` root, this node's
    cache of it (distill.store.remote.cache_root)."""
    parsed = urlparse(artifact_root)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme == "file" else artifact_root).expanduser().resolve()
    if is_remote(artifact_root):
        return cache_root(artifact_root)
    raise ConfigError(
        f"artifact_root: {artifact_root!r}: only local paths, file:// and s3:// URLs are supported "
        "(or mount shared storage and point artifact_root at the mount)"
    )


def remote_store(artifact_root: str) -> ObjectStore | None:
    """The object store behind a remote artifact root; None for a local one."""
    return open_store(artifact_root) if is_remote(artifact_root) else None


def stage_directory(artifact_root: str, stage: str, key: str) -> StageDirectory:
    """A stage's directory under an artifact root as configured (local, or cached from an object store)."""
    return StageDirectory(resolve_root(artifact_root), stage, key, remote_store(artifact_root))


def check_artifact_root(artifact_root: str, *, keep_created: bool = True) -> None:
    """ConfigError naming artifact_root unless stage outputs can be written: the local root (or cache) is
    writable and, for an object store, an object can be put and deleted under its prefix."""
    local = resolve_root(artifact_root)
    store = remote_store(artifact_root)
    setting = "artifact_root" if store is None else f"artifact_root: {artifact_root}: local cache"
    check_writable(local, setting, keep_created=keep_created)
    if store is not None:
        store.probe()


def check_writable(root: Path, setting: str = "artifact_root", *, keep_created: bool = True) -> None:
    """Raise ConfigError naming `setting` unless files can be written in `root`, creating it (and missing
    parents) to find out.

    With `keep_created=False` (a check before the run is accepted) the folders it made are removed again; they
    are also removed when the check fails. Only folders that did not exist before, and only while empty."""
    created = list(itertools.takewhile(lambda folder: not folder.exists(), (root, *root.parents)))  # deepest first
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        _remove_empty(created)
        raise ConfigError(f"{setting}: {root} is not writable ({exc.strerror or exc})") from None
    if not keep_created:
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """rmdir each folder, deepest first (one never made is skipped); stop at the first that is not empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


def content_hash(files: dict[str, Any]) -> str:
    """The identity of a stage's output: its files' names and sha256s (a manifest's `files`), nothing else.

    Timings, metrics and creation time stay out, so an identical recompute has the same identity."""
    return hash_object({name: entry["sha256"] for name, entry in files.items()})


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class StageDirectory:
    """One stage output directory and the protocol for writing it safely.

    With `remote`, the directory is this node's copy of a stage in an object store: `verify` makes it the
    build committed there, `fetch_checkpoint` and `checkpoint_saved` move checkpoints between the two (this
    object's own under its `attempt` prefix: one object per attempt), and `finalize` commits to the store
    first (blobs, then the manifest, conditionally) and adopts another writer's commit if it lost (its own
    checkpoints go too, `keep_checkpoints` or not).

    Adopting a build replaces files in the local folder: with a remote root, call `verify` and `finalize`
    only holding the key's lock on this node (tasks/stage.py does), or they may rewrite the folder under a
    run training into it.
    """

    root: Path
    stage: str
    key: str
    remote: ObjectStore | None = None
    attempt: str = field(default_factory=new_attempt_id, compare=False)

    @property
    def path(self) -> Path:
        return self.root / self.stage / self.key

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def attempts(self) -> Path:
        return self.path / ATTEMPTS

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    # ------------------------------------------------------------------ reading

    def verify(self) -> Verification:
        """Complete and intact: marker present, manifest hash matches it, every listed file matches.

        With a remote store the committed manifest is the truth, read each time (one GET): a local copy
        is served only when it is intact and its manifest has the same bytes; otherwise the committed
        build is fetched (a stage completed on another node, or rebuilt there since this node took its
        copy). With none committed (never, or withdrawn by a refresh) the local copy is not complete
        either: its `_COMPLETE` goes, so the stage recomputes (resuming from its checkpoints)."""
        check = self._verify_local()
        if self.remote is None:
            return check
        committed = self.remote.read_manifest(self.stage, self.key)
        if committed is None:
            (self.path / COMPLETE).unlink(missing_ok=True)
            return Verification(False, "no build of the stage is committed in the object store")
        if check.ok and (self.path / MANIFEST).read_bytes() == committed:
            return check
        self._adopt(committed)
        return self._verify_local()

    def _verify_local(self) -> Verification:
        marker, manifest_path = self.path / COMPLETE, self.path / MANIFEST
        if not self.path.is_dir():
            return Verification(False, "stage directory is missing")
        if not marker.is_file():
            return Verification(False, f"{COMPLETE} marker is missing (unfinished or interrupted)")
        if not manifest_path.is_file():
            return Verification(False, f"{MANIFEST} is missing")
        manifest_bytes = manifest_path.read_bytes()
        if sha256_bytes(manifest_bytes) != marker.read_text().strip():
            return Verification(False, f"{MANIFEST} does not match its {COMPLETE} hash")
        for name, entry in json.loads(manifest_bytes)["files"].items():
            file = self.path / name
            if not file.is_file():
                return Verification(False, f"{name} is missing")
            if file.stat().st_size != entry["size"]:
                return Verification(False, f"{name} has size {file.stat().st_size}, manifest says {entry['size']}")
            if sha256_file(file) != entry["sha256"]:
                return Verification(False, f"{name} fails its sha256 check")
        return Verification(True)

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text())

    def result(self) -> StageResult:
        """The StageResult of a complete directory."""
        manifest = self.manifest()
        return StageResult(
            name=self.stage,
            key=self.key,
            uri=str(self.path),
            manifest_sha256=(self.path / COMPLETE).read_text().strip(),
            content_sha256=content_hash(manifest["files"]),
            metrics=manifest.get("metrics", {}),
            model_path=str(self.model_dir) if (self.model_dir / "config.json").is_file() else None,
        )

    # ------------------------------------------------------------------ writing

    def prepare(self) -> None:
        """Open the directory for (re)computation: withdraw any completion; keep checkpoints for resuming, and the
        attempt log, so that the attempt which completes the stage accounts for the time of those before it."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / COMPLETE).unlink(missing_ok=True)
        (self.path / MANIFEST).unlink(missing_ok=True)

    def fetch_checkpoint(self, newer_than: int | None) -> Path | None:
        """With a remote store: fetch its newest complete checkpoint into `checkpoints` when it is newer than
        step `newer_than` (the newest valid local one; None: there is none), e.g. one saved by an attempt on
        another node. Returns the folder fetched, or None."""
        if self.remote is None:
            return None
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return fetch_newest_checkpoint(self.remote, self.stage, self.key, newer_than, self.checkpoints)

    def discard(self) -> None:
        """Remove the stage for an explicit recompute: the local directory and, in a remote store, its manifest
        and checkpoints (a committed manifest would otherwise win over the recompute)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self.remote is not None:
            self.remote.discard(self.stage, self.key)

    def checkpoint_saved(self, folder: Path) -> None:
        """A checkpoint was written to `folder` (under `checkpoints`): copy it to this attempt's prefix in the
        remote store, and drop this attempt's remote checkpoints the Trainer's rotation has removed locally
        (other attempts' stay theirs). Nothing to do for a local root.

        Best effort: a copy that fails (the store unreachable for a moment, the folder rotated out while it was
        copied) is logged and training goes on; a retry elsewhere then resumes from an older checkpoint, or
        from scratch. The stage's result never depends on it (`finalize` commits)."""
        if self.remote is None:
            return
        try:
            upload_checkpoint(self.remote, self.stage, self.key, self.attempt, folder)
            kept = {child.name for child in self.checkpoints.iterdir() if child.is_dir()}
            prune_checkpoints(self.remote, self.stage, self.key, self.attempt, kept)
        except (OSError, TransientError) as exc:
            log.warning("%s: not copied to the artifact store (%s); training goes on", folder.name, exc)

    def finalize(
        self,
        *,
        config: dict[str, Any],
        metrics: dict[str, Any],
        upstream: dict[str, str],
        code_version: str,
        keep_checkpoints: bool = False,
    ) -> StageResult:
        """Hash every output file into manifest.json, then write `_COMPLETE` last.

        With a remote store the commit happens there first: blobs, then the manifest with a conditional
        create. A writer that loses the race adopts the winner's manifest and files, and returns the
        winner's result. Which build wins needs no lock; adopting it rewrites this node's folder, which is
        why the caller holds the key's lock on this node (see distill.store.remote)."""
        if not keep_checkpoints:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
        files = {}
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            name = file.relative_to(self.path).as_posix()
            if name in (MANIFEST, COMPLETE) or name.startswith(f"{CHECKPOINTS}/") or "/." in f"/{name}":
                continue
            files[name] = {"size": file.stat().st_size, "sha256": sha256_file(file)}
        manifest = {
            "stage": self.stage,
            "key": self.key,
            # This build of the stage (provenance; not its identity, which is its files' content: content_hash).
            "build_id": uuid.uuid4().hex,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "distill_version": distill.__version__,
            "code_version": code_version,
            "config": config,
            "upstream": upstream,
            "metrics": metrics,
            "files": files,
        }
        data = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
        if self.remote is not None:
            self.remote.upload_blobs(self.path, files)
            committed = self.remote.commit_manifest(self.stage, self.key, data)
            if committed != data:  # another writer committed first: its build is the stage's
                self._adopt(committed)
            if not keep_checkpoints:
                self.remote.remove_checkpoints(self.stage, self.key)
            if committed != data:
                return self.result()
        atomic_write_bytes(self.path / MANIFEST, data)
        atomic_write_text(self.path / COMPLETE, sha256_bytes(data) + "\n")
        # Its attempts are in the manifest's metrics now (tasks.stage); a later rebuild counts its own. (A crash
        # between the line above and this one would leave them to be counted again by such a rebuild.)
        clear_attempts(self.attempts)
        return self.result()

    def _adopt(self, data: bytes) -> None:
        """Make the local directory the stage a remote manifest (`data`) describes: withdraw completion, drop
        outputs it does not list, fetch those missing or different (sha256-checked), then write the manifest's
        exact bytes and `_COMPLETE`."""
        (self.path / COMPLETE).unlink(missing_ok=True)
        files = manifest_files(data)
        if self.path.is_dir():
            shutil.rmtree(self.checkpoints, ignore_errors=True)
            for file in [p for p in self.path.rglob("*") if p.is_file()]:
                name = file.relative_to(self.path).as_posix()
                if name not in files and name != COMPLETE and "/." not in f"/{name}":
                    file.unlink(missing_ok=True)
        self.remote.download_files(self.path, files)
        atomic_write_bytes(self.path / MANIFEST, data)
        clear_attempts(self.attempts)
        atomic_write_text(self.path / COMPLETE, sha256_bytes(data) + "\n")
