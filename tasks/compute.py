"""One heavy stage at a time per process, and per GPU across the processes of one machine.

The flow submits independent stages (a baseline and its distilled twin, an evaluation and
the next stage) concurrently, so Prefect shows and schedules the real graph. Their compute
is then serialised here:
  - within a process by a lock: Python threads share torch's and transformers' global RNGs
    (`set_seed`, dropout), so two trainings at once would make each other irreproducible, and
    CPU latency measured next to a training run would be wrong;
  - on a machine with GPUs, also by one `flock` lock on *every* device this process sees: the HF
    Trainer wraps the model in DataParallel over all visible GPUs (`TrainingArguments.n_gpu`), so
    a process that sees two GPUs may use both. Locks are named by the device's UUID
    (`CUDA_VISIBLE_DEVICES` renumbers devices per process; the UUID does not), in a machine-local
    folder every user can write (mode 1777, lock files 0666). Processes given the same GPU take
    turns on it; processes on different GPUs never wait for each other. The kernel drops a lock
    when its holder dies.

Devices are assigned by whoever starts the process, not here: one process worker per GPU,
each started with `CUDA_VISIBLE_DEVICES=<i>` and `--limit 1` (`deployments/local_cluster.py up
--devices 0,1`), or one GPU per Kubernetes pod (`deployments/k8s/base-job-template.json`).
A cluster-wide counter (a Prefect global concurrency limit) cannot do this: it counts slots,
it does not say which device a slot is on.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from distill.errors import DistillError

_PROCESS_LOCK = threading.RLock()
# Machine-local on purpose: a device is a machine's, and flock on a shared volume would make two machines'
# "GPU 0" one lock. Set DISTILL_DEVICE_LOCK_DIR to a folder every process of the machine can write.
DEVICE_LOCK_DIR_ENV = "DISTILL_DEVICE_LOCK_DIR"

log = logging.getLogger("distill")


def gpu_present() -> bool:
    import torch

    return torch.cuda.is_available()


def visible_devices() -> list[str]:
    """The UUIDs of the GPUs this process sees, in CUDA's order (cuda:0 first); empty without CUDA."""
    if not gpu_present():
        return []
    import torch

    return [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]


def describe_devices() -> str:
    """One line for a run's log: which devices its worker gave it, and how many GPUs it sees."""
    assigned = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
    return f"CUDA_VISIBLE_DEVICES={assigned}, {len(visible_devices())} GPU(s) visible"


def device_lock_dir() -> Path:
    return Path(os.environ.get(DEVICE_LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "distill-device-locks")


def _lock_file(lock_dir: Path, device: str) -> Path:
    return lock_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", device) + ".lock")


def _make_lock_dir(lock_dir: Path) -> None:
    """Create the folder writable by every user, sticky as /tmp is (no one removes another's lock file):
    whichever user comes first must not lock the others out."""
    try:
        lock_dir.mkdir(parents=True)
    except FileExistsError:
        return
    lock_dir.chmod(0o1777)  # after mkdir: its mode is masked by the umask


def _open_lock_file(path: Path) -> int:
    """A read-write descriptor on the lock file, created 0666 if missing. An existing file is opened without
    O_CREAT: with fs.protected_regular, O_CREAT on another user's file in a sticky folder is refused."""
    try:
        try:
            return os.open(path, os.O_RDWR)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # another process created it just now
            return os.open(path, os.O_RDWR)
        os.fchmod(fd, 0o666)  # the umask masked the mode above
        return fd
    except PermissionError as exc:
        raise DistillError(
            f"cannot open the GPU lock file {path} ({exc.strerror}): make it writable by every user, "
            f"or set {DEVICE_LOCK_DIR_ENV} to a folder all processes of this machine can write"
        ) from exc


@contextmanager
def device_locks(devices: Sequence[str], lock_dir: Path | None = None) -> Iterator[None]:
    """Hold an exclusive `flock` on each device id (e.g. a GPU UUID) until the block ends.

    Ids are locked in sorted order, so two processes wanting overlapping sets never deadlock. A lock
    held by another process is waited for, with one log line naming the holder.
    """
    lock_dir = lock_dir or device_lock_dir()
    _make_lock_dir(lock_dir)
    with ExitStack() as held:
        for device in sorted(set(devices)):
            handle = held.enter_context(os.fdopen(_open_lock_file(_lock_file(lock_dir, device)), "r+b"))
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().decode(errors="replace").strip() or "another process"
                log.info("waiting for device %s (held by %s)", device, holder)
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            os.ftruncate(handle.fileno(), 0)  # who holds it, for the line above and for a person looking
            handle.seek(0)
            handle.write(f"pid {os.getpid()}\n".encode())
            handle.flush()
        yield


@contextmanager
def process_slot() -> Iterator[None]:
    """This process's compute lock alone: for CPU-heavy bookkeeping such as hashing a model for a cache key,
    so that it never runs beside an evaluation that is timing latency."""
    with _PROCESS_LOCK:
        yield


@contextmanager
def compute_slot(devices: int = 1) -> Iterator[None]:
    """Hold this process's compute lock and, on a GPU machine, every GPU it sees, for the duration of a stage.

    Every visible GPU, not the first `devices`: the Trainer may use them all (DataParallel), so locking
    fewer than it sees could put two processes on one GPU. `devices` is what the stage needs: a process
    that sees fewer is refused. Give a process exactly its GPUs with CUDA_VISIBLE_DEVICES."""
    with _PROCESS_LOCK:
        visible = visible_devices()
        if visible and len(visible) < devices:
            raise DistillError(f"this stage needs {devices} GPUs; this process sees {len(visible)}")
        with device_locks(visible):
            yield
