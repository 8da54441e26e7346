"""Model cost: parameters, size on disk, and batch-1 latency and throughput measured in a process of their own.

Why (measured on 2 cores, see `benchmarks/latency.py`): the evaluate stage used to time 20 forwards
after 3 warm-ups, in its own process, with torch on every core; one quickstart run reported 1.71 and
9.41 ms for two copies of one architecture. With torch on every core, each operator waits at a
barrier for all its threads, and the pool's spinning worker leaves no core free: whenever any other
thread is runnable (the next stage's preparation, Prefect's log and event workers, its temporary API
server, another process on the machine), a forward waits for a descheduled thread. MiniLM-L1 went
from 0.9 to 90 ms per forward that way, in a Prefect task as in a plain script. 20 samples take 20 ms,
so whether a burst of other work overlapped them was luck. The first forwards of a freshly loaded
model are slow too (5 ms, then 2, settling after ~10 calls), which 3 warm-ups did not cover.

So `measure_speed` starts `python -m distill.evaluation.profiling`, which loads the saved model folder and times
it alone: one thread by default (`EvaluationConfig.latency_threads`), time-based warm-up and sampling
(seconds, hundreds of forwards), the garbage collector paused, and the forwards under the precision
the model runs at. What remains is the machine: a neighbour busy on another core still slows a 1 ms
forward by 10-30% on a shared VM; compare figures from an otherwise idle machine.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.errors import TransientError
from distill.precision import ResolvedPrecision, autocast


def parameter_count(model: Any) -> int:
    """A torch model's parameters; an exported model's are its source's, recorded at export."""
    if getattr(model, "runs_arrays", False):
        return int(model.parameter_count or 0)
    return sum(p.numel() for p in model.parameters())


# Files that hold a model's weights: safetensors, pickle checkpoints, an ONNX graph and its external data.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".data")


