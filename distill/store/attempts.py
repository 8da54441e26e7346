"""Wall time spent building one stage directory, summed over every attempt, killed ones included.

A stage can take several attempts: Prefect retries a failure in the same process, and a run killed
with -9 (OOM killer, preemption, Ctrl-\\) is resumed by the next run, from its checkpoints. A killed
process never reports its end, so each attempt records itself as it goes: an empty file in the stage
directory's `.attempts/` named after its start time, whose mtime it moves forward every few seconds (a
heartbeat) and once more when it ends. The attempt that completes the stage sums them: start to last
heartbeat for the others, its own monotonic clock for itself. A killed attempt's last few seconds (at
most one heartbeat interval) go uncounted.

Times in file names and mtimes are this machine's wall clock, set explicitly (never the file server's
clock), so attempts on one machine compare; attempts on machines with skewed clocks may not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ATTEMPTS = ".attempts"  # dot-named: a stage's manifest leaves it out (see StageDirectory.finalize)
HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class AttemptTimes:
    """This attempt's seconds, and every attempt's (this one included) with their count."""

    seconds: float
    all_seconds: float
    attempts: int


class Attempt:
    """One running attempt: its file under `folder`, kept fresh by a heartbeat thread."""

    def __init__(self, folder: Path, heartbeat_seconds: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._started = time.perf_counter()
        started_ns = time.time_ns()
        self.file = folder / f"{started_ns}-{os.getpid()}"
        self.file.touch()
        self._touch(started_ns)
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(
            target=self._beat, args=(heartbeat_seconds,), name="stage-attempt-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _touch(self, now_ns: int) -> None:
        with contextlib.suppress(OSError):  # the folder may be gone (finalized, or refreshed by the user)
            os.utime(self.file, ns=(now_ns, now_ns))

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._touch(time.time_ns())

    def end(self) -> None:
        self._stop.set()
        self._heartbeat.join()
        self._touch(time.time_ns())

    def times(self) -> AttemptTimes:
        """This attempt's seconds so far, plus every earlier attempt's (start to last heartbeat)."""
        seconds = time.perf_counter() - self._started
        earlier = [file for file in self.file.parent.iterdir() if file != self.file]
        earlier_seconds = sum(_recorded_seconds(file) for file in earlier)
        return AttemptTimes(seconds=seconds, all_seconds=seconds + earlier_seconds, attempts=1 + len(earlier))


def _recorded_seconds(file: Path) -> float:
    """Start (from the name) to last heartbeat (the mtime) of an attempt's file; 0 if it is not one."""
    try:
        started_ns = int(file.name.split("-", 1)[0])
        return max(0.0, (file.stat().st_mtime_ns - started_ns) / 1e9)
    except (ValueError, OSError):
        return 0.0


@contextlib.contextmanager
def attempt(folder: Path, *, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> Iterator[Attempt]:
    """Record an attempt under `folder` while the block runs, however the block ends."""
    current = Attempt(folder, heartbeat_seconds)
    try:
        yield current
    finally:
        current.end()


def clear_attempts(folder: Path) -> None:
    """Forget the attempts: the stage is complete, and a later rebuild is a new build with its own attempts."""
    shutil.rmtree(folder, ignore_errors=True)
