"""Processes recorded by pid and start time, and stopped together: what `local_cluster.py` starts and stops.

A pid alone is reused once its process is gone; a pid with its start time (/proc/<pid>/stat) names one
process for good, so a stale record never stops someone else's process. Processes that left their parent's
process group (Prefect starts each flow run in its own session) are found by an entry in their environment.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_S = 20.0
KILL_WAIT_S = 10.0  # after SIGKILL: a process still there then is in the kernel (D state), not ours to end


@dataclass
class Process:
    name: str  # postgres, server, worker-0, ...
    pid: int
    start_time: int  # /proc/<pid>/stat field 22: with the pid, identifies the process (pids are reused)
    cmdline: list[str]
    log: str


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3, starttime field 22
    return None if fields[0] in ("Z", "X") else int(fields[19])


def running(process: Process) -> bool:
    """The recorded process is still the one recorded: same pid and same start time."""
    return start_time(process.pid) == process.start_time


def reap(pid: int) -> None:
    """Collect a child's exit status (when `up` ran in this process), so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal(process: Process, sig: signal.Signals) -> None:
    """Send `sig` to the process and, when it leads one, its process group (the server's children, a flow
    run's own children); postgres alone, but for SIGKILL: it stops its backends itself unless killed."""
    try:
        if (process.name != "postgres" or sig == signal.SIGKILL) and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, sig)
        else:
            os.kill(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(processes: list[Process], grace: float = STOP_GRACE_S) -> list[str]:
    """Stop these processes together: SIGTERM (postgres: SIGINT, its fast shutdown), then SIGKILL to those
    still running after `grace`. The names of those that were running and are gone now; one already gone (or
    not ours: another start time) is not among them, nor one that survived SIGKILL."""
    live = [process for process in processes if running(process)]
    remaining = list(live)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT_S)):
        for process in remaining:
            _signal(process, signal.SIGINT if process.name == "postgres" and sig == signal.SIGTERM else sig)
        deadline = time.monotonic() + wait
        while remaining and time.monotonic() < deadline:
            time.sleep(0.2)
            for process in remaining:
                reap(process.pid)
            remaining = [process for process in remaining if running(process)]
        if not remaining:
            break
    for process in processes:
        reap(process.pid)
    return [process.name for process in live if not running(process)]


def marked_processes(entry: str, exclude_groups: Collection[int] = ()) -> list[Process]:
    """Live processes (but this one) whose environment holds `entry` (`NAME=value`), outside these process
    groups; each named `pid N (command)`."""
    needle = entry.encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        try:
            if pid == os.getpid() or needle not in environ.read_bytes().split(b"\0"):
                continue
            group = os.getpgid(pid)
            cmdline = (environ.parent / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ProcessLookupError):
            continue  # gone, or not ours to read
        started = start_time(pid)
        if started is not None and group not in exclude_groups:
            found.append(Process(f"pid {pid} ({' '.join(cmdline[:3]).strip()})", pid, started, cmdline, ""))
    return found
