"""Training checkpoints in an object store, so that a retry on another machine resumes where an attempt got to.

Each attempt at a stage writes under its own prefix, `<stage>/<key>/checkpoints/<attempt>/checkpoint-N/`,
and each checkpoint's `_COMPLETE` marker goes last, listing every file with its size and sha256. So
writers of one key on several nodes never touch each other's checkpoints: an attempt re-uploads and
prunes only its own, and no upload mixes two trainings' files under one name.

A resume takes the newest complete checkpoint over all attempts. Its files are fetched into a temporary
folder and checked against the marker's list before the folder is renamed into place; a checkpoint that
vanishes meanwhile (its attempt pruned it, or the stage finalized and removed `checkpoints/`) or fails
the check is skipped for the next newest: a missing remote checkpoint means "start from what is local",
never a failure. The whole `checkpoints/` prefix goes when the stage finalizes (`ObjectStore.remove_checkpoints`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from distill.store.fingerprint import sha256_file
from distill.store.remote import ObjectStore, matches

CHECKPOINT_DONE = "_COMPLETE"  # the last object of a remote checkpoint: the files it lists are all there
_MARKER = re.compile(rf"/(?P<attempt>[0-9a-f]+)/checkpoint-(?P<step>\d+)/{CHECKPOINT_DONE}$")

log = logging.getLogger("distill")


def new_attempt_id() -> str:
    """The prefix one attempt's checkpoints go under."""
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class RemoteCheckpoint:
    step: int
    attempt: str

    @property
    def name(self) -> str:
        return f"checkpoint-{self.step}"


def _folder(store: ObjectStore, stage: str, key: str, checkpoint: RemoteCheckpoint) -> str:
    return f"{store.checkpoints(stage, key)}/{checkpoint.attempt}/{checkpoint.name}"


def upload_checkpoint(store: ObjectStore, stage: str, key: str, attempt: str, folder: Path) -> None:
    """Copy a complete local `checkpoint-N` folder under this attempt's prefix, then its marker listing the files.

    FileNotFoundError, and no marker, when the folder is missing or changes while it is copied (the Trainer's
    rotation deletes old checkpoints as it saves new ones): a marker must never list part of a checkpoint."""
    remote = _folder(store, stage, key, RemoteCheckpoint(int(folder.name.rpartition("-")[2]), attempt))
    listed = _files(folder)
    files = {}
    with store.calls("uploading a checkpoint"):
        with contextlib.suppress(FileNotFoundError):  # re-saved by this attempt: incomplete until the new marker
            store.fs.rm_file(f"{remote}/{CHECKPOINT_DONE}")
        for name in listed:
            file = folder / name
            files[name] = {"size": file.stat().st_size, "sha256": sha256_file(file)}
            store.fs.put_file(str(file), f"{remote}/{name}")
        if _files(folder) != listed:
            raise FileNotFoundError(f"{folder} changed while it was copied")
        store.fs.pipe_file(f"{remote}/{CHECKPOINT_DONE}", json.dumps({"files": files}, indent=1).encode())


def _files(folder: Path) -> list[str]:
    """The files of a local checkpoint folder, relative and sorted; FileNotFoundError if it is not there."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not there")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def list_checkpoints(store: ObjectStore, stage: str, key: str, attempt: str | None = None) -> list[RemoteCheckpoint]:
    """The complete remote checkpoints (marker present), of one attempt or of all, newest first (one listing)."""
    with store.calls("listing checkpoints"):
        try:
            objects = store.fs.find(store.checkpoints(stage, key))
        except FileNotFoundError:
            return []
    found = [RemoteCheckpoint(int(m["step"]), m["attempt"]) for m in map(_MARKER.search, objects) if m]
    return sorted((c for c in found if attempt in (None, c.attempt)), key=lambda c: (c.step, c.attempt), reverse=True)


def fetch_newest_checkpoint(
    store: ObjectStore, stage: str, key: str, newer_than: int | None, into: Path
) -> Path | None:
    """Fetch the newest complete remote checkpoint newer than step `newer_than` (None: any) into `into`, as
    `into/checkpoint-N`; the next newest when one vanishes or fails its check meanwhile; None when none is usable."""
    for checkpoint in list_checkpoints(store, stage, key):
        if newer_than is not None and checkpoint.step <= newer_than:
            return None
        fetched = _fetch(store, stage, key, checkpoint, into)
        if fetched is not None:
            return fetched
    return None


def _fetch(store: ObjectStore, stage: str, key: str, checkpoint: RemoteCheckpoint, into: Path) -> Path | None:
    remote = _folder(store, stage, key, checkpoint)
    partial = into / f".{checkpoint.name}.{uuid.uuid4().hex}.partial"
    try:
        with store.calls("downloading a checkpoint"):
            files = json.loads(store.fs.cat_file(f"{remote}/{CHECKPOINT_DONE}"))["files"]
            for name in files:
                (partial / name).parent.mkdir(parents=True, exist_ok=True)
                store.fs.get_file(f"{remote}/{name}", str(partial / name))
        damaged = [name for name, entry in files.items() if not matches(partial / name, entry)]
        if damaged:
            log.warning(
                "remote %s of attempt %s: %s fail their marker's check; not used",
                checkpoint.name,
                checkpoint.attempt,
                ", ".join(sorted(damaged)),
            )
            return None
        target = into / checkpoint.name
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return target
    except (FileNotFoundError, ValueError, KeyError) as exc:  # removed meanwhile, or a marker cut short
        log.warning(
            "remote %s of attempt %s is gone or unreadable (%s); not used", checkpoint.name, checkpoint.attempt, exc
        )
        return None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def prune_checkpoints(store: ObjectStore, stage: str, key: str, attempt: str, keep: set[str]) -> None:
    """Delete this attempt's remote checkpoints not named in `keep` (the Trainer rotated them out locally):
    the marker first, so no reader takes a checkpoint whose files are going."""
    for checkpoint in list_checkpoints(store, stage, key, attempt):
        if checkpoint.name not in keep:
            remote = _folder(store, stage, key, checkpoint)
            with store.calls("pruning checkpoints"), contextlib.suppress(FileNotFoundError):
                store.fs.rm_file(f"{remote}/{CHECKPOINT_DONE}")
                store.fs.rm(remote, recursive=True)
