"""Per-device locks (tasks/compute.py) across real processes: the same device is taken in turns, different
devices at once. Device ids stand in for GPU UUIDs, so this runs without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOLD_S = 1.5

# Waits until an agreed wall-clock moment, takes the locks, holds them HOLD_S, prints when it held them.
_HOLDER = """
import json, sys, time
from pathlib import Path
from tasks.compute import device_locks
devices, lock_dir, start_at, hold = json.loads(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start_at - time.time()))
with device_locks(devices, lock_dir):
    acquired = time.time()
    time.sleep(hold)
    released = time.time()
print(json.dumps([acquired, released]))
"""


def _hold_at_once(lock_dir: Path, *device_sets: list[str]) -> list[tuple[float, float]]:
    """Start one process per device set; all try to take their locks at the same moment."""
    start_at = time.time() + 3.0  # after every process has started Python and imported the module
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _HOLDER, json.dumps(devices), str(lock_dir), str(start_at), str(HOLD_S)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for devices in device_sets
    ]
    held = []
    for process in processes:
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        held.append(tuple(json.loads(output)))
    return held


def test_one_device_is_taken_in_turns(tmp_path: Path) -> None:
    # The second holder asks for GPU-1 and GPU-0 in the other order: sorted locking, so no deadlock.
    (a_from, a_to), (b_from, b_to) = _hold_at_once(tmp_path, ["GPU-0", "GPU-1"], ["GPU-1", "GPU-0"])
    first, second = sorted([(a_from, a_to), (b_from, b_to)])
    assert second[0] >= first[1], "two processes held one device at once"


def test_different_devices_never_wait_for_each_other(tmp_path: Path) -> None:
    (a_from, a_to), (b_from, b_to) = _hold_at_once(tmp_path, ["GPU-0"], ["GPU-1"])
    assert max(a_from, b_from) < min(a_to, b_to), "a process on another device waited"
    assert abs(a_from - b_from) < HOLD_S / 2


def test_no_devices_no_lock(tmp_path: Path) -> None:
    from tasks.compute import device_locks

    with device_locks([], tmp_path / "locks"):
        pass
    assert list((tmp_path / "locks").iterdir()) == []


def test_a_stage_locks_every_gpu_its_process_sees(tmp_path: Path, monkeypatch) -> None:
    # The Trainer's DataParallel uses every visible GPU, so a one-GPU stage in a process seeing two holds both.
    import fcntl

    import pytest

    from distill.errors import DistillError
    from tasks import compute

    monkeypatch.setattr(compute, "visible_devices", lambda: ["GPU-a", "GPU-b"])
    monkeypatch.setenv(compute.DEVICE_LOCK_DIR_ENV, str(tmp_path / "locks"))

    def held(device: str) -> bool:  # flock: another open file description conflicts, even in this process
        with open(tmp_path / "locks" / f"{device}.lock", "rb") as other:
            try:
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False

    with compute.compute_slot(devices=1):
        assert held("GPU-a") and held("GPU-b")
    assert not held("GPU-a") and not held("GPU-b")
    with pytest.raises(DistillError, match="needs 3 GPUs; this process sees 2"), compute.compute_slot(devices=3):
        pass


def test_lock_folder_and_files_are_writable_by_every_user(tmp_path: Path) -> None:
    import os

    from tasks.compute import device_locks

    previous = os.umask(0o077)  # a strict umask must not make the shared folder private
    try:
        with device_locks(["GPU-0"], tmp_path / "locks"):
            pass
    finally:
        os.umask(previous)
    assert (tmp_path / "locks").stat().st_mode & 0o7777 == 0o1777  # as /tmp: all write, none delete another's
    assert (tmp_path / "locks" / "GPU-0.lock").stat().st_mode & 0o777 == 0o666


def _as_user(uid: int, gid: int, body) -> tuple[int, str]:
    """Run `body()` in a forked child switched to another user (the interpreter under /root may not be
    executable by it, so no exec); its exit status and what it returned."""
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.write(write, str(body()).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as out:
        output = out.read()
    return os.waitpid(pid, 0)[1], output


def test_a_second_user_shares_the_locks_the_first_created() -> None:
    import os
    import pwd
    import shutil
    import tempfile

    import pytest

    from distill.errors import DistillError
    from tasks.compute import device_locks

    if os.getuid() != 0:
        pytest.skip("needs root to run a process as another user")
    other = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="distill-locks-"))  # not tmp_path: `nobody` must reach it
    try:
        base.chmod(0o755)
        with device_locks(["GPU-0"], base / "shared"):  # root comes first
            pass
        (base / "private").mkdir(mode=0o755)  # root's, not writable by `nobody`

        def as_nobody() -> str:  # lock root's lock file and a new one, then try a folder it cannot write
            with device_locks(["GPU-0", "GPU-1"], base / "shared"):
                pass
            try:
                with device_locks(["GPU-0"], base / "private"):
                    pass
            except DistillError as exc:
                return str(exc)
            return "no error"

        status, message = _as_user(other.pw_uid, other.pw_gid, as_nobody)
        assert status == 0, message
        assert (base / "shared" / "GPU-1.lock").stat().st_uid == other.pw_uid
        # One line, naming the file and the way out.
        assert "\n" not in message and str(base / "private" / "GPU-0.lock") in message, message
        assert "DISTILL_DEVICE_LOCK_DIR" in message, message
    finally:
        shutil.rmtree(base, ignore_errors=True)
