"""Resume picks the newest checkpoint whose files are all there, and reports the whole run's loss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from distill.training.checkpoints import (
    TrainingClock,
    latest_valid_checkpoint,
    mean_loss_of_resumed_run,
    read_resume_point,
)
from tests.distill.tiny_training import tiny_classifier_run


def checkpoint(root: Path, step: int, *, complete: bool = True, state: str = '{"global_step": 1}') -> None:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w")
    for name in ("optimizer.pt", "scheduler.pt"):
        (folder / name).write_bytes(b"s")
    if complete:
        (folder / "trainer_state.json").write_text(state)


def test_newest_complete_checkpoint_wins(tmp_path: Path) -> None:
    assert latest_valid_checkpoint(tmp_path / "missing") is None
    checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 30)
    checkpoint(tmp_path, 40, complete=False)  # killed mid-save: no trainer_state.json
    checkpoint(tmp_path, 50, state="{truncated")  # torn write
    (tmp_path / "checkpoint-60").mkdir()  # empty
    (tmp_path / "tmp-checkpoint-70").mkdir()
    assert latest_valid_checkpoint(tmp_path).name == "checkpoint-30"


def rng_state(folder: Path, name: str) -> None:
    torch.save({"python": list(range(100)), "cpu": torch.arange(1000)}, folder / name)


def test_a_multi_process_checkpoint_needs_every_ranks_whole_rng_state(tmp_path: Path) -> None:
    """Each rank writes its own rng_state_{r}.pth beside rank 0's files: a kill between those writes leaves one
    missing or cut short, which HF's resume fails on at every retry, so such a checkpoint is not resumed from."""
    checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 20)
    for step in (10, 20):
        for rank in (0, 1):
            rng_state(tmp_path / f"checkpoint-{step}", f"rng_state_{rank}.pth")
    assert latest_valid_checkpoint(tmp_path, world_size=2).name == "checkpoint-20"
    last = tmp_path / "checkpoint-20" / "rng_state_1.pth"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # cut short
    assert latest_valid_checkpoint(tmp_path, world_size=2).name == "checkpoint-10"
    assert latest_valid_checkpoint(tmp_path, world_size=1).name == "checkpoint-10"  # the files say 2 ranks
    last.unlink()  # never written: only the run's world size tells
    assert latest_valid_checkpoint(tmp_path, world_size=2).name == "checkpoint-10"
    # One process: rng_state.pth, whole if present (checkpoints saved without one still resume).
    assert latest_valid_checkpoint(tmp_path / "one") is None
    checkpoint(tmp_path / "one", 5)
    assert latest_valid_checkpoint(tmp_path / "one", world_size=1).name == "checkpoint-5"
    (tmp_path / "one" / "checkpoint-5" / "rng_state.pth").write_bytes(b"PK\x03\x04cut")
    assert latest_valid_checkpoint(tmp_path / "one", world_size=1) is None


def test_resumed_run_reports_the_mean_loss_of_every_step() -> None:
    # Logged every 10 steps (each entry the mean of its interval), checkpointed at 20, resumed, 40 steps in all.
    history = [{"step": 10, "loss": 4.0}, {"step": 20, "loss": 2.0}, {"step": 30, "loss": 1.0}, {"train_loss": 0.5}]
    # Steps 21-40 averaged 1.5 after the resume: (10 * 4 + 10 * 2 + 20 * 1.5) / 40, not the Trainer's 1.5.
    assert mean_loss_of_resumed_run(history, resumed_step=20, global_step=40, loss_since_resume=1.5) == 2.25
    # Resumed from the final checkpoint (killed while saving the model): no steps since, not a loss of 0.
    assert mean_loss_of_resumed_run(history[:3], resumed_step=30, global_step=30, loss_since_resume=0.0) == 7 / 3
    # Checkpoint at 25 with logs every 10: steps 21-25 have no recorded loss and are left out.
    assert mean_loss_of_resumed_run(history, resumed_step=25, global_step=40, loss_since_resume=1.0) == 75 / 35


class Interrupted(Exception):
    """Stands in for a crash (kill -9, OOM, preemption) right after a checkpoint is complete."""


class CrashAfterCheckpoint(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:  # after the checkpoint is written
        if state.global_step == self.step:
            raise Interrupted(f"crashed after checkpoint-{self.step}")
        return control


@pytest.mark.parametrize("clock_saved", [True, False], ids=["checkpoint", "checkpoint-without-clock"])
def test_a_resumed_run_outlives_the_checkpoint_it_resumed_from(
    clock_saved: bool, tiny_classifier: Path, tmp_path: Path
) -> None:
    """Resumed at step 4 with save_total_limit 1 and checkpoints every 2 steps, the Trainer's rotation deletes
    checkpoint-4 at step 6; the run must still finish and report what an uninterrupted run reports.

    Without clock: a checkpoint saved before TrainingClock existed resumes too (its training time unknown)."""
    run = tiny_classifier_run(tiny_classifier)
    reference = run(tmp_path / "uninterrupted" / "checkpoints")
    checkpoints = tmp_path / "interrupted" / "checkpoints"
    with pytest.raises(Interrupted):
        run(checkpoints, CrashAfterCheckpoint(4))
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint-4"]
    state_file = checkpoints / "checkpoint-4" / "trainer_state.json"
    if not clock_saved:
        state = json.loads(state_file.read_text())
        del state["stateful_callbacks"][TrainingClock.__name__]
        state_file.write_text(json.dumps(state))
    before = read_resume_point(checkpoints / "checkpoint-4")
    assert before.step == 4 and (before.train_seconds > 0) == clock_saved

    resumed = run(checkpoints)
    assert not (checkpoints / "checkpoint-4").exists()  # rotated away while the resumed run trained
    assert resumed.resumed_from == "checkpoint-4"
    assert resumed.global_step == reference.global_step == 12
    # Steps 1-4 from the checkpoint's log history, 5-12 from the resumed run: the uninterrupted run's mean.
    assert resumed.train_loss == pytest.approx(reference.train_loss, rel=1e-9)
    # Training time of every step in the model: the seconds up to checkpoint-4 count too.
    assert resumed.train_runtime_seconds > before.train_seconds
