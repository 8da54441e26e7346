"""The flock lock manager: exclusive across processes, and released when its holder is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tasks.locking import FlockLockManager

HOLD = """
import sys, time
from tasks.locking import FlockLockManager
manager = FlockLockManager(sys.argv[1])
assert manager.acquire_lock("stage-key", holder="child")
print("locked", flush=True)
time.sleep(60)
"""


def test_lock_is_exclusive_and_dies_with_its_holder(tmp_path: Path) -> None:
    manager = FlockLockManager(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert manager.is_locked("stage-key")
        assert not manager.acquire_lock("stage-key", holder="me", acquire_timeout=0.3)
        assert not manager.wait_for_lock("stage-key", timeout=0.3)
        child.send_signal(signal.SIGKILL)  # no cleanup runs; the kernel drops the flock
        child.wait(timeout=10)
        assert manager.wait_for_lock("stage-key", timeout=5)
        assert manager.acquire_lock("stage-key", holder="me", acquire_timeout=5)
    finally:
        child.kill()
    assert manager.is_lock_holder("stage-key", "me") and not manager.is_lock_holder("stage-key", "other")
    assert manager.acquire_lock("stage-key", holder="me", acquire_timeout=0)  # re-entrant for its holder
    manager.release_lock("stage-key", holder="me")
    assert not manager.is_locked("stage-key")


def test_threads_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    import threading

    manager = FlockLockManager(tmp_path)
    order: list[str] = []
    assert manager.acquire_lock("k", holder="first")

    def second() -> None:
        assert manager.acquire_lock("k", holder="second", acquire_timeout=10)
        order.append("second")
        manager.release_lock("k", holder="second")

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)
    order.append("first")
    manager.release_lock("k", holder="first")
    thread.join(timeout=10)
    assert order == ["first", "second"]


def test_asking_about_a_key_never_locked_leaves_no_lock_file(tmp_path: Path) -> None:
    locks = FlockLockManager(tmp_path / "locks")
    assert not locks.is_locked("never-taken")
    assert not (tmp_path / "locks").exists() or not any((tmp_path / "locks").iterdir())
