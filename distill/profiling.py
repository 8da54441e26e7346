"""Model cost: parameters, size on disk, CPU latency at batch 1 and throughput at batch 32."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_on_disk_mb(folder: str | Path) -> float | None:
    """Weights on disk (safetensors, or pickle checkpoints) in MB; None when the model is not a local folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")]
    return round(sum(p.stat().st_size for p in weights) / 1e6, 3)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.inference_mode()
def measure_speed(
    model: torch.nn.Module,
    example: dict[str, list[int]],
    *,
    latency_samples: int = 20,
    throughput_batch_size: int = 32,
    threads: int | None = None,
    warmup: int = 3,
) -> dict[str, float]:
    """Latency p50/p95 (ms) of one example and throughput (examples/s) of batches of it, on the model's device.

    `example` is one tokenized input (lists of ids); the same input is repeated so that
    the numbers measure the model, not the data.
    """
    model.eval()
    device = next(model.parameters()).device
    single = {name: torch.tensor([ids], device=device) for name, ids in example.items()}
    batch = {name: tensor.repeat(throughput_batch_size, 1) for name, tensor in single.items()}
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch_threads(threads):
        for _ in range(warmup):
            model(**single)
        timings = []
        for _ in range(latency_samples):
            synchronize()
            started = time.perf_counter()
            model(**single)
            synchronize()
            timings.append((time.perf_counter() - started) * 1000)
        model(**batch)  # warm the larger shapes
        batch_runs = max(2, min(5, latency_samples // 4))
        synchronize()
        started = time.perf_counter()
        for _ in range(batch_runs):
            model(**batch)
        synchronize()
        elapsed = time.perf_counter() - started
    ordered = sorted(timings)
    p95_index = min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))
    return {
        "latency_p50_ms": round(statistics.median(ordered), 3),
        "latency_p95_ms": round(ordered[p95_index], 3),
        "throughput_per_s": round(batch_runs * throughput_batch_size / elapsed, 2),
        "speed_sequence_length": len(next(iter(example.values()))),
    }


def first_input(features: dict[str, list[Any]]) -> dict[str, list[int]]:
    """The first row of tokenized features, model inputs only."""
    return {name: features[name][0] for name in ("input_ids", "attention_mask", "token_type_ids") if name in features}
