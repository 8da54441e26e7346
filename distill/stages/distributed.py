"""Run a stage's training on several devices: the stage body hands it to torchrun and waits.

A stage whose training asks for `devices: N > 1` is computed by N data-parallel processes (DDP):

    python -m distill.stages.torchrun <pid> --standalone --nproc-per-node N -m distill.stages.rank <spec.json>

(torchrun, `python -m torch.distributed.run`, armed to end with the stage's process <pid>.)

The spec holds the stage's typed input (every field, locations included) and its directory; each
rank rebuilds the same data and model from it and runs the stage body, whose HF Trainer joins the
ranks' process group (gloo on CPUs, nccl on GPUs). Rank 0 writes the stage's files and its metrics;
the parent reads them back and finalises the directory as for a one-process stage. Rank 0 names each
checkpoint it saves on its output, and the parent mirrors it to the artifact store (`_mirror`); a failing
rank reports its failure in the launch's scratch folder, from which the parent names the rank that failed
first and the failure's kind (`blame`).

torchrun rather than `accelerate launch`: it is what accelerate itself runs underneath, it needs no
accelerate config file, and the Trainer reads its environment variables as they are.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from distill import errors
from distill.errors import DistillError, TransientError
from distill.stages.inputs import STAGE_INPUTS, Frozen, StageInput
from distill.store.artifacts import StageDirectory
from distill.training import distributed

log = logging.getLogger("distill")

RANK_MODULE = "distill.stages.rank"
TORCHRUN_MODULE = "distill.stages.torchrun"  # torchrun, armed to die with this process
TAIL_LINES = 20  # of the failing rank's output, in the stage's error
LAUNCHER = -1  # torchrun's own output, not a rank's
_STOP_GRACE_S = 10.0
CHECKPOINT_SAVED = "checkpoints-saved.txt"  # in the scratch folder: rank 0 adds a line per checkpoint it saved
_RANK_STATES_WAIT_S = 60.0  # for the other ranks' RNG states in a checkpoint rank 0 reported


class RankFailed(DistillError):
    """A rank of a multi-device stage failed with a bug, or was killed. Not retried: the same input fails the same
    way, and a crash that could pass (a killed process) is resumed from the checkpoints by re-running the flow.
    A rank's transient failure (CUDA out of memory, the network) is raised as a TransientError instead, and its
    user error as that error's own kind (`failure-<rank>.json`, see `blame`)."""


def failure_file(scratch: Path, rank: int) -> Path:
    """Where a failing rank describes its failure (distill.stages.rank), in the launch's scratch folder."""
    return scratch / f"failure-{rank}.json"


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
    with tempfile.TemporaryDirectory(prefix="distill-ranks-") as scratch_name:
        scratch = Path(scratch_name)
        spec, result = scratch / "spec.json", scratch / "result.json"
        write_spec(spec, inputs, directory, result)
        command = [
            sys.executable, "-m", TORCHRUN_MODULE, str(os.getpid()), "--standalone", f"--nproc-per-node={devices}",
            # torchrun's per-run logs here, removed with the launch (by default they stay in /tmp/torchelastic_*).
            f"--log-dir={scratch / 'torchrun'}",
            # Each rank's lines marked with its number, so they can be told apart and the failing one's quoted.
            "--tee=3", "--local-ranks-filter=" + ",".join(map(str, range(devices))),
            "-m", RANK_MODULE, str(spec),
        ]  # fmt: skip
        # Each rank pins itself to its own GPU (LOCAL_RANK); OMP threads split the cores between the ranks.
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(_threads_per_rank(devices)))}
        # Its own session, so that an interrupted parent can signal it (`_stop`); torch starts each rank in a session
        # of its own too, so the signal reaches torchrun alone, which forwards it to its ranks. A killed parent takes
        # torchrun with it (TORCHRUN_MODULE), and torchrun its ranks (their PR_SET_PDEATHSIG, distill.stages.rank).
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",  # a rank's output is not ours to trust: a stray byte must not fail the stage
            env=env,
            start_new_session=True,
        )
        tails: dict[int, collections.deque[str]] = collections.defaultdict(lambda: collections.deque(maxlen=TAIL_LINES))
        mirrored = 0  # checkpoints of rank 0's list handed to the store so far
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                rank, line = _split_rank(raw.rstrip("\n"))
                tails[rank].append(line)
                emit(line if rank == 0 else f"[{'torchrun' if rank == LAUNCHER else f'rank {rank}'}] {line}")
                mirrored = _mirror_saved(directory, scratch, devices, mirrored)
            code = process.wait()
        finally:
            _stop(process)
        # The last ones, and those of a failed run too: a retry elsewhere resumes from them.
        _mirror_saved(directory, scratch, devices, mirrored)
        if code != 0:
            raise blame(inputs.kind, devices, code, scratch, tails)
        if not result.is_file():
            raise RankFailed(f"{inputs.kind}: the {devices} ranks finished but rank 0 reported no metrics")
        return json.loads(result.read_text())


