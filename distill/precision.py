"""Numeric precision of a run: fp32, or bf16 autocast where the hardware runs bf16 matmuls faster.

`auto` resolves once per machine: bf16 on CUDA devices that support it, and on CPUs with
AMX-BF16 or AVX512-BF16 instructions (measured: a 2048² matmul runs 6.4x faster in bf16 on
a Xeon with AMX, 2.5x on an AMD EPYC with AVX512-BF16; MiniLM training 2.5x, inference 3.7x
on the Xeon). Everything else stays fp32: without those instructions bf16 is emulated and
slower. Weights (and the optimizer's state) always stay fp32; autocast runs matmuls and
linear layers in bf16 and other ops by its CPU/CUDA op lists, and distill computes every loss
in fp32, which keeps training stable.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is imported lazily: the config (which names Precision) loads before torch does
    import torch

Precision = Literal["auto", "fp32", "bf16"]
ResolvedPrecision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")

# CPU instruction sets whose bf16 matmuls beat fp32 (Linux /proc/cpuinfo flag names).
_FAST_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's bf16 instruction flags (empty where /proc/cpuinfo is unreadable, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        if line.startswith("flags"):
            return tuple(sorted(_FAST_BF16_CPU_FLAGS & set(line.split(":", 1)[1].split())))
    return ()


def default_device() -> torch.device:
    """Where stages run: the first CUDA device when there is one, else the CPU."""
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_precision(requested: Precision, device: torch.device | str | None = None) -> ResolvedPrecision:
    """`auto` becomes bf16 where the device runs it natively and fast, else fp32; explicit choices stay."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if requested != "auto":
        return requested
    import torch

    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_bf16_flags() else "fp32"
    return "fp32"


def autocast(precision: ResolvedPrecision, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context for `precision` on `device` (a no-op for fp32)."""
    import torch

    device_type = torch.device(device).type
    if precision == "bf16" and device_type in ("cpu", "cuda"):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
