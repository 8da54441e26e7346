"""Prefect's cache records, read from the artifact store: one cache, where the files are.

Prefect decides that a task run is `Cached` by reading a result record under its cache key.
This storage answers that read from the stage directory the key names,
`<artifact_root>/<stage>/<key>/`: when the directory is complete and every file matches its
manifest, the record is the directory's `StageResult`; otherwise there is no record, and the
stage runs (resuming from its checkpoints, or recomputing what was damaged). Writing a record
stores nothing: by the time Prefect writes, the stage has finished its directory, which is the
record. So nothing beside the artifacts can go stale: delete or damage a stage directory and
its cache entry goes with it.

For an object-store root (`s3://...`) the block holds the root's URL, which every node resolves to
its own cache: reading a record verifies the cached directory, fetching a stage committed by
another node from the store, so a worker anywhere sees it as Cached.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from prefect.filesystems import WritableFileSystem
from prefect.results import ResultRecord, ResultRecordMetadata
from prefect.serializers import JSONSerializer
from prefect.settings import PREFECT_API_URL

from distill.errors import TransientError
from distill.store.artifacts import StageDirectory, resolve_root
from distill.store.artifacts import stage_directory as directory_under
from distill.store.remote import is_remote


def stage_directory(artifact_root: str, key: str) -> StageDirectory:
    """The directory a cache key names: keys are `<stage kind, dashed>-<digest>` (tasks.stage.stage_key)."""
    kind = key.rpartition("-")[0].replace("-", "_")
    return directory_under(artifact_root, kind, key)


class StageDirectoryRecords(WritableFileSystem):
    """Result storage whose records are the stage directories under `root` (see the module docstring)."""

    _block_type_name = "Distill Stage Directories"
    root: str  # an absolute local path, or an object store's URL (each node reads it through its cache)

    @classmethod
    def for_root(cls, artifact_root: str) -> StageDirectoryRecords:
        """The storage for an artifact root, saved on the Prefect server (Prefect only takes saved result
        storage: a worker or a later run reads records through the saved block). Saved once per process."""
        # A local root is saved resolved (a relative path would mean another folder in another working
        # directory); a remote root as its URL, which every node can resolve.
        root = artifact_root.rstrip("/") if is_remote(artifact_root) else str(resolve_root(artifact_root))
        return _saved(root, PREFECT_API_URL.value() or "")

    def _resolve_path(self, path: str) -> None:
        # Keys stay keys: Prefect would otherwise turn them into paths under a base path of its own.
        return None

    def _read(self, key: str) -> bytes | None:
        directory = stage_directory(self.root, key)
        try:
            usable = directory.verify().ok
        except TransientError:
            # The object store did not answer: no record, so the task runs, and its own check of the store
            # fails there as a transient error, which the stage's retries handle.
            return None
        if not usable:
            return None
        metadata = ResultRecordMetadata(
            serializer=JSONSerializer(), expiration=None, storage_key=key, storage_block_id=self._block_document_id
        )
        return ResultRecord(metadata=metadata, result=directory.result()).serialize()

    def read_path(self, path: str, _sync: Any = None) -> bytes | None:
        return self._read(path)

    async def aread_path(self, path: str) -> bytes | None:
        return self._read(path)

    def write_path(self, path: str, content: bytes, _sync: Any = None) -> str:
        return path  # the stage directory, complete before Prefect writes, is the record

    async def awrite_path(self, path: str, content: bytes) -> str:
        return path


@functools.cache
def _saved(root: str, api_url: str) -> StageDirectoryRecords:
    block = StageDirectoryRecords(root=root)
    # One block document per artifact root, named by its path's hash (names allow few characters).
    block.save(name=f"artifacts-{hashlib.sha256(root.encode()).hexdigest()[:16]}", overwrite=True)
    return block