def _mirror_saved(directory: StageDirectory, scratch: Path, devices: int, mirrored: int) -> int:
    """Mirror the checkpoints rank 0 listed since the first `mirrored` ones (a file, not its output lines, which
    torchrun's tee may cut in two); the number listed and handled."""
    try:
        listed = (scratch / CHECKPOINT_SAVED).read_text(encoding="utf-8").split("\n")[:-1]  # complete lines only
    except FileNotFoundError:
        return mirrored
    for folder in listed[mirrored:]:
        _mirror(directory, Path(folder), devices)
    return len(listed)


def _mirror(directory: StageDirectory, folder: Path, devices: int) -> None:
    """Hand a checkpoint rank 0 saved to the stage directory's store (a remote artifact root: a retry elsewhere
    resumes from it), once every rank's RNG state is in it. The parent does it, as the one-process stage's
    MirrorCheckpoints callback does: the ranks' StageDirectory has no store. A checkpoint the Trainer already
    rotated out (the next ones came faster than this copies) is left: a newer one follows."""
    if directory.remote is None:
        return
    from distill.training.checkpoints import checkpoint_is_valid  # here: it loads transformers

    deadline = time.monotonic() + _RANK_STATES_WAIT_S
    while not checkpoint_is_valid(folder, devices):
        if not folder.is_dir() or time.monotonic() > deadline:
            log.warning("%s: not mirrored to the artifact store (incomplete or rotated out)", folder)
            return
        time.sleep(0.1)
    directory.checkpoint_saved(folder)


def blame(kind: str, devices: int, code: int, scratch: Path, tails: dict[int, collections.deque[str]]) -> Exception:
    """The stage's error when torchrun exits with `code`, naming the rank whose failure came first.

    The failing ranks' own reports (`failure-<rank>.json`, to the nanosecond) decide, not torchrun's root cause,
    whose timestamps are whole seconds and whose ties go to the lowest rank. A failure of the ranks'
    communication is most often another rank's death seen from here, so a rank with its own error comes first,
    then a rank that failed with no report (killed), then the earliest communication failure. The kind follows
    the rank's error: transient (retried), a user error (its own class), else RankFailed with the tail of the
    rank's output."""
    reports = {}
    for rank in range(devices):
        try:
            reports[rank] = json.loads(failure_file(scratch, rank).read_text())
        except (OSError, ValueError):
            continue
    own = sorted((report["time_ns"], rank) for rank, report in reports.items() if not report.get("collective"))
    collective = sorted((report["time_ns"], rank) for rank, report in reports.items() if report.get("collective"))
    killed = [rank for rank in _reported_failed_ranks(tails) if rank not in reports]
    if own:
        failed = own[0][1]
    elif killed:
        failed = killed[0]
    elif collective:
        failed = collective[0][1]
    else:
        failed = _failed_rank(tails)
    who = "torchrun" if failed == LAUNCHER else f"rank {failed} of {devices}"
    report = reports.get(failed)
    if report is not None and report["transient"]:
        return TransientError(f"{kind}: {who} failed: {report['type']}: {report['message']}")
    if report is not None and report["user_error"]:
        error_type = getattr(errors, report["user_error"], None)
        if not (isinstance(error_type, type) and issubclass(error_type, DistillError)):
            error_type = DistillError
        return error_type(f"{kind}: {who}: {report['message']}")
    tail = " | ".join(line.strip() for line in tails[failed] if line.strip())[-2000:]
    return RankFailed(f"{kind}: {who} failed (torchrun exit {code}): {tail}")


def _reported_failed_ranks(tails: dict[int, collections.deque[str]]) -> list[int]:
    """The ranks torchrun's failure report lists (`rank : N`), lowest first."""
    matches = (re.match(r"\s*rank\s*:\s*(\d+)", line) for line in tails.get(LAUNCHER, ()))
    return sorted({int(match.group(1)) for match in matches if match})


def _threads_per_rank(devices: int) -> int:
    """The cores this process may run on (its affinity: a container's or a worker's share), split between ranks."""
    return max(1, len(os.sched_getaffinity(0)) // devices)


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
    """End torchrun if it still runs (the parent was interrupted); it ends its ranks (it forwards the signal, and
    they die with it: PR_SET_PDEATHSIG)."""
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
