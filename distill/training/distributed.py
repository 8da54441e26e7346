"""What training code needs to know inside one of several data-parallel processes (torchrun ranks).

torchrun tells each process its place through environment variables (RANK, WORLD_SIZE, LOCAL_RANK);
the HF Trainer reads them and wraps the model in DDP. Outside torchrun every helper here is the
single-process answer (rank 0 of 1), so the same training code runs both ways.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Processes torchrun started for this training (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0: the one process that writes the stage's files (model, loss curve, metrics)."""
    return rank() == 0


def backend() -> str:
    """nccl between GPUs; gloo between CPU processes. Named explicitly: accelerate would pick MPI on the CPU
    wherever torch was built with it."""
    return "nccl" if torch.cuda.is_available() else "gloo"


# How long a collective of training may wait for its slowest rank: HF's `ddp_timeout` default (the Trainer reuses
# this group, so ours is the one that applies). A rank that hangs, rather than dies, stalls the others this long.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
# The one long wait is planned: the other ranks wait for rank 0's whole teacher pass (hours on augmented data).
# It gets a group of its own (gloo: a CPU-side barrier, also between GPUs), so training keeps the short timeout.
# A rank that dies does not leave the others waiting this long: torchrun sees it exit and ends the group.
RANK_ZERO_WORK_TIMEOUT = timedelta(hours=24)
_rank_zero_work_group: Any = None


def init_process_group() -> None:
    """Join the ranks' process group now, before the Trainer does: the teacher-logits barrier comes before
    training. The Trainer (accelerate) reuses an initialised group."""
    global _rank_zero_work_group
    if world_size() > 1 and not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend=backend(), timeout=COLLECTIVE_TIMEOUT)
        _rank_zero_work_group = torch.distributed.new_group(backend="gloo", timeout=RANK_ZERO_WORK_TIMEOUT)


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block while the others wait at a barrier, then they run it: work done once on disk
    (teacher logits) is then found there by the others instead of being computed N times."""
    distributed = world_size() > 1 and torch.distributed.is_initialized()
    if distributed and not is_main_process():
        torch.distributed.barrier(group=_rank_zero_work_group)
    yield
    # Not on an exception: rank 0 fails, torchrun ends the waiting ranks, and none of them computes it after all.
    if distributed and is_main_process():
        torch.distributed.barrier(group=_rank_zero_work_group)


def destroy_process_group() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def average_gradients(module: torch.nn.Module) -> None:
    """Replace each gradient by its mean over the ranks: DDP's own averaging for a trainer whose forward
    bypasses the DDP wrapper (DDP syncs only after a forward through it). Linear, so calling it after every
    micro-batch of gradient accumulation gives the mean of the accumulated sums."""
    if world_size() == 1 or not torch.distributed.is_initialized():
        return
    for parameter in module.parameters():
        if parameter.grad is not None:
            torch.distributed.all_reduce(parameter.grad, op=torch.distributed.ReduceOp.SUM)
            parameter.grad /= world_size()


def mean_over_ranks(values: list[float]) -> list[float]:
    """Each value's mean over the ranks (as is with one process): the logged loss terms of every rank's batches,
    not rank 0's alone. Every rank must call it at the same point (the Trainer logs on all of them)."""
    if world_size() == 1 or not torch.distributed.is_initialized():
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if backend() == "nccl" else torch.device("cpu")
    total = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return [value / world_size() for value in total.tolist()]
