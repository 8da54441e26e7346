"""An artifact root on an object store (`s3://bucket/prefix`), shared by workers on several machines.

Stage bodies still write folders (Hugging Face wants them): for a remote root the local root is a
per-node cache, `$DISTILL_CACHE_DIR/artifacts/<sha256 of the root URL>/`, laid out like a local
root. The store holds, under the prefix:

- `blobs/sha256/<hex>`: every output file, content-addressed (uploaded once, skipped when present);
- `<stage>/<key>/manifest.json`: written last, with a conditional create (`If-None-Match: *`). Its
  presence is what makes a stage complete: blobs go first, so no reader sees a manifest whose
  blobs are missing;
- `<stage>/<key>/checkpoints/checkpoint-N/...` and its `_COMPLETE` marker (last) while training,
  so a retry on another machine resumes; removed when the stage finalizes;
- `runs/<flow run name>/`: the run report (plain puts).

Racing writers are safe without any lock: exactly one conditional create succeeds, and every other
writer takes the winner's manifest, replaces its own outputs with the winner's files and returns the
winner's result (same manifest and content hash, so later stages' keys agree). Locks (the flock lock
manager on each node's cache) only save duplicate compute on one node.

Blobs of a losing writer that the winner does not share stay in the store: nothing collects them yet.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from distill.errors import ConfigError, TransientError
from distill.store.fingerprint import sha256_file

S3_EXTRA = "pip install 'distill[s3]'"
REMOTE_SCHEMES = ("s3",)  # what the store is tested with (tests/distill/test_object_store.py, against moto)
BLOBS = "blobs/sha256"
CHECKPOINT_DONE = "_COMPLETE"  # the last object of a remote checkpoint: its files are all there


def is_remote(artifact_root: str) -> bool:
    return urlparse(artifact_root).scheme in REMOTE_SCHEMES


def cache_root(artifact_root: str) -> Path:
    """This node's local copy of a remote root: one folder per root URL under DISTILL_CACHE_DIR."""
    base = Path(os.environ.get("DISTILL_CACHE_DIR", Path.home() / ".cache" / "distill")).expanduser()
    digest = hashlib.sha256(artifact_root.rstrip("/").encode()).hexdigest()[:16]
    return (base / "artifacts" / digest).resolve()


@contextlib.contextmanager
def _network(what: str) -> Iterator[None]:
    """Connection failures mid-stage are transient (Prefect retries the stage); anything else propagates."""
    from botocore.exceptions import BotoCoreError

    try:
        yield
    except (BotoCoreError, TimeoutError, ConnectionError) as exc:
        raise TransientError(f"object store: {what}: {exc}") from exc


