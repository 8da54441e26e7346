"""Find the newest checkpoint a crashed or retried run can resume from."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
