"""Prefect's cache records, read from the artifact store: one cache, where the files are.

Prefect decides that a task run is `Cached` by reading a result record under its cache key.
This storage answers that read from the stage directory the key names,
`<artifact_root>/<stage>/<key>/`: when the directory is complete and every file matches its
manifest, the record is the directory's `StageResult`; otherwise there is no record, and the
stage runs (resuming from its checkpoints, or recomputing what was damaged). Writing a record
stores nothing: by the time Prefect writes, the stage has finished its directory, which is the
record. So nothing beside the artifacts can go stale: delete or damage a stage directory and
its cache entry goes with it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from prefect.filesystems import WritableFileSystem
from prefect.results import ResultRecord, ResultRecordMetadata
from prefect.serializers import JSONSerializer
from prefect.settings import PREFECT_API_URL

from distill.store.artifacts import StageDirectory


def stage_directory(root: Path, key: str) -> StageDirectory:
    """The directory a cache key names: keys are `<stage kind, dashed>-<digest>` (tasks.stage.stage_key)."""
    kind = key.rpartition("-")[0].replace("-", "_")
    return StageDirectory(root, kind, key)


class StageDirectoryRecords(WritableFileSystem):
    """Result storage whose records are the stage directories under `root` (see the module docstring)."""

    _block_type_name = "Distill Stage Directories"
    root: str

    @classmethod
    def for_root(cls, root: Path) -> StageDirectoryRecords:
        """The storage for an artifact root, saved on the Prefect server (Prefect only takes saved result
        storage: a worker or a later run reads records through the saved block). Saved once per process."""
        return _saved(str(root), PREFECT_API_URL.value() or "")

    def _resolve_path(self, path: str) -> None:
        # Keys stay keys: Prefect would otherwise turn them into paths under a base path of its own.
        return None

    def _read(self, key: str) -> bytes | None:
        directory = stage_directory(Path(self.root), key)
        if not directory.verify().ok:
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
