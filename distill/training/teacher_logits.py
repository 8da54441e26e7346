"""The teacher's logits over the training features, computed once and memory-mapped from disk.

Running the teacher at every step makes distillation ~1.6-1.9x slower than plain training
(measured with txtai on this machine class). Its outputs on fixed features never change,
so one batched inference pass before training is enough: epochs, retries, resumed runs
and every student distilled from the same teacher on the same data read them from disk.

Layout: `<cache_root>/<teacher>-<features fingerprint>/<output>.npy` (float16), plus `_COMPLETE`;
`<teacher>` hashes the teacher's content, the precision and this module's code. The folder is
built under a temporary name and renamed into place, so a reader never sees half of it.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.models.inference import MODEL_INPUTS, forward_in_batches
from distill.precision import ResolvedPrecision
from distill.store.fingerprint import code_fingerprint, hash_object, sha256_bytes

COMPLETE = "_COMPLETE"


def features_fingerprint(dataset: Any) -> str:
    """Hash of the model inputs of every feature, in order (what the teacher sees)."""
    digest = []
    for name in MODEL_INPUTS:
        if name in dataset.column_names:
            for row in dataset[name]:
                digest.append(np.asarray(row, dtype=np.int32).tobytes())
            digest.append(name.encode())
    return sha256_bytes(b"\0".join(digest))


def teacher_pass(
    teacher: Any,
    dataset: Any,
    output_names: tuple[str, ...],
    *,
    batch_size: int,
    precision: ResolvedPrecision = "fp32",
) -> dict[str, np.ndarray]:
    """Run the teacher over every feature once (`distill.models.inference`); float16 arrays `(N, ...)` in order.

    Position logits (QA) are stored `(N, L)`, L the longest feature, with zeros past a shorter
    window's own length (the student's `kd_mask` is 0 there). `precision` bf16 runs the pass under
    bf16 autocast (the run's precision, as in training).
    """
    device = torch.device("cuda") if torch.cuda.is_available() else next(teacher.parameters()).device
    # Written straight into float16 arrays: the logits of a 20x-augmented SQuAD are gigabytes.
    return forward_in_batches(
        teacher.to(device),
        dataset,
        output_names,
        batch_size=batch_size,
        precision=precision,
        dtype=np.float16,
        beyond_length=0.0,
    )


def load_or_compute(
    cache_root: Path,
    teacher: str,
    dataset: Any,
    compute: Callable[[], dict[str, np.ndarray]],
    *,
    precision: ResolvedPrecision = "fp32",
) -> tuple[dict[str, np.ndarray], Path, float]:
    """Memory-mapped teacher logits for `dataset`, computing and storing them first if needed.

    `teacher` identifies the teacher's weights (its stage output's content hash).
    `precision` is the one `compute` runs the teacher at: bf16 and fp32 passes give different
    logits, so each has its own folder.
    Returns (arrays by output name, their folder, seconds spent computing; 0 when reused).
    """
    # The teacher's content hash, the precision and the code that computes logits: a fix here recomputes them.
    identity = hash_object([teacher, precision, code_fingerprint(("distill.training.teacher_logits",))])
    folder = cache_root / f"{identity[:16]}-{features_fingerprint(dataset)[:16]}"
    seconds = 0.0
    if not (folder / COMPLETE).is_file():
        started = time.perf_counter()
        arrays = compute()
        seconds = time.perf_counter() - started
        staging = cache_root / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        for name, values in arrays.items():
            with open(staging / f"{name}.npy", "wb") as handle:
                np.save(handle, values)
                handle.flush()
                os.fsync(handle.fileno())
        (staging / COMPLETE).write_text("\n".join(sorted(arrays)) + "\n")
        try:
            staging.rename(folder)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            # Only "another run finished the same logits first" is fine: theirs are identical.
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not (folder / COMPLETE).is_file():
                raise
    names = (folder / COMPLETE).read_text().split()
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}, folder, seconds
