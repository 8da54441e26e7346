"""An artifact root on an object store (`s3://bucket/prefix`), shared by workers on several machines.

Stage bodies still write folders (Hugging Face wants them): for a remote root the local root is a
per-node cache, `$DISTILL_CACHE_DIR/artifacts/<sha256 of the root URL>/`, laid out like a local
root. The store holds, under the prefix:

- `blobs/sha256/<hex>`: every output file, content-addressed (uploaded once, skipped when present);
- `<stage>/<key>/manifest.json`: written last, with a conditional create (`If-None-Match: *`). Its
  presence is what makes a stage complete: blobs go first, so no reader sees a manifest whose
  blobs are missing. It is the truth for every node: `StageDirectory.verify` reads it each time
  (one GET) and serves the local copy only when its manifest has the same bytes;
- `<stage>/<key>/checkpoints/<attempt>/checkpoint-N/...` while training, one prefix per attempt, so a
  retry on another machine resumes (`distill.store.remote_checkpoints`); removed when the stage finalizes;
- `runs/<flow run name>/`: the run report (plain puts).

Racing writers of one key on different nodes need no lock: exactly one conditional create succeeds,
and every other writer takes the winner's manifest, replaces its own outputs with the winner's files
and returns the winner's result (same manifest and content hash, so later stages' keys agree). The
store's state never depends on a lock. The node's cache does, in one place: adopting a manifest
(`StageDirectory._adopt`, from `verify` or a lost commit) deletes and replaces files in the stage's local
folder, and only the flock lock on that node (tasks/locking.py) keeps it from doing so under a run
that is training the same key there. So every writer of the cache must hold the key's lock, as
`tasks/stage.py` does; across nodes the locks only save duplicate compute.

Errors (`store_errors`): connection failures, timeouts, throttling, 5xx and 409 answers are transient
(Prefect retries the stage); missing credentials, invalid parameters, a missing region or bucket and
403 answers are the setting's (ConfigError naming artifact_root); anything else propagates as a bug.

Blobs of a losing writer that the winner does not share stay in the store: nothing collects them yet.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from distill.errors import ConfigError, TransientError, first_line
from distill.store.fingerprint import sha256_file

S3_EXTRA = "pip install 'distill[s3]'"
REMOTE_SCHEMES = ("s3",)  # what the store is tested with (tests/distill/test_object_store.py, against moto)
BLOBS = "blobs/sha256"


def is_remote(artifact_root: str) -> bool:
    return urlparse(artifact_root).scheme in REMOTE_SCHEMES


def cache_root(artifact_root: str) -> Path:
    """This node's local copy of a remote root: one folder per root URL under DISTILL_CACHE_DIR."""
    base = Path(os.environ.get("DISTILL_CACHE_DIR", Path.home() / ".cache" / "distill")).expanduser()
    digest = hashlib.sha256(artifact_root.rstrip("/").encode()).hexdigest()[:16]
    return (base / "artifacts" / digest).resolve()


