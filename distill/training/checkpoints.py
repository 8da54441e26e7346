"""Find the newest checkpoint a crashed or retried run can resume from, and account for the steps before it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Written by the Trainer in this order; trainer_state.json last, so its presence means the rest exists.
_REQUIRED = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def checkpoint_is_valid(folder: Path) -> bool:
    """All state files present, weights present and the trainer state parseable (a kill -9 can cut any write)."""
    if not all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in _REQUIRED):
        return False
    if not any(folder.glob("*.safetensors")):
        return False
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def latest_valid_checkpoint(directory: Path) -> Path | None:
    """The highest-step `checkpoint-N` folder in `directory` that is complete, or None."""
    if not directory.is_dir():
        return None
    candidates = []
    for child in directory.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            candidates.append((int(match.group(1)), child))
    for _, folder in sorted(candidates, reverse=True):
        if checkpoint_is_valid(folder):
            return folder
    return None


def checkpoint_step(folder: Path) -> int:
    """The global step a valid checkpoint was saved at."""
    return int(json.loads((folder / "trainer_state.json").read_text())["global_step"])


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