def size_on_disk_mb(folder: str | Path) -> float | None:
    """Weights on disk in MB (see WEIGHT_SUFFIXES); None when the model is not a local folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    weights = [p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES]
    return round(sum(p.stat().st_size for p in weights) / 1e6, 3)


def first_input(features: dict[str, list[Any]]) -> dict[str, list[int]]:
    """The first row of tokenized features, model inputs only."""
    return {name: features[name][0] for name in ("input_ids", "attention_mask", "token_type_ids") if name in features}


def default_threads() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and `taskset` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class SpeedRequest:
    """What the measuring process needs: the model folder, one tokenized input, and how to time it."""

    model_path: str
    task: str  # the head to load: "qa" or "classification"
    example: dict[str, list[int]]  # one tokenized input; repeated, so the figures measure the model, not data
    precision: ResolvedPrecision
    threads: int
    latency_seconds: float
    latency_samples: int
    throughput_batch_size: int
    num_labels: int | None = None
    trust_remote_code: bool = False


def measure_speed(request: SpeedRequest, *, timeout: float = 600.0) -> dict[str, Any]:
    """Latency p50/p95 (ms) at batch 1 and throughput (examples/s), timed in a fresh process; see the module doc.

    Runs on the device stages run on (the GPU when there is one). Raises RuntimeError with the
    measuring process's error when it fails.
    """
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the measuring process loads its own copy: leave it what this one has cached
    # The child imports this very `distill`, wherever it was imported from (a checkout, an installed copy).
    python_path = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        # The thread pools are sized when torch loads: set them before it does, in the child's environment.
        "OMP_NUM_THREADS": str(request.threads),
        "MKL_NUM_THREADS": str(request.threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
    }
    process = subprocess.run(
        [sys.executable, "-m", "distill.evaluation.profiling"],
        input=json.dumps(asdict(request)),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    # Killed (the kernel's OOM killer, a shutdown) or out of GPU memory: not the model's doing, worth retrying.
    if process.returncode in (-signal.SIGKILL, -signal.SIGTERM) or "OutOfMemoryError" in process.stderr:
        raise TransientError(
            f"latency measurement of {request.model_path} failed for want of memory or was stopped "
            f"(exit {process.returncode}); try again"
        )
    if process.returncode != 0:
        raise RuntimeError(
            f"latency measurement of {request.model_path} failed (exit {process.returncode}): {process.stderr[-2000:]}"
        )
    return json.loads(process.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection inside timed forwards: a collection mid-forward is the collector's cost."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _seconds_per_call(
    call: Callable[[], Any], synchronize: Callable[[], None], *, seconds: float, at_least: int
) -> list[float]:
    """Time `call` repeatedly until both `seconds` have passed and `at_least` calls were timed."""
    timings: list[float] = []
    started = time.perf_counter()
    while len(timings) < at_least or time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        call()
        synchronize()
        timings.append(time.perf_counter() - begin)
    return timings


@torch.inference_mode()
def time_forwards(
    model: Any,
    example: dict[str, list[int]],
    *,
    precision: ResolvedPrecision,
    latency_seconds: float,
    latency_samples: int,
    throughput_batch_size: int,
) -> dict[str, Any]:
    """Latency p50/p95 of one example and throughput of batches of it, on the model's device, in this process.

    `model` is a torch model, or an exported one (onnxruntime, timed at its own precision and threads).

    Each forward enters autocast for `precision` itself, as a request served one at a time does. Warm-up
    (a quarter of `latency_seconds`, at least 3 calls per shape) takes first-call costs out: allocations,
    kernel selection, autocast's weight casts. Throughput is the batch size over the median batch time,
    so a burst of other work on the machine moves it as little as it moves the latency median.
    """
    if getattr(model, "runs_arrays", False):  # an exported model (distill.export.runtime): numpy in and out
        device, runtime, precision = torch.device("cpu"), "onnxruntime", model.precision
        single: dict[str, Any] = {name: np.array([ids], dtype=np.int64) for name, ids in example.items()}
        batch: dict[str, Any] = {name: np.repeat(ids, throughput_batch_size, axis=0) for name, ids in single.items()}
    else:
        model.eval()
        device, runtime = next(model.parameters()).device, "torch"
        single = {name: torch.tensor([ids], device=device) for name, ids in example.items()}  # (1, T)
        batch = {name: tensor.repeat(throughput_batch_size, 1) for name, tensor in single.items()}  # (B, T)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward(inputs: dict[str, Any]) -> Callable[[], Any]:
        def call() -> Any:
            if runtime == "onnxruntime":
                return model(**inputs)
            with autocast(precision, device):
                return model(**inputs)

        return call

    warmup = latency_seconds / 4
    with gc_paused():
        _seconds_per_call(forward(single), synchronize, seconds=warmup, at_least=3)
        latency = _seconds_per_call(forward(single), synchronize, seconds=latency_seconds, at_least=latency_samples)
        _seconds_per_call(forward(batch), synchronize, seconds=warmup, at_least=3)
        batches = _seconds_per_call(forward(batch), synchronize, seconds=latency_seconds / 2, at_least=5)
    latency.sort()
    p95_index = min(len(latency) - 1, max(0, round(0.95 * len(latency)) - 1))
    return {
        "latency_p50_ms": round(statistics.median(latency) * 1000, 3),
        "latency_p95_ms": round(latency[p95_index] * 1000, 3),
        "throughput_per_s": round(throughput_batch_size / statistics.median(batches), 2),
        "speed_sequence_length": len(next(iter(example.values()))),
        "latency_precision": precision,
        "latency_device": device.type,
        "latency_runtime": runtime,
        "latency_timed_forwards": len(latency),
    }


def _measure(request: SpeedRequest) -> dict[str, Any]:
    """The measuring process's work: load the saved model on the stages' device and time it."""
    import transformers

    from distill.export.runtime import OnnxModel, is_exported
    from distill.models.loading import load_model
    from distill.precision import default_device

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(request.threads)
    with contextlib.suppress(RuntimeError):  # only settable before any parallel work; the env var already did it
        torch.set_num_interop_threads(1)
    model: Any
    if is_exported(request.model_path):  # served by onnxruntime, with as many threads as torch would get
        model, threads = OnnxModel(request.model_path, threads=request.threads), request.threads
    else:
        model, _ = load_model(request.model_path, request.task, num_labels=request.num_labels,
                              trust_remote_code=request.trust_remote_code)  # fmt: skip
        model, threads = model.to(default_device()), torch.get_num_threads()
    figures = time_forwards(
        model,
        request.example,
        precision=request.precision,
        latency_seconds=request.latency_seconds,
        latency_samples=request.latency_samples,
        throughput_batch_size=request.throughput_batch_size,
    )
    return {**figures, "latency_threads": threads}


if __name__ == "__main__":
    result = _measure(SpeedRequest(**json.loads(sys.stdin.read())))
    sys.stdout.write(json.dumps(result) + "\n")