# Answers that say "come back later": S3 throttling, a conditional write racing another (AWS's 409), timeouts.
_TRANSIENT_CODES = frozenset({"SlowDown", "RequestTimeout", "ConditionalRequestConflict", "InternalError"})
# NotImplemented (501): a store without conditional writes; retrying cannot help, and the stage would retrain.
_CONFIG_CODES = frozenset(
    {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NotImplemented"}
)


@contextlib.contextmanager
def store_errors(url: str, what: str) -> Iterator[None]:
    """Classify what a call to the store raised (see the module docstring); `url` is the artifact root."""
    try:
        yield
    except Exception as exc:
        kind = _store_error_kind(exc)
        if kind == "transient":
            raise TransientError(f"object store: {what}: {first_line(exc)}") from exc
        if kind == "config":
            raise ConfigError(f"artifact_root: {url}: {what}: {first_line(exc)}") from exc
        raise


def _store_error_kind(exc: BaseException) -> str | None:
    """'transient', 'config', or None (not a store failure this module knows: it propagates unchanged)."""
    from botocore import exceptions as boto

    configuration = (
        boto.NoCredentialsError,
        boto.PartialCredentialsError,
        boto.CredentialRetrievalError,
        boto.UnknownCredentialError,
        boto.ParamValidationError,
        boto.NoRegionError,
        boto.ProfileNotFound,
        boto.ValidationError,
        boto.InvalidConfigError,
    )
    if isinstance(exc, (TransientError, ConfigError)):
        return None  # classified already
    if isinstance(exc, configuration):
        return "config"
    if isinstance(exc, (boto.HTTPClientError, boto.ConnectionError, boto.IncompleteReadError, boto.ChecksumError)):
        return "transient"
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return "transient"
    # s3fs raises an OSError (FileNotFoundError, PermissionError, ...) from the ClientError of an HTTP answer
    # it has already retried where it knows to (s3fs.errors.translate_boto_error).
    answer = getattr(exc.__cause__, "response", None) if isinstance(exc, OSError) else None
    if isinstance(exc, boto.ClientError):
        answer = exc.response
    if not isinstance(answer, dict):
        return None
    status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = answer.get("Error", {}).get("Code")
    if code in _CONFIG_CODES or status in (403, 501):
        return "config"
    if code in _TRANSIENT_CODES or status in (408, 409, 429) or (isinstance(status, int) and status >= 500):
        return "transient"
    return None


@dataclass(frozen=True)
class ObjectStore:
    """The objects of one remote artifact root; `fs` is an fsspec filesystem, `prefix` is `bucket/prefix`."""

    url: str
    fs: Any
    prefix: str

    def _path(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def calls(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Around calls to the store: their failures classified (store_errors), naming this root."""
        return store_errors(self.url, what)

    def blob(self, sha256: str) -> str:
        return self._path(BLOBS, sha256)

    def manifest(self, stage: str, key: str) -> str:
        return self._path(stage, key, "manifest.json")

    def checkpoints(self, stage: str, key: str) -> str:
        """Every attempt's checkpoints of a stage (distill.store.remote_checkpoints)."""
        return self._path(stage, key, "checkpoints")

    # ------------------------------------------------------------------ stages

    def read_manifest(self, stage: str, key: str) -> bytes | None:
        """The committed manifest's bytes, or None while the stage is not complete in the store."""
        with self.calls("reading a manifest"):
            try:
                return self.fs.cat_file(self.manifest(stage, key))
            except FileNotFoundError:
                return None

    def upload_blobs(self, folder: Path, files: dict[str, dict[str, Any]]) -> None:
        """Put each listed file of `folder` at its content address, unless an object is already there."""
        with self.calls("uploading outputs"):
            for name, entry in files.items():
                target = self.blob(entry["sha256"])
                if not self.fs.exists(target):  # a put is atomic: the object appears whole or not at all
                    self.fs.put_file(str(folder / name), target)

    def commit_manifest(self, stage: str, key: str, data: bytes) -> bytes:
        """Create the stage's manifest unless one exists; returns the manifest that won (ours or another's).

        Whatever the conditional create raises, the store's manifest decides: s3fs reads 412 as
        FileExistsError only when the answer names the If-None-Match condition, other stores answer
        otherwise, and a retried put whose first answer was lost finds its own manifest. Ours there: we
        won; another: we lost (the caller adopts it); none: the create failed, transiently."""
        try:
            with self.calls("committing a manifest"):
                self.fs.pipe_file(self.manifest(stage, key), data, mode="create")  # If-None-Match: *
            return data
        except (OSError, TransientError) as exc:
            committed = self.read_manifest(stage, key)
            if committed is None:
                raise TransientError(f"object store: committing a manifest: {first_line(exc)}") from exc
            return committed

    def download_files(self, folder: Path, files: dict[str, dict[str, Any]]) -> None:
        """Make `folder`'s listed files those of the manifest: each missing or different one is fetched to a
        temporary name, checked against its sha256 and renamed into place."""
        with self.calls("downloading outputs"):
            for name, entry in files.items():
                target = folder / name
                if matches(target, entry):
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
        with self.calls("discarding a stage"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.manifest(stage, key))
        self.remove_checkpoints(stage, key)

    def remove_checkpoints(self, stage: str, key: str) -> None:
        """Every attempt's remote checkpoints (the stage is complete, or discarded)."""
        with self.calls("removing checkpoints"), contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.checkpoints(stage, key), recursive=True)

    # ------------------------------------------------------------------ other folders

    def put_folder(self, folder: Path, relative: str) -> str:
        """Copy a local folder's files to `<prefix>/<relative>/` (plain puts: e.g. a run's report); its URL."""
        with self.calls("uploading a folder"):
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
            reason = first_line(exc)
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


def matches(file: Path, entry: dict[str, Any]) -> bool:
    return file.is_file() and file.stat().st_size == entry["size"] and sha256_file(file) == entry["sha256"]


def manifest_files(data: bytes) -> dict[str, dict[str, Any]]:
    return json.loads(data)["files"]
