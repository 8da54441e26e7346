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
