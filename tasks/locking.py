"""A Prefect lock manager on OS file locks (flock), so a killed run never leaves a stage locked.

Prefect's `FileSystemLockManager` records a lock as a JSON file with an optional expiry.
Training can take hours, so no expiry is safe to set, and without one a `kill -9` leaves
the lock behind and the next run waits forever. `flock` locks belong to the open file:
the kernel drops them when the holding process dies, however it dies.

Two concurrent runs of one stage: the first takes the lock and trains, the second blocks
on the lock, then finds the committed cache record and returns it as Cached.

With an object-store artifact root the lock files live in each node's local cache: they
stop one machine from computing a stage twice, nothing more. Runs on different machines
may both compute it; the store's conditional commit of the manifest makes one build win
for all of them (distill/store/remote.py). Locks save compute; they never decide correctness.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import IO

# Locks held by this process, shared by every manager instance (Prefect copies task options).
_HELD: dict[tuple[str, str], tuple[str, IO[bytes]]] = {}
_HELD_GUARD = threading.Lock()
_POLL_SECONDS = 0.2


class FlockLockManager:
    """Implements `prefect.locking.protocol.LockManager` with one `flock`ed file per cache key."""

    def __init__(self, lock_files_directory: Path) -> None:
        self.lock_files_directory = Path(lock_files_directory)

    def _path(self, key: str) -> Path:
        # Keys may contain characters that are awkward in file names; a digest never does.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.lock_files_directory / f"{digest}.lock"

    def _slot(self, key: str) -> tuple[str, str]:
        return (str(self.lock_files_directory), key)

    def _try_flock(self, key: str, *, record_holder: bool = True) -> IO[bytes] | None:
        self.lock_files_directory.mkdir(parents=True, exist_ok=True)
        handle = open(self._path(key), "ab")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        if record_holder:  # for a person inspecting a stuck run; the lock itself is the flock
            os.ftruncate(handle.fileno(), 0)
            handle.write(f"pid {os.getpid()}\n".encode())
            handle.flush()
        return handle

    def acquire_lock(
        self, key: str, holder: str, acquire_timeout: float | None = None, hold_timeout: float | None = None
    ) -> bool:
        # hold_timeout is not honoured: the lock lasts until release or process death, which is the point.
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        while True:
            with _HELD_GUARD:
                held = _HELD.get(self._slot(key))
                if held is not None and held[0] == holder:
                    return True
                if held is None:
                    handle = self._try_flock(key)
                    if handle is not None:
                        _HELD[self._slot(key)] = (holder, handle)
                        return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)

    async def aacquire_lock(
        self, key: str, holder: str, acquire_timeout: float | None = None, hold_timeout: float | None = None
    ) -> bool:
        import anyio

        return await anyio.to_thread.run_sync(self.acquire_lock, key, holder, acquire_timeout, hold_timeout)

    def release_lock(self, key: str, holder: str) -> None:
        with _HELD_GUARD:
            held = _HELD.get(self._slot(key))
            if held is None or held[0] != holder:
                raise ValueError(f"No lock held by {holder} for transaction with key {key}")
            del _HELD[self._slot(key)]
            fcntl.flock(held[1].fileno(), fcntl.LOCK_UN)
            held[1].close()

    def is_locked(self, key: str) -> bool:
        with _HELD_GUARD:
            if self._slot(key) in _HELD:
                return True
            if not self._path(key).exists():  # never locked; asking must not leave a lock file behind
                return False
            handle = self._try_flock(key, record_holder=False)
            if handle is None:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
            return False

    def is_lock_holder(self, key: str, holder: str) -> bool:
        with _HELD_GUARD:
            held = _HELD.get(self._slot(key))
            return held is not None and held[0] == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_locked(key):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)
        return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        import anyio

        return await anyio.to_thread.run_sync(self.wait_for_lock, key, timeout)
