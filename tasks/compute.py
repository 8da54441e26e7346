"""One heavy stage at a time per process, and per GPU across processes and machines.

The flow submits independent stages (a baseline and its distilled twin, an evaluation and
the next stage) concurrently, so Prefect shows and schedules the real graph. Their compute
is then serialised here:
  - within a process by a lock: Python threads share torch's and transformers' global RNGs
    (`set_seed`, dropout), so two trainings at once would make each other irreproducible, and
    CPU latency measured next to a training run would be wrong;
  - on a machine with a GPU, also by the `gpu` global concurrency limit (created with 1 slot
    if missing), so every worker process on every machine sharing the Prefect server takes
    its turn on the device. Raise the limit (`prefect gcl update gpu --limit N`) for N GPUs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GPU_LIMIT = "gpu"
_PROCESS_LOCK = threading.RLock()

log = logging.getLogger("distill")


def gpu_present() -> bool:
    import torch

    return torch.cuda.is_available()


def ensure_gpu_limit() -> None:
    """Create the `gpu` global concurrency limit (1 slot) when this machine has a GPU and the server lacks it."""
    if not gpu_present():
        return
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=1))
            log.info("created global concurrency limit '%s' with 1 slot", GPU_LIMIT)


@contextmanager
def process_slot() -> Iterator[None]:
    """This process's compute lock alone: for CPU-heavy bookkeeping such as hashing a model for a cache key,
    so that it never runs beside an evaluation that is timing latency."""
    with _PROCESS_LOCK:
        yield


@contextmanager
def compute_slot(devices: int = 1) -> Iterator[None]:
    """Hold this process's compute lock, and `devices` `gpu` slots when there is a GPU, for the duration of a
    stage (a stage training on N devices holds N: see `training.devices`)."""
    with _PROCESS_LOCK:
        if gpu_present():
            from prefect.concurrency.sync import concurrency

            with concurrency(GPU_LIMIT, occupy=devices, strict=True):
                yield
        else:
            yield
