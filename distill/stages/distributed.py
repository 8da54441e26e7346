"""Run a stage's training on several devices: the stage body hands it to torchrun and waits.

A stage whose training asks for `devices: N > 1` is computed by N data-parallel processes (DDP):

    python -m distill.stages.torchrun <pid> --standalone --nproc-per-node N -m distill.stages.rank <spec.json>

(torchrun, `python -m torch.distributed.run`, armed to end with the stage's process <pid>.)

The spec holds the stage's typed input (every field, locations included) and its directory; each
rank rebuilds the same data and model from it and runs the stage body, whose HF Trainer joins the
ranks' process group (gloo on CPUs, nccl on GPUs). Rank 0 writes the stage's files and its metrics;
the parent reads them back and finalises the directory as for a one-process stage.

torchrun rather than `accelerate launch`: it is what accelerate itself runs underneath, it needs no
accelerate config file, and the Trainer reads its environment variables as they are.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from distill.errors import DistillError
from distill.stages.inputs import STAGE_INPUTS, Frozen, StageInput
from distill.store.artifacts import StageDirectory
from distill.training import distributed

log = logging.getLogger("distill")

RANK_MODULE = "distill.stages.rank"
TORCHRUN_MODULE = "distill.stages.torchrun"  # torchrun, armed to die with this process
TAIL_LINES = 20  # of the failing rank's output, in the stage's error
LAUNCHER = -1  # torchrun's own output, not a rank's
_STOP_GRACE_S = 10.0


class RankFailed(DistillError):
    """A rank of a multi-device stage failed. Not retried: the same input fails the same way, and a crash
    that could pass (a killed process) is resumed from the checkpoints by re-running the flow."""


def should_launch(inputs: StageInput) -> bool:
    """True in the parent of a stage that trains on several devices; False inside the ranks, which train."""
    return inputs.devices > 1 and distributed.world_size() == 1


def full_dump(value: Any) -> Any:
    """A typed input as plain data, every field included: the key leaves out locations (`exclude`), which the
    ranks need. Python-mode dumps keep secrets as they are (the JSON mode redacts them); the spec stays private."""
    if isinstance(value, Frozen):
        return {name: full_dump(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    if isinstance(value, tuple | list):
        return [full_dump(item) for item in value]
    return value


def write_spec(path: Path, inputs: StageInput, directory: StageDirectory, result: Path) -> None:
    spec = {
        "kind": inputs.kind,
        "inputs": full_dump(inputs),
        "stage": {"root": str(directory.root), "stage": directory.stage, "key": directory.key},
        "result": str(result),
    }
    # Readable by this user only (mkstemp's mode): it may hold a data source's credentials.
    path.write_text(json.dumps(spec, default=str))


def read_spec(path: Path) -> tuple[StageInput, StageDirectory, Path]:
    spec = json.loads(path.read_text())
    input_type = {cls.kind: cls for cls in STAGE_INPUTS}[spec["kind"]]
    stage = spec["stage"]
    directory = StageDirectory(Path(stage["root"]), stage["stage"], stage["key"])
    return input_type.model_validate(spec["inputs"]), directory, Path(spec["result"])


def die_with_parent(parent: int | None = None) -> bool:
    """Ask the kernel for SIGTERM when the process (strictly: the thread) that started this one exits (Linux;
    elsewhere a no-op). False when `parent` is already gone, before the signal was armed."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    return parent is None or os.getppid() == parent


def launch(
    inputs: StageInput, directory: StageDirectory, *, output: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Train the stage on `inputs.devices` processes; the metrics rank 0 reported.

    `output` receives the ranks' output line by line: rank 0's as they are (its progress lines), the
    others' prefixed `[rank r]`. A rank that fails fails the stage with one line naming it and the tail
    of that rank's output.
    """
    devices = inputs.devices
    emit = output or (lambda line: log.info("%s", line))
    with tempfile.TemporaryDirectory(prefix="distill-ranks-") as scratch:
        spec, result = Path(scratch) / "spec.json", Path(scratch) / "result.json"
        write_spec(spec, inputs, directory, result)
        command = [
            sys.executable, "-m", TORCHRUN_MODULE, str(os.getpid()), "--standalone", f"--nproc-per-node={devices}",
            # Each rank's lines marked with its number, so they can be told apart and the failing one's quoted.
            "--tee=3", "--local-ranks-filter=" + ",".join(map(str, range(devices))),
            "-m", RANK_MODULE, str(spec),
        ]  # fmt: skip
        # Each rank pins itself to its own GPU (LOCAL_RANK); OMP threads split the cores between the ranks.
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(_threads_per_rank(devices)))}
        # Its own process group, so that stopping it stops every rank; it dies with this process (TORCHRUN_MODULE).
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        tails: dict[int, collections.deque[str]] = collections.defaultdict(lambda: collections.deque(maxlen=TAIL_LINES))
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                rank, line = _split_rank(raw.rstrip("\n"))
                tails[rank].append(line)
                emit(line if rank == 0 else f"[{'torchrun' if rank == LAUNCHER else f'rank {rank}'}] {line}")
            code = process.wait()
        finally:
            _stop(process)
        if code != 0:
            failed = _failed_rank(tails)
            tail = " | ".join(line.strip() for line in tails[failed] if line.strip())[-2000:]
            who = "torchrun" if failed == LAUNCHER else f"rank {failed} of {devices}"
            raise RankFailed(f"{inputs.kind}: {who} failed (torchrun exit {code}): {tail}")
        if not result.is_file():
            raise RankFailed(f"{inputs.kind}: the {devices} ranks finished but rank 0 reported no metrics")
        return json.loads(result.read_text())


def _threads_per_rank(devices: int) -> int:
    return max(1, (os.cpu_count() or 1) // devices)


def _split_rank(line: str) -> tuple[int, str]:
    """`[default1]:text` (torchrun's tee prefix) -> (1, 'text'); torchrun's own lines -> (LAUNCHER, line)."""
    if line.startswith("[default") and "]:" in line:
        label, _, text = line.partition("]:")
        number = label.removeprefix("[default")
        if number.isdigit():
            return int(number), text
    return LAUNCHER, line


def _failed_rank(tails: dict[int, collections.deque[str]]) -> int:
    """The rank torchrun names as the root cause; else the first whose output shows a traceback."""
    launcher = list(tails.get(LAUNCHER, ()))
    for index, line in enumerate(launcher):
        if line.startswith("Root Cause"):
            for later in launcher[index:]:
                if match := re.match(r"\s*rank\s*:\s*(\d+)", later):
                    return int(match.group(1))
    for rank in sorted(rank for rank in tails if rank != LAUNCHER):
        if any("Traceback" in line or "Error" in line for line in tails[rank]):
            return rank
    return LAUNCHER


def _stop(process: subprocess.Popen[str]) -> None:
    """End torchrun and its ranks (their process group) if they still run: the parent was interrupted."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
