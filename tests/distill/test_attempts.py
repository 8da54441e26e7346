"""A stage's time over all its attempts: a failed attempt counts to its end, a killed one to its last heartbeat."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.store.attempts import attempt, clear_attempts

ROOT = Path(__file__).resolve().parents[2]


def test_failed_and_killed_attempts_count_toward_the_one_that_finishes(tmp_path: Path) -> None:
    folder = tmp_path / ".attempts"

    # 1. An attempt that raises (Prefect retries it in the same process): counted up to its end.
    with pytest.raises(OSError), attempt(folder):
        time.sleep(0.3)
        raise OSError("Connection reset by peer")

    # 2. An attempt killed with -9 in its own process: counted up to its last heartbeat before the kill.
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom distill.store.attempts import attempt\n"
        f"with attempt(Path({str(folder)!r}), heartbeat_seconds=0.05):\n"
        "    print('started', flush=True)\n    time.sleep(120)\n"
    )
    launched = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None and process.stdout.readline() == "started\n"
    time.sleep(1.0)
    process.kill()
    process.wait(timeout=30)
    killed_within = time.perf_counter() - launched  # the killed attempt lived inside this span

    # 3. The attempt that finishes sums all three.
    with attempt(folder) as current:
        time.sleep(0.1)
        times = current.times()
    assert times.attempts == 3
    assert times.seconds >= 0.1
    earlier = times.all_seconds - times.seconds
    # Failed: >= 0.3 s; killed: >= ~0.95 s (1 s less one heartbeat), with slack for a loaded machine.
    assert 0.3 + 0.5 <= earlier <= 0.3 + killed_within + 0.5, earlier

    clear_attempts(folder)
    with attempt(folder) as fresh:
        assert fresh.times().attempts == 1  # a rebuild after completion counts only its own attempts
