"""A child process that ends with the process that started it.

Linux's `PR_SET_PDEATHSIG`: the kernel sends SIGTERM when the parent (strictly: the thread that started
this process) exits, however it exits (`kill -9` included). Used by the processes distill starts and must
not outlive it: torchrun and its ranks (distill.stages.distributed), the Prefect server of a run
(distill_cli.prefect_server). Imports nothing heavy: those processes call it first thing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> bool:
    """Ask the kernel for SIGTERM when the process that started this one exits (Linux; elsewhere a no-op).
    False when `parent` (its pid, if given) is already gone, before the signal was armed."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return parent is None or os.getppid() == parent
