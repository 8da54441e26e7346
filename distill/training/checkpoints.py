"""Find the newest checkpoint a crashed or retried run can resume from, and account for the steps before it."""

from __future__ import annotations

import json
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from distill.training import distributed

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Written by the Trainer in this order; trainer_state.json last, so its presence means the rest exists.
_REQUIRED = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
_RANK_RNG = re.compile(r"^rng_state_(\d+)\.pth$")  # one per rank, written by each rank, in no order with the rest


def _complete_zip(path: Path) -> bool:
    """torch.save writes a zip: a write cut short lacks the central directory at its end (or a member's bytes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def rng_states_are_complete(folder: Path, world_size: int) -> bool:
    """Every rank's RNG state is there and whole: `rng_state_{r}.pth` for each rank r of a multi-process run.

    Each rank writes its own, while rank 0 writes the rest, so `trainer_state.json` says nothing about them: a
    kill between the writes leaves one missing or cut short, and HF's resume fails on it at every retry. The
    ranks are `world_size` (the run resuming), or more if the folder holds more ranks' states."""
    if not folder.is_dir():  # e.g. rotated out by the Trainer while someone looked at it
        return False
    indexed = [int(match.group(1)) for child in folder.iterdir() if (match := _RANK_RNG.match(child.name))]
    ranks = max([world_size, *(index + 1 for index in indexed)])
    if ranks == 1:
        single = folder / "rng_state.pth"
        return not single.exists() or _complete_zip(single)  # older checkpoints may lack it; HF then skips it
    return all(_complete_zip(folder / f"rng_state_{rank}.pth") for rank in range(ranks))


def checkpoint_is_valid(folder: Path, world_size: int | None = None) -> bool:
    """All state files present, weights present, the trainer state parseable and every rank's RNG state whole
    (a kill -9 can cut any write). `world_size`: the processes of the run that would resume from it (default:
    this process's run)."""
    if world_size is None:
        world_size = distributed.world_size()
    if not rng_states_are_complete(folder, world_size):
        return False
    if not all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in _REQUIRED):
        return False
    if not any(folder.glob("*.safetensors")):
        return False
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def latest_valid_checkpoint(directory: Path, world_size: int | None = None) -> Path | None:
    """The highest-step `checkpoint-N` folder in `directory` that is complete (`checkpoint_is_valid`), or None."""
    if not directory.is_dir():
        return None
    candidates = []
    for child in directory.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            candidates.append((int(match.group(1)), child))
    for _, folder in sorted(candidates, reverse=True):
        if checkpoint_is_valid(folder, world_size):
            return folder
    return None


def checkpoint_step(folder: Path) -> int:
    """The global step a valid checkpoint was saved at."""
    return int(json.loads((folder / "trainer_state.json").read_text())["global_step"])


class TrainingClock(TrainerCallback, ExportableState):
    """Training seconds of the whole run so far, saved in every checkpoint's trainer state.

    A resumed run starts from the seconds its checkpoint recorded, so its `train_runtime_seconds` covers
    every step in the final model, not only those since the resume (0.01 s when a run resumes from its
    final checkpoint). Steps a killed attempt trained past its last checkpoint are lost and not counted
    here; the stage's `stage_seconds_all_attempts` counts them.
    """

    def __init__(self, earlier_seconds: float = 0.0) -> None:
        self.earlier_seconds = earlier_seconds
        self._started: float | None = None
        self._stopped: float | None = None

    @property
    def seconds(self) -> float:
        """Earlier attempts' training seconds (up to the resume checkpoint) plus this attempt's so far."""
        if self._started is None:
            return self.earlier_seconds
        return self.earlier_seconds + ((self._stopped or time.perf_counter()) - self._started)

    def state(self) -> dict[str, Any]:
        # Called when the Trainer writes a checkpoint: what a run resumed from it starts counting from.
        return {"args": {"earlier_seconds": self.seconds}, "attributes": {}}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._started, self._stopped = time.perf_counter(), None
        # A checkpoint written without this clock resumes into a state that lacks its entry, and the
        # Trainer's save would fail on the missing key.
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._stopped = time.perf_counter()
        return control


class MirrorCheckpoints(TrainerCallback):
    """Hands each checkpoint the Trainer saves to `saved` (e.g. `StageDirectory.checkpoint_saved`, which copies
    it to a remote artifact store, so that a retry on another machine resumes from it).

    `on_save` runs after the Trainer has written the checkpoint and rotated old ones out (save_total_limit)."""

    def __init__(self, saved: Callable[[Path], None]) -> None:
        self.saved = saved

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if checkpoint_is_valid(folder):
            self.saved(folder)
        return control


@dataclass(frozen=True)
class ResumePoint:
    """What a resumed run needs from its checkpoint, read before training starts.

    Read once, up front: once the resumed run saves newer checkpoints, the Trainer's rotation
    (`save_total_limit`) may delete this one, so nothing may read it after training.
    """

    name: str  # e.g. "checkpoint-100"
    step: int
    log_history: tuple[dict[str, Any], ...]  # the logged losses before `step`, for the whole run's mean
    train_seconds: float  # TrainingClock's reading at the checkpoint; 0 for checkpoints saved without one


def read_resume_point(folder: Path) -> ResumePoint:
    """The resume bookkeeping of a valid checkpoint."""
    state = json.loads((folder / "trainer_state.json").read_text())
    clock = (state.get("stateful_callbacks") or {}).get(TrainingClock.__name__) or {}
    return ResumePoint(
        name=folder.name,
        step=int(state["global_step"]),
        log_history=tuple(state.get("log_history") or ()),
        train_seconds=float(clock.get("args", {}).get("earlier_seconds", 0.0)),
    )


def mean_loss_of_resumed_run(
    log_history: Iterable[Mapping[str, Any]], resumed_step: int, global_step: int, loss_since_resume: float
) -> float:
    """The mean training loss over every step of a run resumed at `resumed_step`, as an uninterrupted run reports it.

    The Trainer's `training_loss` averages only the steps trained since the resume (none at all when a run
    resumes from its final checkpoint, e.g. after a crash while saving the model). The checkpoint's log
    history holds the mean loss of each logging interval before it. Steps between the last logged one and
    the checkpoint would have no recorded loss and be left out; `train` logs at every checkpoint, so none are.
    """
    total, counted, previous = 0.0, 0, 0
    for entry in log_history:
        if "loss" in entry and previous < entry["step"] <= resumed_step:
            total += entry["loss"] * (entry["step"] - previous)
            counted += entry["step"] - previous
            previous = entry["step"]
    steps_since_resume = global_step - resumed_step
    total += loss_since_resume * steps_since_resume
    counted += steps_since_resume
    return total / counted if counted else float("nan")