@dataclass(frozen=True)
class ObjectStore:
    """The objects of one remote artifact root; `fs` is an fsspec filesystem, `prefix` is `bucket/prefix`."""

    url: str
    fs: Any
    prefix: str

    def _path(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def blob(self, sha256: str) -> str:
        return self._path(BLOBS, sha256)

    def manifest(self, stage: str, key: str) -> str:
        return self._path(stage, key, "manifest.json")

    def checkpoints(self, stage: str, key: str) -> str:
        return self._path(stage, key, "checkpoints")

    # ------------------------------------------------------------------ stages

    def read_manifest(self, stage: str, key: str) -> bytes | None:
        """The committed manifest's bytes, or None while the stage is not complete in the store."""
        with _network("reading a manifest"):
            try:
                return self.fs.cat_file(self.manifest(stage, key))
            except FileNotFoundError:
                return None

    def upload_blobs(self, folder: Path, files: dict[str, dict[str, Any]]) -> None:
        """Put each listed file of `folder` at its content address, unless an object is already there."""
        with _network("uploading outputs"):
            for name, entry in files.items():
                target = self.blob(entry["sha256"])
                if not self.fs.exists(target):  # a put is atomic: the object appears whole or not at all
                    self.fs.put_file(str(folder / name), target)

    def commit_manifest(self, stage: str, key: str, data: bytes) -> bytes:
        """Create the stage's manifest unless one exists; returns the manifest that won (ours or another's)."""
        path = self.manifest(stage, key)
        with _network("committing a manifest"):
            try:
                self.fs.pipe_file(path, data, mode="create")  # If-None-Match: *
                return data
            except FileExistsError:  # s3fs's reading of 412 PreconditionFailed: another writer committed first
                return self.fs.cat_file(path)

    def download_files(self, folder: Path, files: dict[str, dict[str, Any]]) -> None:
        """Make `folder`'s listed files those of the manifest: each missing or different one is fetched to a
        temporary name, checked against its sha256 and renamed into place."""
        with _network("downloading outputs"):
            for name, entry in files.items():
                target = folder / name
                if _matches(target, entry):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
                try:
                    self.fs.get_file(self.blob(entry["sha256"]), str(partial))
                    if sha256_file(partial) != entry["sha256"]:
                        raise TransientError(f"object store: blob {entry['sha256']} for {name} fails its sha256 check")
                    os.replace(partial, target)
                finally:
                    partial.unlink(missing_ok=True)

    def discard(self, stage: str, key: str) -> None:
        """Withdraw a stage (an explicit refresh): its manifest and checkpoints; blobs stay, they may be shared."""
        with _network("discarding a stage"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.manifest(stage, key))
            self.remove_checkpoints(stage, key)

    # ------------------------------------------------------------------ checkpoints

    def upload_checkpoint(self, stage: str, key: str, folder: Path) -> None:
        """Copy a complete local `checkpoint-N` folder, then its marker: a remote checkpoint without the
        marker is incomplete and never resumed from."""
        remote = f"{self.checkpoints(stage, key)}/{folder.name}"
        with _network("uploading a checkpoint"):
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                self.fs.put_file(str(file), f"{remote}/{file.relative_to(folder).as_posix()}")
            self.fs.pipe_file(f"{remote}/{CHECKPOINT_DONE}", b"")

    def checkpoint_steps(self, stage: str, key: str) -> list[int]:
        """Steps of the remote checkpoints whose marker is present, newest first."""
        with _network("listing checkpoints"):
            try:
                names = self.fs.ls(self.checkpoints(stage, key), detail=False)
            except FileNotFoundError:
                return []
            steps = []
            for name in names:
                base = name.rstrip("/").rsplit("/", 1)[-1]
                if base.startswith("checkpoint-") and base[len("checkpoint-") :].isdigit():
                    if self.fs.exists(f"{name.rstrip('/')}/{CHECKPOINT_DONE}"):
                        steps.append(int(base[len("checkpoint-") :]))
            return sorted(steps, reverse=True)

    def download_checkpoint(self, stage: str, key: str, step: int, checkpoints: Path) -> Path:
        """Fetch remote `checkpoint-<step>` into `checkpoints/` (assembled under a temporary name, then renamed)."""
        name = f"checkpoint-{step}"
        target, partial = checkpoints / name, checkpoints / f".{name}.{uuid.uuid4().hex}.partial"
        with _network("downloading a checkpoint"):
            try:
                self.fs.get(f"{self.checkpoints(stage, key)}/{name}/", str(partial), recursive=True)
                (partial / CHECKPOINT_DONE).unlink(missing_ok=True)
                shutil.rmtree(target, ignore_errors=True)
                partial.rename(target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        return target

    def prune_checkpoints(self, stage: str, key: str, keep: set[str]) -> None:
        """Delete remote checkpoints not named in `keep` (the Trainer rotated them out locally)."""
        with _network("pruning checkpoints"):
            for step in self.checkpoint_steps(stage, key):
                if f"checkpoint-{step}" not in keep:
                    self.fs.rm(f"{self.checkpoints(stage, key)}/checkpoint-{step}", recursive=True)

    def remove_checkpoints(self, stage: str, key: str) -> None:
        with _network("removing checkpoints"), contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.checkpoints(stage, key), recursive=True)

    # ------------------------------------------------------------------ other folders

    def put_folder(self, folder: Path, relative: str) -> str:
        """Copy a local folder's files to `<prefix>/<relative>/` (plain puts: e.g. a run's report); its URL."""
        with _network("uploading a folder"):
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                self.fs.put_file(str(file), self._path(relative, file.relative_to(folder).as_posix()))
        return f"{self.url.rstrip('/')}/{relative}"

    def probe(self) -> None:
        """Put and delete an object under the prefix; ConfigError naming artifact_root when that fails."""
        fs = _filesystem(self.url, quick=True)
        probe = self._path(f".write-test-{uuid.uuid4().hex}")
        try:
            fs.pipe_file(probe, b"")
            fs.rm_file(probe)
        except Exception as exc:  # noqa: BLE001 - any failure here is the setting's: bucket, credentials, endpoint
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"artifact_root: {self.url}: cannot write to the object store ({reason})") from None


def open_store(artifact_root: str) -> ObjectStore:
    """The object store of a remote root; ConfigError when its filesystem package is missing."""
    parsed = urlparse(artifact_root)
    prefix = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
    if not parsed.netloc:
        raise ConfigError(f"artifact_root: {artifact_root!r}: name a bucket ({parsed.scheme}://bucket/prefix)")
    return ObjectStore(artifact_root.rstrip("/"), _filesystem(artifact_root), prefix)


def _filesystem(artifact_root: str, *, quick: bool = False) -> Any:
    """The s3fs filesystem, one per process and endpoint; credentials, region and endpoint come from the
    standard AWS settings (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3, ~/.aws/config)."""
    try:
        import s3fs  # noqa: F401 - asked each time, so a missing package is reported wherever it is needed
    except ImportError:
        raise ConfigError(f"artifact_root: {artifact_root}: needs the s3fs package ({S3_EXTRA})") from None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return _cached_filesystem(endpoint, os.environ.get("AWS_ACCESS_KEY_ID"), quick)


@functools.cache
def _cached_filesystem(endpoint: str | None, access_key: str | None, quick: bool) -> Any:
    import s3fs

    # Listings are never cached: whether a manifest or blob exists must be asked of the store each time.
    options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    if quick:  # the preflight probe: one attempt, a short connect timeout, so a wrong endpoint fails in seconds
        options["config_kwargs"] = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 1}}
    fs = s3fs.S3FileSystem(**options)
    if quick:
        fs.retries = 1
    return fs


def _matches(file: Path, entry: dict[str, Any]) -> bool:
    return file.is_file() and file.stat().st_size == entry["size"] and sha256_file(file) == entry["sha256"]


def manifest_files(data: bytes) -> dict[str, dict[str, Any]]:
    return json.loads(data)["files"]
